// SPDX-License-Identifier: GPL-2.0

//! Reading the stream: a [`Loader`] checks each piece as its last byte arrives and keeps what it
//! read aside, for [`Loader::finish`] to hand over whole.

use super::{
    le16,
    le32,
    le64,
    pages,
    record_crc,
    Buffer,
    Source,
    CONFIG,
    END,
    HEADER_SIZE,
    MAGIC,
    MAX_UNKNOWN_PAYLOAD,
    PAGE,
    PAGE_PAYLOAD,
    PAGE_SIZE,
    RECORD_HEADER_SIZE,
    REQUIRED,
    SUMMARY,
    SUMMARY_PAYLOAD,
    UART, //
};
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
    prelude::*, //
};

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
/// of the device, `received_count` of them set; `memory` is the device's size until
/// [`Loader::finish`] takes it.
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
    /// Where the pages go until the stream is committed: a second copy of the device memory.
    memory: VVec<Block>,
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
    ///
    /// It holds a copy of the device memory, allocated here and charged to the caller, so that a
    /// stream can be loaded whole before anything of it reaches the device.
    pub(crate) fn new(shape: Shape, bar2_size: u32, version: Stream) -> Result<Self> {
        let memory = zeroed(pages(shape) * PAGE_SIZE, GFP_KERNEL_ACCOUNT)?;
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
            memory,
            received: BitmapVec::new(pages(shape), GFP_KERNEL_ACCOUNT)?,
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
                let start = index * PAGE_SIZE;
                self.memory.as_flattened_mut()[start..start + PAGE_SIZE]
                    .copy_from_slice(&payload[8..]);
                if !self.received.test_bit(index) {
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
        let memory = core::mem::take(&mut self.memory);
        self.piece = Piece::Refused;
        Ok(Loaded {
            memory,
            config,
            uart,
        })
    }
}
