// SPDX-License-Identifier: GPL-2.0

//! Migration of VFIO devices: the v2 protocol (`VFIO_DEVICE_FEATURE_MIGRATION`).
//!
//! A driver whose device can be migrated implements [`Migration`] besides [`DeviceOps`] and
//! registers the device with [`Registration::new_migratable`](super::Registration::new_migratable).
//! The VFIO core then answers `VFIO_DEVICE_FEATURE_MIGRATION` with the driver's [`Features`] and
//! passes `MIG_DEVICE_STATE` and `MIG_DATA_SIZE` requests to it.
//!
//! The device's state is moved from one [`State`] to another along the arcs of the protocol's
//! state machine; [`Transition::next`] gives the next step of a request that needs several. A step
//! that starts a transfer of the device's state hands back a [`DataFile`], which userspace reads
//! the state from (saving) or writes it to (resuming); VFIO_MIG_GET_PRECOPY_INFO on it is answered
//! through [`PrecopyInfo`].
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h)

use super::{
    DeviceOps,
    Refusal, //
};
use crate::{
    anon_inode::{
        self,
        Access, //
    },
    bindings,
    error::to_result,
    fs::File,
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        Mutex, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi, ThisModule,
};
use core::{
    fmt,
    marker::PhantomData,
    mem::{
        offset_of,
        size_of, //
    },
};

/// A state of the migration state machine (`enum vfio_device_mig_state`).
///
/// # Examples
///
/// ```
/// use kernel::vfio::migration::State;
///
/// assert_eq!(State::from_raw(2), Some(State::Running));
/// assert_eq!(State::from_raw(8), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    /// The device failed a transition and needs a reset; never requested.
    Error = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_ERROR,
    /// Neither running nor transferring.
    Stop = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP,
    /// Running normally.
    Running = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING,
    /// Stopped, its state being saved.
    StopCopy = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP_COPY,
    /// Stopped, its state being loaded.
    Resuming = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_RESUMING,
    /// Running, but neither starting DMA nor interrupts to its peers.
    RunningP2p = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING_P2P,
    /// Running, its state being saved ahead of the stop (pre-copy).
    PreCopy = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY,
    /// [`State::PreCopy`] without DMA or interrupts to its peers.
    PreCopyP2p = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY_P2P,
}

impl State {
    /// The state of uAPI value `raw`, if it names one.
    pub fn from_raw(raw: u32) -> Option<Self> {
        [
            Self::Error,
            Self::Stop,
            Self::Running,
            Self::StopCopy,
            Self::Resuming,
            Self::RunningP2p,
            Self::PreCopy,
            Self::PreCopyP2p,
        ]
        .into_iter()
        .find(|state| *state as u32 == raw)
    }
}

// Log lines show a state with the kernel's `Display`; messages that include one format it with
// `core`'s.
impl crate::fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "ERROR",
            Self::Stop => "STOP",
            Self::Running => "RUNNING",
            Self::StopCopy => "STOP_COPY",
            Self::Resuming => "RESUMING",
            Self::RunningP2p => "RUNNING_P2P",
            Self::PreCopy => "PRE_COPY",
            Self::PreCopyP2p => "PRE_COPY_P2P",
        })
    }
}

/// The migration features of a device (`VFIO_MIGRATION_*`), which decide the states and arcs of
/// its state machine.
///
/// # Examples
///
/// ```
/// use kernel::{uapi, vfio::migration::Features};
///
/// const FEATURES: Features = Features::STOP_COPY.and(Features::PRE_COPY);
/// let bits = uapi::VFIO_MIGRATION_STOP_COPY | uapi::VFIO_MIGRATION_PRE_COPY;
/// assert_eq!(FEATURES.bits(), bits);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features(u32);

impl Features {
    /// Stop-and-copy: `STOP`, `STOP_COPY` and `RESUMING`. Every migratable device has it.
    pub const STOP_COPY: Self = Self(uapi::VFIO_MIGRATION_STOP_COPY);
    /// The `*_P2P` states.
    pub const P2P: Self = Self(uapi::VFIO_MIGRATION_P2P);
    /// Pre-copy: the `PRE_COPY*` states.
    pub const PRE_COPY: Self = Self(uapi::VFIO_MIGRATION_PRE_COPY);

    /// Both `self` and `other`.
    pub const fn and(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The `VFIO_MIGRATION_*` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The next state on the way from `cur` to `new` of a device with these features, as
    /// [`Transition::next`] gives it for such a device: the VFIO core's arcs.
    ///
    /// For a driver that moves its device's state machine outside [`Migration::set_state`], e.g.
    /// from a region of another migration interface, so that every request walks the same arcs.
    /// Fails with `EINVAL` if `cur` or `new` is not a state of the features, or the protocol
    /// forbids the way from one to the other.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::vfio::migration::{Features, State};
    ///
    /// let features = Features::STOP_COPY.and(Features::P2P).and(Features::PRE_COPY);
    /// assert!(matches!(features.next(State::Running, State::Stop), Ok(State::RunningP2p)));
    /// assert!(features.next(State::StopCopy, State::PreCopy).is_err());
    /// assert!(Features::STOP_COPY.next(State::Running, State::PreCopy).is_err());
    /// ```
    pub fn next(self, cur: State, new: State) -> Result<State> {
        let mut next = 0;
        // SAFETY: `next` is valid for writes.
        to_result(unsafe {
            bindings::vfio_mig_next_state(self.0, cur as u32, new as u32, &mut next)
        })?;
        State::from_raw(next).ok_or(EINVAL)
    }
}

/// The migration ops of a VFIO device.
///
/// # Examples
///
/// A device that can only be stopped and started, whose state is empty: it has no transfers,
/// and the request for `STOP_COPY` or `RESUMING` is refused.
///
/// ```
/// use kernel::{
///     prelude::*,
///     sync::Mutex,
///     vfio::{
///         self,
///         migration::{DataFile, Features, Migration, State, Transition},
///         Refusal,
///     },
/// };
///
/// #[pin_data]
/// struct Simple {
///     #[pin]
///     state: Mutex<State>,
/// }
///
/// #[vtable]
/// impl vfio::DeviceOps for Simple {
///     const NAME: &'static CStr = c"simple";
/// }
///
/// impl Migration for Simple {
///     const FEATURES: Features = Features::STOP_COPY;
///
///     fn set_state(
///         &self,
///         transition: &Transition<'_>,
///         new: State,
///     ) -> Result<Option<DataFile>, Refusal> {
///         let mut state = self.state.lock();
///         while *state != new {
///             match transition.next(*state, new)? {
///                 next @ (State::Stop | State::Running) => *state = next,
///                 _ => return Err(EINVAL.into()),
///             }
///         }
///         Ok(None)
///     }
///
///     fn state(&self) -> Result<State, Refusal> {
///         Ok(*self.state.lock())
///     }
///
///     fn data_size(&self) -> Result<usize, Refusal> {
///         Ok(0)
///     }
/// }
/// ```
///
/// The VFIO core does not serialize the requests: a driver keeps its state under a lock of its
/// own and walks a request to its end under that lock. Opening and closing the device and
/// `VFIO_DEVICE_RESET` should bring it back to [`State::Running`], ending any transfer: a data
/// file of an ended transfer must fail its reads and writes from then on.
pub trait Migration: DeviceOps {
    /// The features of the device. They must include [`Features::STOP_COPY`].
    const FEATURES: Features;

    /// Moves the device to state `new`, by as many steps as [`Transition::next`] gives; returns
    /// the data file of a transfer the request started, if any.
    ///
    /// On failure the device may stay in any state of the path; userspace reads it back.
    fn set_state(
        &self,
        transition: &Transition<'_>,
        new: State,
    ) -> Result<Option<DataFile>, Refusal>;

    /// The device's current state.
    fn state(&self) -> Result<State, Refusal>;

    /// How many bytes the device's state takes in stop-and-copy, from now on.
    fn data_size(&self) -> Result<usize, Refusal>;
}

/// A `MIG_DEVICE_STATE` request in progress on a device, given to [`Migration::set_state`].
///
/// # Examples
///
/// Walking a request to its end, one arc at a time:
///
/// ```
/// use kernel::{prelude::*, vfio::migration::{State, Transition}};
///
/// fn walk(transition: &Transition<'_>, mut cur: State, new: State) -> Result<State> {
///     while cur != new {
///         cur = transition.next(cur, new)?;
///     }
///     Ok(cur)
/// }
/// ```
///
/// # Invariants
///
/// `vdev` is a registered device with [`Migration`] ops, open by the userspace that made the
/// request, for `'a`.
pub struct Transition<'a> {
    vdev: *mut bindings::vfio_device,
    _p: PhantomData<&'a ()>,
}

impl Transition<'_> {
    /// # Safety
    ///
    /// `vdev` must be a device with migration ops, open for the life of the result.
    pub(super) unsafe fn new(vdev: *mut bindings::vfio_device) -> Self {
        // INVARIANT: By the safety requirements.
        Self {
            vdev,
            _p: PhantomData,
        }
    }

    /// The next state on the way from `cur` to `new`: `new` itself if it is one arc away, else
    /// the first state of the shortest path the protocol allows. Fails with `EINVAL` if the
    /// device's features do not allow `new`, or the protocol forbids the way there.
    pub fn next(&self, cur: State, new: State) -> Result<State> {
        let mut next = 0;
        // SAFETY: By the type invariant `self.vdev` is a registered device; `next` is valid for
        // writes.
        to_result(unsafe {
            bindings::vfio_mig_get_next_state(self.vdev, cur as u32, new as u32, &mut next)
        })?;
        State::from_raw(next).ok_or(EINVAL)
    }

    /// The module that implements the device: the module of its driver.
    fn owner(&self) -> Option<ThisModule> {
        // SAFETY: By the type invariant the device is registered and open, so its parent is
        // bound to its driver, which cannot go while the device is open.
        let owner = unsafe {
            let driver = (*(*self.vdev).dev).driver;
            if driver.is_null() {
                return None;
            }
            (*driver).owner
        };
        // SAFETY: The driver's module is loaded while the device is open.
        Some(unsafe { ThisModule::from_ptr(owner) })
    }

    /// How `VFIO_MIG_GET_PRECOPY_INFO` requests on data files of this transfer are answered.
    pub fn precopy_info(&self) -> PrecopyInfo {
        // SAFETY: By the type invariant the device is registered.
        let open = unsafe { super::open_device_of(self.vdev) };
        PrecopyInfo { open }
    }
}

/// The data file of a migration transfer, which userspace reads the device's state from or writes
/// it to. It is a stream, and an anonymous-inode file of the driver's [`anon_inode::Operations`].
///
/// # Examples
///
/// A transfer that reads as a fixed buffer:
///
/// ```
/// use kernel::{
///     anon_inode,
///     prelude::*,
///     sync::{Arc, ArcBorrow},
///     uaccess::UserSliceWriter,
///     vfio::migration::{DataFile, Transition},
/// };
///
/// struct Saved(KVec<u8>);
///
/// #[vtable]
/// impl anon_inode::Operations for Saved {
///     type Ptr = Arc<Saved>;
///
///     fn read(this: ArcBorrow<'_, Saved>, buf: &mut UserSliceWriter) -> Result<usize> {
///         let len = buf.len().min(this.0.len());
///         buf.write_slice(&this.0[..len])?;
///         Ok(len)
///     }
/// }
///
/// fn start_saving(transition: &Transition<'_>, state: KVec<u8>) -> Result<DataFile> {
///     DataFile::saving::<Saved>(transition, c"example_mig", Arc::new(Saved(state), GFP_KERNEL)?)
/// }
/// ```
pub struct DataFile(ARef<File>);

impl DataFile {
    fn new<T: anon_inode::Operations>(
        transition: &Transition<'_>,
        name: &'static CStr,
        data: T::Ptr,
        access: Access,
    ) -> Result<Self> {
        let owner = transition.owner().ok_or(ENODEV)?;
        anon_inode::create::<T>(name, &owner, data, access).map(Self)
    }

    /// A file that userspace reads a saved state from, implemented by `T` on `data`.
    pub fn saving<T: anon_inode::Operations>(
        transition: &Transition<'_>,
        name: &'static CStr,
        data: T::Ptr,
    ) -> Result<Self> {
        Self::new::<T>(transition, name, data, Access::ReadOnly)
    }

    /// A file that userspace writes a state to load to, implemented by `T` on `data`.
    pub fn resuming<T: anon_inode::Operations>(
        transition: &Transition<'_>,
        name: &'static CStr,
        data: T::Ptr,
    ) -> Result<Self> {
        Self::new::<T>(transition, name, data, Access::WriteOnly)
    }

    /// Hands the file's reference to the VFIO core, which installs it as a file descriptor.
    pub(super) fn into_raw(self) -> *mut bindings::file {
        ARef::into_raw(self.0).as_ptr().cast()
    }
}

/// The error of a pre-copy `read()` of a data file when no data is ready for now
/// (`ENOMSG`): more may come, unlike at the end of the stream, where `read()` returns 0.
pub fn nothing_ready() -> Error {
    // CAST: A small errno.
    Error::from_errno(-(bindings::ENOMSG as c_int))
}

/// Whether a migratable device is open, for the data files of its transfers, which may outlive
/// it: their `VFIO_MIG_GET_PRECOPY_INFO` is checked by the VFIO core against the device, which
/// only lives while it is registered, and unregistration waits for the device to be closed.
///
/// # Invariants
///
/// `vdev` is the device while it is open, and null while it is not.
#[pin_data]
pub(crate) struct OpenDevice {
    #[pin]
    vdev: Mutex<DevicePtr>,
}

/// A pointer to a `struct vfio_device`, which [`OpenDevice`] shares between threads.
struct DevicePtr(*mut bindings::vfio_device);

// SAFETY: The pointer is only dereferenced under the lock of the `OpenDevice` that holds it, while
// the device is open, and the VFIO core's functions it is passed to may run on any thread.
unsafe impl Send for DevicePtr {}

impl OpenDevice {
    /// The state of a device that is not open.
    pub(super) fn new() -> impl PinInit<Self> {
        // INVARIANT: Not open.
        pin_init!(Self {
            vdev <- new_mutex!(DevicePtr(core::ptr::null_mut())),
        })
    }

    /// Records that `vdev` is open, or closed (null), for the VFIO core's open and close callbacks.
    ///
    /// # Safety
    ///
    /// `vdev` must be the device of this state, called by its open callback (after the driver's
    /// open succeeded) or with null by its close callback (before the driver's close).
    pub(super) unsafe fn set(&self, vdev: *mut bindings::vfio_device) {
        // INVARIANT: By the safety requirements.
        self.vdev.lock().0 = vdev;
    }
}

/// How the data files of a transfer answer `VFIO_MIG_GET_PRECOPY_INFO`: checked by the VFIO
/// core's `vfio_check_precopy_ioctl()` on each request, while the device is open.
///
/// # Examples
///
/// A data file's ioctl:
///
/// ```
/// use kernel::{prelude::*, uaccess::UserPtr, vfio::migration::PrecopyInfo};
///
/// fn ioctl(precopy: &PrecopyInfo, cmd: u32, arg: UserPtr, left: u64) -> Result<isize> {
///     // Everything left is of the first pass; nothing is dirty.
///     precopy.answer(cmd, arg, || Ok((left, 0)))
/// }
/// ```
#[derive(Clone)]
pub struct PrecopyInfo {
    /// The open state of the device, which has one since it has migration ops.
    open: Option<Arc<OpenDevice>>,
}

/// The ioctl number of `VFIO_MIG_GET_PRECOPY_INFO`.
pub const GET_PRECOPY_INFO: u32 = crate::ioctl::_IO(uapi::VFIO_TYPE as u32, uapi::VFIO_BASE + 21);

impl PrecopyInfo {
    const MINSZ: usize = offset_of!(bindings::vfio_precopy_info, dirty_bytes) + size_of::<u64>();

    /// Answers ioctl `cmd` of a data file with argument `arg` if it is
    /// `VFIO_MIG_GET_PRECOPY_INFO`: fails with `ENOTTY` for any other command, `ENODEV` once the
    /// device is closed, `EFAULT` or `EINVAL` for a bad argument, or what `sizes` fails with;
    /// otherwise writes the `(initial_bytes, dirty_bytes)` that `sizes` gives.
    ///
    /// The device's closing waits for the core's check of the argument, not for `sizes`.
    pub fn answer(
        &self,
        cmd: u32,
        arg: UserPtr,
        sizes: impl FnOnce() -> Result<(u64, u64)>,
    ) -> Result<isize> {
        if cmd != GET_PRECOPY_INFO {
            return Err(ENOTTY);
        }
        let open = self.open.as_ref().ok_or(ENODEV)?;
        let mut info: bindings::vfio_precopy_info = pin_init::zeroed();
        {
            // Held only for the core's check, whose argument copy a close waits for.
            let vdev = open.vdev.lock();
            if vdev.0.is_null() {
                return Err(ENODEV);
            }
            // SAFETY: By the type invariant of `OpenDevice` the device is open, and so
            // registered, while the lock is held; `info` is valid for writes.
            to_result(unsafe {
                bindings::vfio_check_precopy_ioctl(
                    vdev.0,
                    cmd,
                    arg.as_mut_ptr() as c_ulong,
                    &mut info,
                )
            })?;
        }
        let (initial, dirty) = sizes()?;
        let mut writer = UserSlice::new(arg, Self::MINSZ).writer();
        writer.write(&info.argsz)?;
        // The first version's flags are left as the user put them; the core cleared them for
        // the second, where they are output, and nothing is flagged.
        writer.write(&info.flags)?;
        writer.write(&initial)?;
        writer.write(&dirty)?;
        Ok(0)
    }
}
