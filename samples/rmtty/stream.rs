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
    device::{
        zeroed,
        Block, //
    },
    pci::{
        ConfigSpace,
        CONFIG_SIZE, //
    },
    uart::{
        self,
        Uart, //
    },
    version::{
        Shape,
        Stream, //
    },
};
use kernel::{
    alloc::kvec::VVec,
    bitmap::BitmapVec,
    crc::crc32c,
    fmt,
    prelude::*,
    uaccess::{
        UserSliceReader,
        UserSliceWriter, //
    },
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
            buf: KVec::from_elem(0, size, GFP_KERNEL)?,
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
            self.buf.resize(end, 0, GFP_KERNEL)?;
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

/// Which part of the stream the bytes of a record belong to, for the pre-copy counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The header and the first pass over the memory.
    Initial,
    /// A page written again after the first pass sent it.
    Dirty,
    /// The config, UART and summary records and the end.
    Tail,
}

/// The config and UART state that end a stream, taken when stop-and-copy begins.
pub(crate) struct Tail {
    pub(crate) config: [u8; CONFIG_SIZE],
    pub(crate) uart: [u8; uart::SAVED_SIZE],
}

/// A saving session: produces the stream of `version` of a device of `shape` as it is read.
///
/// Its first pass sends every page of the memory; pages written after the pass sent them are
/// marked dirty and sent again, until stop-and-copy sends the last of them and the tail.
///
/// # Invariants
///
/// `cursor <= pages`; `dirty` has `pages` bits, `dirty_count` of them set, all below `cursor`;
/// `chunk_pos <= chunk.len()`.
pub(crate) struct Saver {
    shape: Shape,
    version: Stream,
    pages: usize,
    header_sent: bool,
    /// The next page of the first pass.
    cursor: usize,
    dirty: BitmapVec,
    dirty_count: usize,
    /// The bytes of the records filled before `chunk`'s, and the page records among them
    /// (modulo 2^32): for the summary record.
    sent: u64,
    page_records: u32,
    /// Set when stop-and-copy begins.
    tail: Option<Tail>,
    tail_sent: bool,
    /// The bytes of the record being read, how many of them are read, and what they are.
    chunk: Buffer,
    chunk_pos: usize,
    chunk_part: Part,
}

impl Saver {
    /// A session that writes the stream of `version` of a device of `shape`.
    pub(crate) fn new(shape: Shape, version: Stream) -> Result<Self> {
        let pages = pages(shape);
        // INVARIANT: Nothing sent, nothing dirty.
        Ok(Self {
            shape,
            version,
            pages,
            header_sent: false,
            cursor: 0,
            dirty: BitmapVec::new(pages, GFP_KERNEL)?,
            dirty_count: 0,
            sent: 0,
            page_records: 0,
            tail: None,
            tail_sent: false,
            chunk: Buffer::new(PAGE_RECORD_SIZE)?,
            chunk_pos: 0,
            chunk_part: Part::Initial,
        })
    }

    /// The size of the whole stream of `version` of a device of `shape`, saved by stop-and-copy
    /// alone.
    pub(crate) fn full_size(shape: Shape, version: Stream) -> usize {
        HEADER_SIZE + pages(shape) * PAGE_RECORD_SIZE + tail_size(version)
    }

    /// Begins stop-and-copy: after the pages still to send, the stream ends with `tail`.
    pub(crate) fn stop_copy(&mut self, tail: Tail) {
        self.tail = Some(tail);
    }

    /// Whether stop-and-copy has begun.
    pub(crate) fn stopped(&self) -> bool {
        self.tail.is_some()
    }

    /// Notes a write of `len` bytes at `offset` of the device memory: the pages it touched that
    /// were sent already are sent again.
    pub(crate) fn mark_dirty(&mut self, offset: usize, len: usize) {
        if len == 0 || self.tail_sent {
            return;
        }
        let first = offset / PAGE_SIZE;
        let end = ((offset + len - 1) / PAGE_SIZE + 1).min(self.cursor);
        for page in first..end {
            if self.dirty.next_bit(page) != Some(page) {
                // INVARIANT: `page < cursor`, and the bit was clear.
                self.dirty.set_bit(page);
                self.dirty_count += 1;
            }
        }
    }

    fn chunk_left(&self, part: Part) -> usize {
        if self.chunk_part == part {
            self.chunk.len() - self.chunk_pos
        } else {
            0
        }
    }

    /// The bytes of the header and the first pass that are still to be read.
    pub(crate) fn initial_bytes(&self) -> usize {
        let header = if self.header_sent { 0 } else { HEADER_SIZE };
        self.chunk_left(Part::Initial) + header + (self.pages - self.cursor) * PAGE_RECORD_SIZE
    }

    /// The bytes of dirty pages that are still to be read.
    pub(crate) fn dirty_bytes(&self) -> usize {
        self.chunk_left(Part::Dirty) + self.dirty_count * PAGE_RECORD_SIZE
    }

    /// The bytes still to be read to the end of the stream, if stop-and-copy began now.
    pub(crate) fn remaining(&self) -> usize {
        let tail = if self.tail_sent {
            0
        } else {
            tail_size(self.version)
        };
        self.initial_bytes() + self.dirty_bytes() + self.chunk_left(Part::Tail) + tail
    }

    /// Fills `chunk` with the next record; returns false if there is none to send now. On
    /// failure `chunk` is empty and the record is built again on the next call.
    fn refill(&mut self, memory: &[u8]) -> Result<bool> {
        // CAST: A usize fits in a u64.
        self.sent += self.chunk.len() as u64;
        self.chunk.clear();
        self.chunk_pos = 0;
        let filled = self.build_next(memory);
        if filled.is_err() {
            self.chunk.clear();
        }
        filled
    }

    /// Builds the next record in the empty `chunk`; what it sends is marked sent only once the
    /// record is whole.
    fn build_next(&mut self, memory: &[u8]) -> Result<bool> {
        if !self.header_sent {
            self.chunk.append(&header(self.shape, self.version))?;
            self.chunk_part = Part::Initial;
            self.header_sent = true;
        } else if self.cursor < self.pages {
            self.push_page(memory, self.cursor)?;
            self.chunk_part = Part::Initial;
            // INVARIANT: Only pages below the cursor are marked dirty, and this one is sent.
            self.cursor += 1;
        } else if let Some(page) = self.dirty.next_bit(0) {
            self.push_page(memory, page)?;
            self.chunk_part = Part::Dirty;
            self.dirty.clear_bit(page);
            self.dirty_count -= 1;
        } else if let (Some(tail), false) = (&self.tail, self.tail_sent) {
            push_record(&mut self.chunk, CONFIG, REQUIRED, &[&tail.config])?;
            push_record(&mut self.chunk, UART, REQUIRED, &[&tail.uart])?;
            if self.version >= Stream::V1_1 {
                // What came before the summary: the header, every page record sent, the
                // config and UART records.
                // CAST: A usize fits in a u64.
                let before = (self.sent + self.chunk.len() as u64).to_le_bytes();
                let count = self.page_records.to_le_bytes();
                push_record(&mut self.chunk, SUMMARY, 0, &[&before, &count, &[0; 4]])?;
            }
            push_record(&mut self.chunk, END, REQUIRED, &[])?;
            self.chunk_part = Part::Tail;
            self.tail_sent = true;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    fn push_page(&mut self, memory: &[u8], page: usize) -> Result {
        let start = page * PAGE_SIZE;
        let bytes = memory.get(start..start + PAGE_SIZE).ok_or(EINVAL)?;
        // CAST: At most 2^18 pages.
        let index = (page as u32).to_le_bytes();
        push_record(&mut self.chunk, PAGE, REQUIRED, &[&index, &[0; 4], bytes])?;
        self.page_records = self.page_records.wrapping_add(1);
        Ok(())
    }

    /// Moves the next bytes of the stream to `out`, as many as fit and are ready: the device
    /// memory `memory` is read as the pages are sent. Returns how many; 0 when nothing is ready
    /// (in pre-copy, for now) or the stream has ended.
    pub(crate) fn read(&mut self, memory: &[u8], out: &mut impl Sink) -> Result<usize> {
        let mut done = 0;
        while out.room() > 0 {
            // What was moved before a failure is read; the rest stays for the next call, on
            // which a record that could not be built is tried again.
            if self.chunk_pos == self.chunk.len() {
                match self.refill(memory) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => return if done > 0 { Ok(done) } else { Err(e) },
                }
            }
            let len = out.room().min(self.chunk.len() - self.chunk_pos);
            if let Err(e) = out.put(&self.chunk.bytes()[self.chunk_pos..self.chunk_pos + len]) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
            self.chunk_pos += len;
            done += len;
        }
        Ok(done)
    }
}

/// Why a stream is refused; the log line's reason.
pub(crate) enum Refusal {
    Magic([u8; 8]),
    Major(u16),
    /// The stream's minor version, and the reader's.
    NewerMinor(u16, u32),
    Flags(u32),
    Shape {
        stream: Shape,
        device: Shape,
    },
    HeaderReserved(u32),
    HeaderCrc {
        stored: u32,
        computed: u32,
    },
    RecordLength {
        at: u64,
        kind: u16,
        len: usize,
    },
    RecordFlags {
        at: u64,
        kind: u16,
        flags: u16,
    },
    RecordCrc {
        at: u64,
        kind: u16,
        stored: u32,
        computed: u32,
    },
    Unknown {
        at: u64,
        kind: u16,
    },
    PageIndex {
        at: u64,
        page: u32,
    },
    PageReserved {
        at: u64,
    },
    Config {
        at: u64,
        offset: usize,
    },
    Uart {
        at: u64,
        why: uart::LoadRefusal,
    },
    SummaryBytes {
        at: u64,
        stated: u64,
    },
    SummaryPages {
        at: u64,
        stated: u32,
        received: u32,
    },
    SummaryReserved {
        at: u64,
    },
    AfterSummary {
        at: u64,
        kind: u16,
    },
    NoSummary {
        at: u64,
    },
    Trailing(u64),
    Refused,
    Missing(&'static str),
    MissingPages(usize),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let major = Stream::MAJOR;
        match self {
            Self::Magic(magic) => write!(f, "bad magic {magic:02x?}"),
            Self::Major(v) => write!(f, "major version {v}, this device reads {major}"),
            Self::NewerMinor(v, minor) => write!(f, "minor version {v} is newer than {minor}"),
            Self::Flags(flags) => write!(f, "unknown header flags {flags:#x}"),
            Self::Shape { stream, device } => write!(
                f,
                "shape {} port(s) and {} MiB, this device has {} port(s) and {} MiB",
                stream.ports, stream.memory_mib, device.ports, device.memory_mib
            ),
            Self::HeaderReserved(value) => write!(f, "reserved header word {value:#x}"),
            Self::HeaderCrc { stored, computed } => {
                write!(f, "header CRC {stored:#010x}, computed {computed:#010x}")
            }
            Self::RecordFlags { at, kind, flags } => {
                write!(
                    f,
                    "record type {kind:#x} at byte {at} has unknown flags {flags:#x}"
                )
            }
            Self::RecordLength { at, kind, len } => {
                write!(f, "record type {kind:#x} at byte {at} has length {len}")
            }
            Self::RecordCrc {
                at,
                kind,
                stored,
                computed,
            } => write!(
                f,
                "record type {kind:#x} at byte {at}: CRC {stored:#010x}, computed {computed:#010x}"
            ),
            Self::Unknown { at, kind } => {
                write!(f, "unknown required record type {kind:#x} at byte {at}")
            }
            Self::PageIndex { at, page } => write!(f, "page {page} at byte {at} is out of range"),
            Self::PageReserved { at } => write!(f, "page record at byte {at}: reserved word"),
            Self::Config { at, offset } => write!(
                f,
                "config record at byte {at}: read-only bits of byte {offset:#x} differ"
            ),
            Self::Uart { at, why } => write!(f, "UART record at byte {at}: {why}"),
            Self::SummaryBytes { at, stated } => write!(
                f,
                "summary record at byte {at}: {stated} bytes before it, {at} received"
            ),
            Self::SummaryPages {
                at,
                stated,
                received,
            } => write!(
                f,
                "summary record at byte {at}: {stated} page records before it, {received} received"
            ),
            Self::SummaryReserved { at } => {
                write!(f, "summary record at byte {at}: reserved word")
            }
            Self::AfterSummary { at, kind } => write!(
                f,
                "record type {kind:#x} at byte {at} follows the summary record"
            ),
            Self::NoSummary { at } => write!(
                f,
                "end record at byte {at}: the 1.1 stream has no summary record"
            ),
            Self::Trailing(at) => write!(f, "bytes after the end record, at byte {at}"),
            Self::Refused => write!(f, "the stream was refused already"),
            Self::Missing(what) => write!(f, "the stream ended without {what}"),
            Self::MissingPages(count) => write!(f, "the stream ended without {count} page(s)"),
        }
    }
}

/// Checks a stream's header against a device of `shape` that reads `version`, field by field: a
/// wrong field is named even if the header's CRC does not match either.
fn check_header(header: &[u8], shape: Shape, version: Stream) -> Result<(), Refusal> {
    let (major, minor) = (Stream::MAJOR, version.minor());
    let mut magic = [0; 8];
    magic.copy_from_slice(&header[0..8]);
    let stream = Shape {
        memory_mib: le32(header, 16),
        ports: le32(header, 20),
    };
    if magic != MAGIC {
        Err(Refusal::Magic(magic))
    } else if u32::from(le16(header, 8)) != major {
        Err(Refusal::Major(le16(header, 8)))
    } else if u32::from(le16(header, 10)) > minor {
        Err(Refusal::NewerMinor(le16(header, 10), minor))
    } else if le32(header, 12) != 0 {
        Err(Refusal::Flags(le32(header, 12)))
    } else if stream != shape {
        Err(Refusal::Shape {
            stream,
            device: shape,
        })
    } else if le32(header, 28) != 0 {
        Err(Refusal::HeaderReserved(le32(header, 28)))
    } else if le32(header, 24) != crc32c(&header[..24]) {
        Err(Refusal::HeaderCrc {
            stored: le32(header, 24),
            computed: crc32c(&header[..24]),
        })
    } else {
        Ok(())
    }
}

/// What a loader is reading.
#[derive(Clone, Copy)]
enum Piece {
    Header,
    RecordHeader,
    Payload { kind: u16, flags: u16, crc: u32 },
    Ended,
    Refused,
}

/// The state a complete stream holds, ready to replace the device's.
pub(crate) struct Loaded {
    pub(crate) memory: VVec<Block>,
    pub(crate) config: ConfigSpace,
    pub(crate) uart: Uart,
}

/// A resuming session: reads the stream of a device of `shape` that reads streams up to
/// `version`, in pieces of any size.
///
/// # Invariants
///
/// `unit` holds the first bytes of `piece`, fewer than it has; `received` has a bit for each page
/// of the device, `received_count` of them set; `memory`, once allocated, is the device's size.
pub(crate) struct Loader {
    shape: Shape,
    version: Stream,
    bar2_size: u32,
    /// The stream's minor version, once its header is read.
    minor: u16,
    /// Stream bytes consumed so far.
    offset: u64,
    piece: Piece,
    unit: Buffer,
    /// The header of the record whose payload is being read.
    record_head: [u8; RECORD_HEADER_SIZE],
    memory: Option<VVec<Block>>,
    received: BitmapVec,
    received_count: usize,
    /// The page records read, modulo 2^32, and whether a summary record was (from 1.1).
    page_records: u32,
    summary: bool,
    config: Option<ConfigSpace>,
    uart: Option<Uart>,
}

impl Loader {
    /// A session for a device of `shape` whose BAR2 is `bar2_size` bytes, that reads the
    /// streams of `version` and older.
    pub(crate) fn new(shape: Shape, bar2_size: u32, version: Stream) -> Result<Self> {
        // INVARIANT: Nothing read yet.
        Ok(Self {
            shape,
            version,
            bar2_size,
            minor: 0,
            offset: 0,
            piece: Piece::Header,
            unit: Buffer::new(PAGE_PAYLOAD)?,
            record_head: [0; RECORD_HEADER_SIZE],
            memory: None,
            received: BitmapVec::new(pages(shape), GFP_KERNEL)?,
            received_count: 0,
            page_records: 0,
            summary: false,
            config: None,
            uart: None,
        })
    }

    /// The size of the piece being read.
    fn piece_size(&self) -> usize {
        match self.piece {
            Piece::Header => HEADER_SIZE,
            Piece::RecordHeader => RECORD_HEADER_SIZE,
            Piece::Payload { .. } => le32(&self.record_head, 4) as usize,
            // Any byte is one too many.
            Piece::Ended | Piece::Refused => 1,
        }
    }

    /// Reads the bytes `src` has; returns how many it took.
    ///
    /// Fails with `EINVAL` as soon as a piece that is complete is wrong, with the reason the first
    /// time, and then refuses the rest of the stream without one. A kernel error (a fault, no
    /// memory) takes nothing of the piece it happened in: the call returns the bytes taken before
    /// it, or the error if there were none.
    pub(crate) fn write(
        &mut self,
        src: &mut impl Source,
    ) -> Result<usize, (Error, Option<Refusal>)> {
        let mut done = 0;
        while src.left() > 0 {
            match self.piece {
                Piece::Refused => return Err((EINVAL, None)),
                Piece::Ended => {
                    self.piece = Piece::Refused;
                    return Err((EINVAL, Some(Refusal::Trailing(self.offset))));
                }
                _ => {}
            }
            let want = self.piece_size() - self.unit.len();
            let len = want.min(src.left());
            let taken = self.unit.spare(len).and_then(|spare| src.take(spare));
            if let Err(e) = taken {
                return if done > 0 { Ok(done) } else { Err((e, None)) };
            }
            self.unit.add(len);
            done += len;
            if self.unit.len() < self.piece_size() {
                break;
            }
            if let Err(refusal) = self.complete() {
                self.piece = Piece::Refused;
                return Err((EINVAL, Some(refusal)));
            }
        }
        Ok(done)
    }

    /// Handles the piece `unit` now holds in full and moves to the next.
    fn complete(&mut self) -> Result<(), Refusal> {
        let at = self.offset;
        let size = self.unit.len();
        match self.piece {
            Piece::Header => {
                check_header(self.unit.bytes(), self.shape, self.version)?;
                self.minor = le16(self.unit.bytes(), 10);
                self.piece = Piece::RecordHeader;
            }
            Piece::RecordHeader => {
                let head = self.unit.bytes();
                self.record_head.copy_from_slice(head);
                let kind = le16(head, 0);
                let flags = le16(head, 2);
                let len = le32(head, 4) as usize;
                if flags & !REQUIRED != 0 {
                    return Err(Refusal::RecordFlags { at, kind, flags });
                }
                // The summary counts what came before it: only the end may follow.
                if self.summary && kind != END {
                    return Err(Refusal::AfterSummary { at, kind });
                }
                let expected = match kind {
                    CONFIG => Some(CONFIG_SIZE),
                    UART => Some(uart::SAVED_SIZE),
                    PAGE => Some(PAGE_PAYLOAD),
                    SUMMARY if self.version >= Stream::V1_1 => Some(SUMMARY_PAYLOAD),
                    END => Some(0),
                    _ => None,
                };
                if expected.is_some_and(|expected| expected != len) || len > MAX_UNKNOWN_PAYLOAD {
                    return Err(Refusal::RecordLength { at, kind, len });
                }
                self.piece = Piece::Payload {
                    kind,
                    flags,
                    crc: le32(self.unit.bytes(), 8),
                };
                if len == 0 {
                    self.offset += size as u64;
                    self.unit.clear();
                    return self.complete();
                }
            }
            Piece::Payload { kind, flags, crc } => {
                // The record starts before its payload.
                let at = at - RECORD_HEADER_SIZE as u64;
                let computed = record_crc(&self.record_head, self.unit.bytes());
                if computed != crc {
                    return Err(Refusal::RecordCrc {
                        at,
                        kind,
                        stored: crc,
                        computed,
                    });
                }
                self.piece = Piece::RecordHeader;
                self.apply(at, kind, flags)?;
            }
            Piece::Ended | Piece::Refused => {}
        }
        self.offset += size as u64;
        self.unit.clear();
        Ok(())
    }

    /// Keeps what the record of `kind` at stream offset `at`, whose payload `unit` holds, says.
    fn apply(&mut self, at: u64, kind: u16, flags: u16) -> Result<(), Refusal> {
        let payload = self.unit.bytes();
        match kind {
            CONFIG => {
                let mut saved = [0; CONFIG_SIZE];
                saved.copy_from_slice(payload);
                let config = ConfigSpace::load(self.bar2_size, &saved)
                    .map_err(|offset| Refusal::Config { at, offset })?;
                self.config = Some(config);
            }
            UART => {
                let mut saved = [0; uart::SAVED_SIZE];
                saved.copy_from_slice(payload);
                self.uart = Some(Uart::load(&saved).map_err(|why| Refusal::Uart { at, why })?);
            }
            PAGE => {
                let page = le32(payload, 0);
                if le32(payload, 4) != 0 {
                    return Err(Refusal::PageReserved { at });
                }
                let index = page as usize;
                if index >= pages(self.shape) {
                    return Err(Refusal::PageIndex { at, page });
                }
                if self.memory.is_none() {
                    let size = pages(self.shape) * PAGE_SIZE;
                    // Without memory for the copy the stream cannot be loaded at all.
                    let memory =
                        zeroed(size).map_err(|_| Refusal::Missing("memory to load it into"))?;
                    self.memory = Some(memory);
                }
                if let Some(memory) = &mut self.memory {
                    let start = index * PAGE_SIZE;
                    memory.as_flattened_mut()[start..start + PAGE_SIZE]
                        .copy_from_slice(&payload[8..]);
                }
                if self.received.next_bit(index) != Some(index) {
                    self.received.set_bit(index);
                    self.received_count += 1;
                }
                self.page_records = self.page_records.wrapping_add(1);
            }
            // A 1.0 reader does not know the summary: it skips it, as any optional record.
            SUMMARY if self.version >= Stream::V1_1 => {
                let stated = le64(payload, 0);
                if stated != at {
                    return Err(Refusal::SummaryBytes { at, stated });
                }
                let stated = le32(payload, 8);
                if stated != self.page_records {
                    return Err(Refusal::SummaryPages {
                        at,
                        stated,
                        received: self.page_records,
                    });
                }
                if le32(payload, 12) != 0 {
                    return Err(Refusal::SummaryReserved { at });
                }
                self.summary = true;
            }
            END if self.version >= Stream::V1_1 && self.minor >= 1 && !self.summary => {
                return Err(Refusal::NoSummary { at });
            }
            END => self.piece = Piece::Ended,
            _ if flags & REQUIRED != 0 => return Err(Refusal::Unknown { at, kind }),
            // An optional record this driver does not know: skipped.
            _ => {}
        }
        Ok(())
    }

    /// The state the stream holds, if it is complete.
    pub(crate) fn finish(&mut self) -> Result<Loaded, Refusal> {
        match self.piece {
            Piece::Refused => return Err(Refusal::Refused),
            Piece::Ended => {}
            _ if self.offset == 0 && self.unit.is_empty() => {
                return Err(Refusal::Missing("a header"))
            }
            _ => return Err(Refusal::Missing("an end record")),
        }
        let missing = pages(self.shape) - self.received_count;
        if missing > 0 {
            return Err(Refusal::MissingPages(missing));
        }
        if self.config.is_none() {
            return Err(Refusal::Missing("a config record"));
        }
        if self.uart.is_none() {
            return Err(Refusal::Missing("a UART record"));
        }
        let (Some(config), Some(uart)) = (self.config.take(), self.uart.take()) else {
            return Err(Refusal::Missing("a UART record"));
        };
        // Every page arrived, so there is memory: devices have at least 1 MiB.
        let memory = self.memory.take().unwrap_or_default();
        self.piece = Piece::Refused;
        Ok(Loaded {
            memory,
            config,
            uart,
        })
    }
}
