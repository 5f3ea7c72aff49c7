// SPDX-License-Identifier: GPL-2.0

//! The v1 migration protocol: the device's migration region (`VFIO_REGION_TYPE_MIGRATION`, the
//! `_DEPRECATED` names of the 7.2 uAPI), a header (`struct vfio_device_migration_info`) and a
//! data section, as QEMU 5.2 to 7.2 drove it.
//!
//! - States are `device_state`'s bits `RESUMING SAVING RUNNING`, written by read-modify-write
//!   that keeps the bits above them.
//! - Saving: each buffer is read `pending_bytes` (0: nothing more for now, or the end), then
//!   `data_offset` (which makes the device prepare the buffer), `data_size`, then the
//!   `data_size` bytes at `data_offset`. Reading `pending_bytes` again hands the buffer back.
//! - Resuming: each piece is read `data_offset`, the bytes written there, then `data_size`
//!   written with their count, which makes the device take them. Leaving `RESUMING` commits.
//!
//! The region is found and reached by `v1/region.rs` (discovery) and `v1/fd.rs` (the device's
//! descriptor, and an mmap of the data section); this file is the protocol, over any
//! [`RegionAccess`], so that it can be tested against a simulated region.

pub mod fd;
pub mod region;

use crate::transport::{Chunk, Error, Features, MigState, Pending, Result, Transport};
use std::io;
use std::mem::offset_of;
use vfio_bindings::bindings::vfio::{
    vfio_device_migration_info, VFIO_DEVICE_STATE_MASK, VFIO_DEVICE_STATE_V1_RESUMING,
    VFIO_DEVICE_STATE_V1_RUNNING, VFIO_DEVICE_STATE_V1_SAVING,
};

/// A field of the region's header, `struct vfio_device_migration_info`. Each is accessed alone,
/// at its native width and offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `__u32 device_state`: the state bits, and reserved bits above them.
    DeviceState,
    /// `__u64 pending_bytes` (read only): what is still to be saved.
    PendingBytes,
    /// `__u64 data_offset` (read only): where the current buffer is in the region.
    DataOffset,
    /// `__u64 data_size`: the size of the current buffer.
    DataSize,
}

impl Field {
    /// The field's offset in the region.
    pub fn offset(self) -> u64 {
        let offset = match self {
            Field::DeviceState => offset_of!(vfio_device_migration_info, device_state),
            Field::PendingBytes => offset_of!(vfio_device_migration_info, pending_bytes),
            Field::DataOffset => offset_of!(vfio_device_migration_info, data_offset),
            Field::DataSize => offset_of!(vfio_device_migration_info, data_size),
        };
        // CAST: offsets inside a 32-byte struct.
        offset as u64
    }

    /// The field's width in bytes.
    pub fn width(self) -> usize {
        match self {
            Field::DeviceState => 4,
            _ => 8,
        }
    }

    /// The uAPI's name of the field.
    pub fn name(self) -> &'static str {
        match self {
            Field::DeviceState => "device_state",
            Field::PendingBytes => "pending_bytes",
            Field::DataOffset => "data_offset",
            Field::DataSize => "data_size",
        }
    }

    /// `value` as the field's bytes (native endian, [`Field::width`] of them), or `None` if it
    /// does not fit.
    pub fn encode(self, value: u64) -> Option<Vec<u8>> {
        match self.width() {
            4 => u32::try_from(value).ok().map(|v| v.to_ne_bytes().to_vec()),
            _ => Some(value.to_ne_bytes().to_vec()),
        }
    }

    /// The value of the field's `bytes`, if there are [`Field::width`] of them.
    pub fn decode(self, bytes: &[u8]) -> Option<u64> {
        match self.width() {
            4 => Some(u32::from_ne_bytes(bytes.try_into().ok()?).into()),
            _ => Some(u64::from_ne_bytes(bytes.try_into().ok()?)),
        }
    }
}

/// The `device_state` bits of `state`, if v1 has it: `RUNNING` 001, `PRE_COPY` 011 (`SAVING |
/// RUNNING`), `STOP_COPY` 010, `STOP` 000, `RESUMING` 100.
pub fn state_bits(state: MigState) -> Option<u32> {
    let (running, saving, resuming) = (
        VFIO_DEVICE_STATE_V1_RUNNING,
        VFIO_DEVICE_STATE_V1_SAVING,
        VFIO_DEVICE_STATE_V1_RESUMING,
    );
    match state {
        MigState::Stop => Some(0),
        MigState::Running => Some(running),
        MigState::StopCopy => Some(saving),
        MigState::PreCopy => Some(saving | running),
        MigState::Resuming => Some(resuming),
        MigState::Error | MigState::RunningP2p | MigState::PreCopyP2p => None,
    }
}

/// The state a `device_state` value says (its bits above the state's ignored): 110 is v1's
/// error state; 101 and 111 are invalid (`None`).
pub fn state_of(device_state: u32) -> Option<MigState> {
    match device_state & VFIO_DEVICE_STATE_MASK {
        0b110 => Some(MigState::Error),
        bits => MigState::ALL
            .into_iter()
            .find(|&state| state_bits(state) == Some(bits)),
    }
}

/// `device_state` with its state bits replaced by `bits`, the bits above kept.
pub fn with_state_bits(device_state: u32, bits: u32) -> u32 {
    (device_state & !VFIO_DEVICE_STATE_MASK) | (bits & VFIO_DEVICE_STATE_MASK)
}

/// How the data section's bytes move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataAccess {
    /// Copied to and from an mmap of the data section.
    Mmap,
    /// `pread()`/`pwrite()` of the device's descriptor, one call per buffer.
    Pread,
}

impl DataAccess {
    /// The name the reports give it.
    pub fn name(self) -> &'static str {
        match self {
            DataAccess::Mmap => "mmap",
            DataAccess::Pread => "pread/pwrite",
        }
    }
}

/// Where the migration region is and how its data moves, for the transport and the reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The region's index.
    pub index: u32,
    /// The region's size.
    pub size: u64,
    /// `data_offset` as the device gave it when opened: where the data section begins.
    pub data_offset: u64,
    /// The data section's size: from `data_offset` to the end of the region.
    pub data_section: u64,
    /// How the data moves.
    pub access: DataAccess,
    /// Why the data does not move through an mmap, if it does not.
    pub no_mmap_reason: Option<String>,
}

/// Access to a migration region: its header fields and its data, each call one access of the
/// device (or of its mmap).
pub trait RegionAccess {
    /// Reads `field`.
    fn read_field(&mut self, field: Field) -> io::Result<u64>;

    /// Writes `value` to `field`.
    fn write_field(&mut self, field: Field, value: u64) -> io::Result<()>;

    /// Reads `buf.len()` bytes at `offset` in the region.
    fn read_data(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Writes `buf` at `offset` in the region.
    fn write_data(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
}

impl<A: RegionAccess + ?Sized> RegionAccess for &mut A {
    fn read_field(&mut self, field: Field) -> io::Result<u64> {
        (**self).read_field(field)
    }

    fn write_field(&mut self, field: Field, value: u64) -> io::Result<()> {
        (**self).write_field(field, value)
    }

    fn read_data(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_data(offset, buf)
    }

    fn write_data(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        (**self).write_data(offset, buf)
    }
}

/// The buffer a saving device has handed out and the part of it already read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Buffer {
    offset: u64,
    size: u64,
    read: u64,
}

/// The v1 protocol on a migration region.
pub struct V1<A> {
    access: A,
    layout: Layout,
    /// The state last set: whether `pending_bytes == 0` is "nothing for now" (`PRE_COPY`) or
    /// the end of the stream (`STOP_COPY`).
    state: Option<MigState>,
    buffer: Option<Buffer>,
}

/// `field` failed to be read (`write == false`) or written with `err`.
fn field_failed(write: bool, field: Field, err: &io::Error) -> Error {
    let verb = if write { "write" } else { "read" };
    Error::io(format!("{verb} {}", field.name()), err)
}

impl<A: RegionAccess> V1<A> {
    /// The v1 protocol over `access` to the region `layout` describes.
    pub fn new(access: A, layout: Layout) -> Self {
        Self {
            access,
            layout,
            state: None,
            buffer: None,
        }
    }

    /// The region's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn read_field(&mut self, field: Field) -> Result<u64> {
        self.access
            .read_field(field)
            .map_err(|e| field_failed(false, field, &e))
    }

    fn write_field(&mut self, field: Field, value: u64) -> Result<()> {
        self.access
            .write_field(field, value)
            .map_err(|e| field_failed(true, field, &e))
    }

    /// Checks that `size` bytes at `offset` (from `data_offset`) are in the data part of the
    /// region.
    fn check_span(&self, offset: u64, size: u64, what: &str) -> Result<()> {
        let header_end = Field::DataSize.offset() + 8;
        let end = offset.checked_add(size);
        if offset < header_end || end.is_none_or(|end| end > self.layout.size) {
            return Err(Error::other(
                what,
                format!(
                    "{size} bytes at data_offset {offset} are not inside the {}-byte region's \
                     data",
                    self.layout.size
                ),
            ));
        }
        Ok(())
    }

    /// Asks the device for its next buffer: `None` if `pending_bytes` is 0.
    fn next_buffer(&mut self) -> Result<Option<Buffer>> {
        self.buffer = None;
        let pending = self.read_field(Field::PendingBytes)?;
        if pending == 0 {
            return Ok(None);
        }
        let offset = self.read_field(Field::DataOffset)?;
        let size = self.read_field(Field::DataSize)?;
        if size == 0 {
            return Err(Error::other(
                "read data_size",
                format!("0 while pending_bytes is {pending}"),
            ));
        }
        self.check_span(offset, size, "read data_offset, data_size")?;
        Ok(Some(Buffer {
            offset,
            size,
            read: 0,
        }))
    }
}

impl<A: RegionAccess> Transport for V1<A> {
    /// v1 has no flags: a device with the region offers stop-and-copy, and pre-copy (which the
    /// protocol requires of every device, even one with nothing to send before stop-and-copy).
    fn features(&mut self) -> Result<Features> {
        Ok(Features {
            stop_copy: true,
            p2p: false,
            pre_copy: true,
        })
    }

    fn state(&mut self) -> Result<MigState> {
        let value = self.read_field(Field::DeviceState)?;
        // CAST: a 4-byte field.
        let device_state = value as u32;
        state_of(device_state).ok_or_else(|| {
            Error::other(
                "read device_state",
                format!("{device_state:#x} is no v1 state"),
            )
        })
    }

    fn set_state(&mut self, state: MigState) -> Result<()> {
        let bits = state_bits(state).ok_or_else(|| {
            Error::other("write device_state", format!("v1 has no {state} state"))
        })?;
        // CAST: a 4-byte field.
        let old = self.read_field(Field::DeviceState)? as u32;
        self.buffer = None;
        self.write_field(Field::DeviceState, with_state_bits(old, bits).into())?;
        self.state = Some(state);
        Ok(())
    }

    fn data_size(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }

    fn pending(&mut self) -> Result<Pending> {
        if let Some(b) = self.buffer.filter(|b| b.read < b.size) {
            // Reading pending_bytes hands the buffer back.
            return Err(Error::other(
                "read pending_bytes",
                format!(
                    "{} bytes of the current buffer are not read yet",
                    b.size - b.read
                ),
            ));
        }
        self.buffer = None;
        self.read_field(Field::PendingBytes).map(Pending::Total)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<Chunk> {
        let buffer = match self.buffer.filter(|b| b.read < b.size) {
            Some(b) => b,
            None => match self.next_buffer()? {
                Some(b) => b,
                None if self.state == Some(MigState::PreCopy) => return Ok(Chunk::NotReady),
                None => return Ok(Chunk::End),
            },
        };
        // CAST: the rest of the buffer is at most the region's size; buf's length bounds it.
        let n = (buffer.size - buffer.read).min(buf.len() as u64) as usize;
        let at = buffer.offset + buffer.read;
        self.access
            .read_data(at, &mut buf[..n])
            .map_err(|e| Error::io(format!("read of {n} data bytes at region offset {at}"), &e))?;
        self.buffer = Some(Buffer {
            read: buffer.read + n as u64,
            ..buffer
        });
        Ok(Chunk::Data(n))
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        for piece in buf.chunks(self.write_size()) {
            let offset = self.read_field(Field::DataOffset)?;
            let len = piece.len() as u64;
            self.check_span(offset, len, "read data_offset")?;
            self.access.write_data(offset, piece).map_err(|e| {
                Error::io(
                    format!("write of {len} data bytes at data_offset {offset}"),
                    &e,
                )
            })?;
            self.write_field(Field::DataSize, len)?;
        }
        Ok(())
    }

    fn write_size(&self) -> usize {
        usize::try_from(self.layout.data_section).unwrap_or(usize::MAX)
    }

    fn cancel(&mut self) -> Result<Option<MigState>> {
        self.set_state(MigState::Running)?;
        Ok(Some(MigState::Running))
    }
}
