// SPDX-License-Identifier: GPL-2.0

//! The device's migration: its one state machine, and the data files of its transfers.
//!
//! The machine has the states of the v2 protocol. A request for a state, from either front end,
//! is walked arc by arc along the path the VFIO core gives for the device's features
//! ([`request`]); the arcs into `PRE_COPY`, `STOP_COPY` (from `STOP`) and `RESUMING` start a
//! transfer of the device's state (a [`Saver`] or a [`Loader`] of the stream), and the arcs out
//! of them end it; a transfer's data file reaches the device through a [`Link`] that ending the
//! transfer cuts, so a file of an ended transfer fails with `ENODEV` and holds nothing of the
//! device.
//!
//! The device has no DMA and starts nothing on its own: the `P2P` states are the running ones.
//! In `STOP`, `STOP_COPY` and `RESUMING` it does not run: its BARs change nothing and signal
//! nothing (see [`RmttyVfio::set_running`]). `RESUMING -> STOP` commits a loaded stream, which until
//! then changed nothing of the device.
//!
//! The v2 protocol's front end is the `vfio::migration::Migration` implementation here, the v1
//! protocol's is the migration region ([`region`]); a front end is only a way to reach
//! [`RmttyVfio::request`] and to carry the stream's bytes. While one front end has a transfer
//! going, the other cannot move the machine (`EBUSY`): each would see the other's stream cut
//! short.

use crate::{
    device::{
        refuse,
        DeviceState,
        RmttyVfio, //
    },
    stream::{
        Loader,
        Refusal,
        Saver,
        Tail, //
    },
    version::{
        Shape,
        Stream, //
    },
};
mod region;
mod request;

pub(crate) use region::{
    RegionBuffer,
    DATA_SECTION,
    REGION_SIZE, //
};

use kernel::{
    anon_inode, device,
    prelude::*,
    ratelimit::RateLimit,
    sync::{
        aref::ARef,
        Arc,
        ArcBorrow,
        Mutex, //
    },
    uaccess::{
        UserPtr,
        UserSliceReader,
        UserSliceWriter, //
    },
    vfio::{
        self,
        migration::{
            self,
            DataFile,
            Features,
            Migration,
            PrecopyInfo,
            State,
            Transition, //
        },
    },
};

/// The transfer in progress, if any. The sessions are boxed: most devices never migrate.
enum Transfer {
    None,
    Saving(KBox<Saver>),
    Loading(KBox<Loader>),
}

/// The protocol a request to the machine came through.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrontEnd {
    /// The migration region.
    V1,
    /// `VFIO_DEVICE_FEATURE_MIGRATION` and the data files.
    V2,
}

impl kernel::fmt::Display for FrontEnd {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        f.write_str(match self {
            Self::V1 => "v1 (migration region)",
            Self::V2 => "v2 (data file)",
        })
    }
}

/// Which way a transfer that an arc started goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Saving,
    Resuming,
}

/// Whether the device runs in `state`: its BARs work. Stopped, they change nothing and signal
/// nothing, as the uAPI requires of `STOP` and of the states that move the device's state.
pub(crate) fn runs(state: State) -> bool {
    !matches!(state, State::Stop | State::StopCopy | State::Resuming)
}

/// The migration state of a device, kept with its [`DeviceState`], under its lock.
///
/// # Invariants
///
/// `transfer` is `Saving` in `PRE_COPY`, `PRE_COPY_P2P` and `STOP_COPY`, `Loading` in
/// `RESUMING`, and `None` otherwise; `link` is the link of the transfer, if there is one, and
/// `owner` the front end that started it.
pub(crate) struct Machine {
    state: State,
    transfer: Transfer,
    owner: FrontEnd,
    link: Option<Arc<Link>>,
    /// The buffer of a v1 transfer.
    region: RegionBuffer,
    /// Counts the transfers, so that a link knows whether its transfer is the current one.
    generation: u64,
    /// The stream version the device writes and reads (its `stream_version` attribute).
    stream: Stream,
}

impl Machine {
    /// A device that has just been created: running.
    pub(crate) fn new() -> Self {
        // INVARIANT: Running, no transfer.
        Self {
            state: State::Running,
            transfer: Transfer::None,
            owner: FrontEnd::V2,
            link: None,
            region: RegionBuffer::new(),
            generation: 0,
            stream: Stream::LATEST,
        }
    }

    /// The stream version the device writes and reads.
    pub(crate) fn stream(&self) -> Stream {
        self.stream
    }

    /// Makes the device write and read `stream` from its next transfer on.
    pub(crate) fn set_stream(&mut self, stream: Stream) {
        self.stream = stream;
    }

    /// The state the device is in.
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Ends the transfer in progress, if any: its data file fails from now on.
    fn end_transfer(&mut self) {
        self.transfer = Transfer::None;
        self.region = RegionBuffer::new();
        if let Some(link) = self.link.take() {
            *link.device.lock() = None;
        }
    }

    /// Back to `RUNNING`, ending any transfer: for opening, closing and resetting the device.
    pub(crate) fn reset(&mut self) {
        self.end_transfer();
        // INVARIANT: Running, no transfer.
        self.state = State::Running;
    }

    /// Notes a write of `len` bytes at `offset` of the device memory, for a saving session.
    pub(crate) fn memory_written(&mut self, offset: usize, len: usize) {
        if let Transfer::Saving(saver) = &mut self.transfer {
            saver.mark_dirty(offset, len);
        }
    }

    /// The bytes stop-and-copy would produce from now on (`MIG_DATA_SIZE`): of a saving session,
    /// what it has left and what a v1 buffer holds that was not consumed yet.
    pub(crate) fn data_size(&self, shape: Shape) -> usize {
        match &self.transfer {
            Transfer::Saving(saver) => saver.remaining() + self.region.unconsumed(),
            _ => Saver::full_size(shape, self.stream),
        }
    }
}

/// What a data file reaches its device through while its transfer lasts.
///
/// # Invariants
///
/// `device` is the device's state while the transfer of number `generation` is the device's
/// current one (and `None` once it ended).
#[pin_data]
pub(crate) struct Link {
    generation: u64,
    #[pin]
    device: Mutex<Option<Arc<Mutex<DeviceState>>>>,
    /// The mdev and its rate limit, for log lines.
    dev: ARef<device::Device>,
    refusals: Arc<RateLimit>,
}

impl Link {
    /// Runs `f` on the machine and the device memory of the link's device, if its transfer is
    /// still the current one; fails with `ENODEV` otherwise.
    fn with<R>(&self, f: impl FnOnce(&mut Machine, &mut [u8]) -> Result<R>) -> Result<R> {
        // Not held while the device's lock is taken: ending a transfer takes this lock under it.
        let device = self.device.lock().clone().ok_or(ENODEV)?;
        let mut state = device.lock();
        let state = &mut *state;
        if state.migration.generation != self.generation {
            return Err(ENODEV);
        }
        f(&mut state.migration, state.memory.bytes_mut())
    }
}

/// Logs, within `refusals`, that `dev` refused a migration stream and why; returns `err`, logged.
///
/// Rate limited like every line userspace can cause: a loop of commits of a short stream, or of
/// resuming sessions each given a bad stream, would otherwise flood the log.
fn stream_refused(
    dev: &device::Device,
    refusals: &RateLimit,
    err: Error,
    refusal: Refusal,
) -> vfio::Refusal {
    refuse(
        dev,
        refusals,
        err,
        fmt!("migration stream refused: {refusal}"),
    )
}

impl RmttyVfio {
    /// Logs that a migration stream was refused and why, rate limited; returns `err`, logged.
    pub(crate) fn stream_refused(&self, err: Error, refusal: Refusal) -> vfio::Refusal {
        stream_refused(self.dev(), self.refusals(), err, refusal)
    }

    /// The config space and UART as the end of a saved stream holds them.
    fn tail(&self) -> Tail {
        // One lock at a time: the config and UART locks are never nested.
        let config = self.config().lock().save();
        let uart = self.uart().lock().save();
        Tail { config, uart }
    }

    /// `RESUMING -> STOP`: replaces the device's state with the loaded stream's, if the stream
    /// is complete; otherwise fails with `EINVAL` and changes nothing.
    fn commit(&self, state: &mut DeviceState) -> Result<(), vfio::Refusal> {
        let Transfer::Loading(loader) = &mut state.migration.transfer else {
            return Err(EINVAL.into());
        };
        let loaded = loader.finish().map_err(|refusal| {
            // A stream refused while it was written was logged then: committing it is another
            // request, which the device logs.
            if matches!(refusal, Refusal::Refused) {
                return EINVAL.into();
            }
            self.stream_refused(EINVAL, refusal)
        })?;
        state.memory.replace(loaded.memory);
        *self.config().lock() = loaded.config;
        *self.uart().lock() = loaded.uart;
        Ok(())
    }
}

/// The data file of a v2 transfer.
struct V2File {
    link: Arc<Link>,
    precopy: PrecopyInfo,
}

#[vtable]
impl anon_inode::Operations for V2File {
    type Ptr = Arc<V2File>;

    fn read(this: ArcBorrow<'_, V2File>, buf: &mut UserSliceWriter) -> Result<usize> {
        let wanted = buf.len();
        this.link.with(|machine, memory| {
            let Transfer::Saving(saver) = &mut machine.transfer else {
                return Err(ENODEV);
            };
            let done = saver.read(memory, buf)?;
            if done == 0 && wanted > 0 && !saver.stopped() {
                return Err(migration::nothing_ready());
            }
            Ok(done)
        })
    }

    fn write(this: ArcBorrow<'_, V2File>, buf: &mut UserSliceReader) -> Result<usize> {
        let link = &this.link;
        link.with(|machine, _| {
            let Transfer::Loading(loader) = &mut machine.transfer else {
                return Err(ENODEV);
            };
            loader.write(buf).map_err(|(err, refusal)| {
                if let Some(refusal) = refusal {
                    stream_refused(&link.dev, &link.refusals, err, refusal);
                }
                err
            })
        })
    }

    fn ioctl(this: ArcBorrow<'_, V2File>, cmd: u32, arg: UserPtr) -> Result<isize> {
        this.precopy.answer(cmd, arg, || {
            this.link
                .with(|machine, _| match (&machine.transfer, machine.state) {
                    (Transfer::Saving(saver), State::PreCopy | State::PreCopyP2p) => {
                        // CAST: At most a few GiB.
                        Ok((saver.initial_bytes() as u64, saver.dirty_bytes() as u64))
                    }
                    _ => Err(EINVAL),
                })
        })
    }
}

impl Migration for RmttyVfio {
    const FEATURES: Features = Features::STOP_COPY
        .and(Features::P2P)
        .and(Features::PRE_COPY);

    fn set_state(
        &self,
        transition: &Transition<'_>,
        new: State,
    ) -> Result<Option<DataFile>, vfio::Refusal> {
        self.request(new, FrontEnd::V2, |link, direction| {
            let file = Arc::new(
                V2File {
                    link: link.clone(),
                    precopy: transition.precopy_info(),
                },
                GFP_KERNEL,
            )?;
            match direction {
                Direction::Saving => DataFile::saving::<V2File>(transition, c"rmtty_mig", file),
                Direction::Resuming => DataFile::resuming::<V2File>(transition, c"rmtty_mig", file),
            }
        })
    }

    fn state(&self) -> Result<State, vfio::Refusal> {
        Ok(self.device_state().lock().migration.state())
    }

    fn data_size(&self) -> Result<usize, vfio::Refusal> {
        let state = self.device_state().lock();
        Ok(state.migration.data_size(self.shape(&state)))
    }
}
