// SPDX-License-Identifier: GPL-2.0

//! The v1 protocol's front end: the migration region (index 9, type 3 subtype 1).
//!
//! The region starts with `struct vfio_device_migration_info`, whose fields are accessed only at
//! their own offset and width; its data section, one page further, holds one buffer of the
//! stream at a time and can be mapped. A `device_state` write is a request to the one state
//! machine ([`RmttyVfio::request`]); the buffers carry the same stream as v2's data files.
//!
//! Only a transfer the region started moves through it: one of the v2 front end is not the
//! region's (its `pending_bytes` reads 0).
//!
//! Saving, reading `pending_bytes` says how many bytes of the stream are ready and that the
//! buffer before was consumed; the `data_offset` read after it fills the next buffer. Resuming,
//! the user writes a buffer's bytes and then their number to `data_size`, which hands them to
//! the stream's loader.

use super::{
    FrontEnd,
    Machine,
    Transfer, //
};
use crate::device::{
    write_in_parts,
    DeviceState,
    RmttyVfio, //
};
use crate::stream::{
    Sink,
    Source, //
};
use core::mem::{
    offset_of,
    size_of, //
};
use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    sync::Arc,
    uaccess::{
        UserSliceReader,
        UserSliceWriter, //
    },
    uapi::{
        self,
        vfio_device_migration_info as Header, //
    },
    vfio::{
        self,
        migration::State,
        MappableBuffer, //
    },
};

const RUNNING: u32 = uapi::VFIO_DEVICE_STATE_V1_RUNNING;
const SAVING: u32 = uapi::VFIO_DEVICE_STATE_V1_SAVING;
const RESUMING: u32 = uapi::VFIO_DEVICE_STATE_V1_RESUMING;

const DEVICE_STATE: usize = offset_of!(Header, device_state);
const RESERVED: usize = offset_of!(Header, reserved);
const PENDING_BYTES: usize = offset_of!(Header, pending_bytes);
const DATA_OFFSET: usize = offset_of!(Header, data_offset);
const DATA_SIZE: usize = offset_of!(Header, data_size);

/// Where the data section starts: a page of its own, so that it can be mapped.
pub(crate) const DATA_SECTION: usize = PAGE_SIZE;
/// The size of the data section, and of the largest buffer.
pub(crate) const DATA_CAPACITY: usize = 1 << 20;
/// The size of the region.
pub(crate) const REGION_SIZE: usize = DATA_SECTION + DATA_CAPACITY;
/// The pages of the data section.
pub(crate) const DATA_PAGES: usize = DATA_CAPACITY / PAGE_SIZE;

/// The v1 bits of a state of the machine; the `P2P` states read as their plain ones.
fn v1_bits(state: State) -> u32 {
    match state {
        State::Stop => 0,
        State::Running | State::RunningP2p => RUNNING,
        State::PreCopy | State::PreCopyP2p => RUNNING | SAVING,
        State::StopCopy => SAVING,
        State::Resuming => RESUMING,
        // Never entered: no arc leads there.
        State::Error => SAVING | RESUMING,
    }
}

/// The state v1 bits request: the five valid ones; 110b (error), 101b, 111b and any bit above
/// the three are not.
fn requested(bits: u32) -> Option<State> {
    Some(match bits {
        0 => State::Stop,
        RUNNING => State::Running,
        b if b == RUNNING | SAVING => State::PreCopy,
        SAVING => State::StopCopy,
        RESUMING => State::Resuming,
        _ => return None,
    })
}

/// The buffer of a v1 transfer, kept with the machine.
///
/// # Invariants
///
/// `len <= DATA_CAPACITY`.
pub(crate) struct RegionBuffer {
    /// Saving: the bytes of the current buffer. Resuming: the bytes of the last one written.
    len: usize,
    /// Saving: whether `pending_bytes` was read since the current buffer was filled, so that the
    /// next `data_offset` read fills the next one.
    consumed: bool,
}

impl RegionBuffer {
    /// No buffer yet.
    pub(crate) const fn new() -> Self {
        // INVARIANT: 0 bytes.
        Self {
            len: 0,
            consumed: true,
        }
    }

    /// Saving: the bytes of the stream the buffer holds that the user has not consumed yet.
    pub(crate) fn unconsumed(&self) -> usize {
        if self.consumed {
            0
        } else {
            self.len
        }
    }
}

/// Fills the data section from its start.
struct Filler<'a> {
    section: &'a MappableBuffer,
    len: usize,
}

impl Sink for Filler<'_> {
    fn room(&self) -> usize {
        DATA_CAPACITY - self.len
    }

    fn put(&mut self, bytes: &[u8]) -> Result {
        self.section.write(self.len, bytes)?;
        self.len += bytes.len();
        Ok(())
    }
}

/// Reads the first `len` bytes of the data section.
struct Drainer<'a> {
    section: &'a MappableBuffer,
    pos: usize,
    len: usize,
}

impl Source for Drainer<'_> {
    fn left(&self) -> usize {
        self.len - self.pos
    }

    fn take(&mut self, out: &mut [u8]) -> Result {
        self.section.read(self.pos, out)?;
        self.pos += out.len();
        Ok(())
    }
}

/// Which header field an access of `len` bytes at `offset` is, if it is exactly one.
fn field(offset: usize, len: usize) -> Option<usize> {
    [
        (DEVICE_STATE, size_of::<u32>()),
        (RESERVED, size_of::<u32>()),
        (PENDING_BYTES, size_of::<u64>()),
        (DATA_OFFSET, size_of::<u64>()),
        (DATA_SIZE, size_of::<u64>()),
    ]
    .into_iter()
    .find(|&(at, width)| at == offset && width == len)
    .map(|(at, _)| at)
}

/// Which way a data section access goes.
#[derive(Clone, Copy)]
enum Access {
    Read,
    Write,
}

/// Where in the data section an access of `len` bytes at `offset` of the region falls, if the
/// region's own transfer allows it: reads inside the buffer being saved, writes anywhere in the
/// data section while resuming.
fn data_window(machine: &Machine, offset: usize, len: usize, access: Access) -> Result<usize> {
    let limit = match (&machine.transfer, machine.owner, access) {
        (Transfer::Saving(_), FrontEnd::V1, Access::Read) => machine.region.len,
        (Transfer::Loading(_), FrontEnd::V1, Access::Write) => DATA_CAPACITY,
        _ => return Err(EINVAL),
    };
    let at = offset - DATA_SECTION;
    match at.checked_add(len) {
        Some(end) if end <= limit => Ok(at),
        _ => Err(EINVAL),
    }
}

impl RmttyVfio {
    /// Reads `buf.len()` bytes at `offset` of the migration region.
    pub(crate) fn migration_region_read(
        &self,
        buf: &mut UserSliceWriter,
        offset: usize,
    ) -> Result<usize> {
        let len = buf.len();
        let mut state = self.device_state().lock();
        if offset >= DATA_SECTION {
            let at = data_window(&state.migration, offset, len, Access::Read)?;
            self.data_section()?.read_to_user(at, buf)?;
            return Ok(len);
        }
        let value: u64 = match field(offset, len).ok_or(EINVAL)? {
            DEVICE_STATE => v1_bits(state.migration.state).into(),
            PENDING_BYTES => self.pending_bytes(&mut state) as u64,
            DATA_OFFSET => {
                self.prepare_buffer(&mut state)?;
                DATA_SECTION as u64
            }
            DATA_SIZE => state.migration.region.len as u64,
            _ => 0,
        };
        // In the CPU's byte order, like any uAPI structure, at the field's own width.
        if len == size_of::<u32>() {
            // CAST: The 4-byte fields hold the three state bits or 0.
            buf.write_slice(&(value as u32).to_ne_bytes())?;
        } else {
            buf.write_slice(&value.to_ne_bytes())?;
        }
        Ok(len)
    }

    /// Writes `buf.len()` bytes at `offset` of the migration region.
    pub(crate) fn migration_region_write(
        &self,
        buf: &mut UserSliceReader,
        offset: usize,
    ) -> Result<usize, vfio::Refusal> {
        let len = buf.len();
        if offset >= DATA_SECTION {
            data_window(
                &self.device_state().lock().migration,
                offset,
                len,
                Access::Write,
            )?;
            // Like any region write, all or nothing in each part: a fault in the user's buffer
            // leaves the data section as it was.
            return write_in_parts(buf, |done, bytes| {
                let state = self.device_state().lock();
                let at = data_window(&state.migration, offset + done, bytes.len(), Access::Write)?;
                Ok(self.data_section()?.write(at, bytes)?)
            });
        }
        let field = field(offset, len).ok_or(EINVAL)?;
        let value = if len == size_of::<u32>() {
            u64::from(u32::from_ne_bytes(buf.read()?))
        } else {
            u64::from_ne_bytes(buf.read()?)
        };
        match field {
            // CAST: A 4-byte field.
            DEVICE_STATE => self.set_v1_state(value as u32)?,
            RESERVED => {}
            DATA_SIZE => self.consume_buffer(&mut self.device_state().lock(), value)?,
            // `pending_bytes` and `data_offset` are read-only.
            _ => return Err(EINVAL.into()),
        }
        Ok(len)
    }

    /// The data section of the device's migration region, allocated the first time it is
    /// needed and kept while the device is open.
    pub(crate) fn data_section(&self) -> Result<Arc<MappableBuffer>> {
        let mut section = self.migration_data().lock();
        if let Some(section) = &*section {
            return Ok(section.clone());
        }
        let new = Arc::new(MappableBuffer::new(DATA_PAGES)?, GFP_KERNEL)?;
        *section = Some(new.clone());
        Ok(new)
    }

    /// `device_state` write: moves the machine to the state `bits` request, along the arcs a v2
    /// request takes; on failure the state stays what it was.
    fn set_v1_state(&self, bits: u32) -> Result<(), vfio::Refusal> {
        let Some(new) = requested(bits) else {
            return Err(self.refused(
                EINVAL,
                fmt!("migration region: device_state {bits:#x} is not a state"),
            ));
        };
        // The state read back: the `P2P` states are the plain ones to v1.
        if v1_bits(self.device_state().lock().migration.state) == bits {
            return Ok(());
        }
        if matches!(new, State::PreCopy | State::StopCopy | State::Resuming) {
            // Before any arc: without its data section a transfer could not go on.
            self.data_section()?;
        }
        self.request(new, FrontEnd::V1, |_, _| Ok(()))?;
        Ok(())
    }

    /// `pending_bytes` read: the bytes of the stream a buffer can take now, which are all of its
    /// rest in stop-and-copy. Also says that the current buffer was consumed.
    fn pending_bytes(&self, state: &mut DeviceState) -> usize {
        let machine = &mut state.migration;
        let (Transfer::Saving(saver), FrontEnd::V1) = (&machine.transfer, machine.owner) else {
            return 0;
        };
        machine.region.consumed = true;
        if saver.stopped() {
            saver.remaining()
        } else {
            saver.initial_bytes() + saver.dirty_bytes()
        }
    }

    /// `data_offset` read while saving: fills the next buffer, once the current one is consumed.
    fn prepare_buffer(&self, state: &mut DeviceState) -> Result {
        let DeviceState {
            migration, memory, ..
        } = state;
        let (Transfer::Saving(saver), FrontEnd::V1) = (&mut migration.transfer, migration.owner)
        else {
            return Ok(());
        };
        if !migration.region.consumed {
            return Ok(());
        }
        let section = self.data_section()?;
        let mut filler = Filler {
            section: &section,
            len: 0,
        };
        saver.read(memory.bytes_mut(), &mut filler)?;
        // INVARIANT: The filler stops at the capacity.
        migration.region = RegionBuffer {
            len: filler.len,
            consumed: false,
        };
        Ok(())
    }

    /// `data_size` write while resuming: loads the first `size` bytes of the data section.
    fn consume_buffer(&self, state: &mut DeviceState, size: u64) -> Result<(), vfio::Refusal> {
        let machine = &mut state.migration;
        let (Transfer::Loading(loader), FrontEnd::V1) = (&mut machine.transfer, machine.owner)
        else {
            return Err(EINVAL.into());
        };
        let len = usize::try_from(size)
            .ok()
            .filter(|&len| len <= DATA_CAPACITY)
            .ok_or(EINVAL)?;
        let section = self.data_section()?;
        let mut drainer = Drainer {
            section: &section,
            pos: 0,
            len,
        };
        let taken = loader
            .write(&mut drainer)
            .map_err(|(err, refusal)| match refusal {
                Some(refusal) => self.stream_refused(err, refusal),
                None => err.into(),
            })?;
        // Only a kernel error stops a loader short of its source's end, and it says so.
        if taken != len {
            return Err(EIO.into());
        }
        // INVARIANT: `len <= DATA_CAPACITY`.
        machine.region.len = len;
        Ok(())
    }
}
