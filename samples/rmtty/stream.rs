// SPDX-License-Identifier: GPL-2.0

//! The saved-state stream: what a migration of an rmtty device moves, whichever protocol carries
//! it. `migration-stream.md` documents the format; this module writes it ([`Saver`]) and reads it
//! ([`Loader`]).
//!
//! A saver produces the stream on demand, one record at a time, reading the device memory as it
//! goes: it never copies the memory up front. A loader checks each piece the moment its last byte
//! arrives and keeps what it loaded aside; nothing reaches the device until the whole stream has
//! arrived and [`Loader::finish`] accepted it.

use crate::{
    pci::CONFIG_SIZE,
    uart,
    version::{
        Shape,
        Stream, //
    },
};
use kernel::{
    crc::crc32c,
    prelude::*,
    uaccess::{
        UserSliceReader,
        UserSliceWriter, //
    },
};

mod load;
mod save;

pub(crate) use load::{
    Loader,
    Refusal, //
};
pub(crate) use save::{
    Saver,
    Tail, //
};

/// The first bytes of every stream.
pub(crate) const MAGIC: [u8; 8] = *b"RMTTYMIG";
/// Size of the stream's header.
pub(crate) const HEADER_SIZE: usize = 32;
/// Size of a record's header: type, flags, payload length and CRC.
pub(crate) const RECORD_HEADER_SIZE: usize = 12;
/// Device memory is sent in pages of this size.
pub(crate) const PAGE_SIZE: usize = 4096;
/// The payload of a page record: the page's index, a reserved word and the page.
const PAGE_PAYLOAD: usize = 8 + PAGE_SIZE;
/// The size of a page record.
pub(crate) const PAGE_RECORD_SIZE: usize = RECORD_HEADER_SIZE + PAGE_PAYLOAD;
/// The largest payload of a record this driver does not know.
const MAX_UNKNOWN_PAYLOAD: usize = 1 << 16;

/// A record flag: a loader that does not know the record's type must refuse the stream.
const REQUIRED: u16 = 1;

// Record types.
const CONFIG: u16 = 1;
const UART: u16 = 2;
const PAGE: u16 = 3;
/// Since 1.1, before the end: what came before it. Written without `REQUIRED`: a 1.0 reader
/// skips it.
const SUMMARY: u16 = 4;
const END: u16 = 0xffff;

/// The payload of a summary record: the stream's bytes before the record (u64), the page records
/// among them (u32, modulo 2^32) and a reserved word.
const SUMMARY_PAYLOAD: usize = 16;

/// What a stream of `version` ends with, after the device memory: the config and UART records,
/// from 1.1 the summary record, and the end.
pub(crate) fn tail_size(version: Stream) -> usize {
    let tail = 3 * RECORD_HEADER_SIZE + CONFIG_SIZE + uart::SAVED_SIZE;
    match version {
        Stream::V1_0 => tail,
        Stream::V1_1 => tail + RECORD_HEADER_SIZE + SUMMARY_PAYLOAD,
    }
}

/// The number of pages of a device of `shape`.
pub(crate) fn pages(shape: Shape) -> usize {
    // At most 1 GiB: the module parameters bound the pool.
    (shape.memory_mib as usize) << 20 >> 12
}

/// The header of a stream of `version` for a device of `shape`.
fn header(shape: Shape, version: Stream) -> [u8; HEADER_SIZE] {
    let mut header = [0; HEADER_SIZE];
    header[0..8].copy_from_slice(&MAGIC);
    // CAST: The versions are small.
    header[8..10].copy_from_slice(&(Stream::MAJOR as u16).to_le_bytes());
    header[10..12].copy_from_slice(&(version.minor() as u16).to_le_bytes());
    // Flags at 12..16: none are defined.
    header[16..20].copy_from_slice(&shape.memory_mib.to_le_bytes());
    header[20..24].copy_from_slice(&shape.ports.to_le_bytes());
    let crc = crc32c(&header[..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    // Reserved at 28..32.
    header
}

fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from(le32(bytes, at)) | u64::from(le32(bytes, at + 4)) << 32
}

/// The CRC of a record: over its type, flags and length, then its payload.
fn record_crc(head: &[u8], payload: &[u8]) -> u32 {
    let raw = kernel::crc::crc32c_update(!0, &head[..8]);
    !kernel::crc::crc32c_update(raw, payload)
}

/// A byte buffer filled by slice copies into memory allocated (and zeroed) once, at the largest
/// size it has needed so far: growing a vector writes its new bytes one at a time, which was most
/// of the time a save or a load took.
///
/// # Invariants
///
/// `len <= buf.len()`.
struct Buffer {
    buf: KVec<u8>,
    len: usize,
}

impl Buffer {
    /// An empty buffer with room for `size` bytes.
    fn new(size: usize) -> Result<Self> {
        // INVARIANT: Empty.
        Ok(Self {
            buf: KVec::from_elem(0, size, GFP_KERNEL_ACCOUNT)?,
            len: 0,
        })
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    /// The bytes it holds.
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The `n` bytes after the ones it holds, to fill before [`Buffer::add`] counts them; the
    /// buffer grows if they do not fit.
    fn spare(&mut self, n: usize) -> Result<&mut [u8]> {
        let end = self.len.checked_add(n).ok_or(EINVAL)?;
        if end > self.buf.len() {
            self.buf.resize(end, 0, GFP_KERNEL_ACCOUNT)?;
        }
        Ok(&mut self.buf[self.len..end])
    }

    /// Counts `n` more bytes, which [`Buffer::spare`] gave room for.
    fn add(&mut self, n: usize) {
        // INVARIANT: `spare(n)` made `buf` hold them.
        self.len = (self.len + n).min(self.buf.len());
    }

    fn append(&mut self, bytes: &[u8]) -> Result {
        self.spare(bytes.len())?.copy_from_slice(bytes);
        self.add(bytes.len());
        Ok(())
    }
}

/// Appends a record of `kind` with `flags` and `payload` to `out`.
fn push_record(out: &mut Buffer, kind: u16, flags: u16, payload: &[&[u8]]) -> Result {
    let len: usize = payload.iter().map(|part| part.len()).sum();
    let start = out.len();
    out.append(&kind.to_le_bytes())?;
    out.append(&flags.to_le_bytes())?;
    // CAST: Records are at most a page and a few bytes.
    out.append(&(len as u32).to_le_bytes())?;
    out.append(&[0; 4])?;
    for part in payload {
        out.append(part)?;
    }
    let record = &mut out.buf[start..out.len];
    let crc = record_crc(record, &record[RECORD_HEADER_SIZE..]);
    record[8..12].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Where a saver's bytes go: a user buffer (the v2 data file), or a kernel buffer.
pub(crate) trait Sink {
    /// How many more bytes fit.
    fn room(&self) -> usize;
    /// Appends `bytes`, which fit.
    fn put(&mut self, bytes: &[u8]) -> Result;
}

impl Sink for UserSliceWriter {
    fn room(&self) -> usize {
        self.len()
    }

    fn put(&mut self, bytes: &[u8]) -> Result {
        self.write_slice(bytes)
    }
}

/// Where a loader's bytes come from.
pub(crate) trait Source {
    /// How many bytes are left.
    fn left(&self) -> usize;
    /// Fills `out` with the next bytes, of which there are enough.
    fn take(&mut self, out: &mut [u8]) -> Result;
}

impl Source for UserSliceReader {
    fn left(&self) -> usize {
        self.len()
    }

    fn take(&mut self, out: &mut [u8]) -> Result {
        self.read_slice(out)
    }
}
