// SPDX-License-Identifier: GPL-2.0

//! Reading an rmtty migration stream for a report: its header (version and device shape) and a
//! count of its records, as `samples/rmtty/migration-stream.md` lays them out. The tool never
//! refuses a stream for what it finds here: the device is the judge; this only describes.

use std::collections::BTreeSet;
use std::fmt;

/// The stream's first bytes.
pub const MAGIC: [u8; 8] = *b"RMTTYMIG";
/// The header's size.
pub const HEADER_SIZE: usize = 32;
/// A record's header: type, flags, length, CRC.
pub const RECORD_HEADER_SIZE: usize = 12;
/// The bytes of device memory a page record holds.
pub const PAGE_SIZE: usize = 4096;
/// A page record's payload: the page index, a reserved word, the page.
pub const PAGE_PAYLOAD: usize = 8 + PAGE_SIZE;
/// A page record's size.
#[cfg(test)]
pub const PAGE_RECORD_SIZE: usize = RECORD_HEADER_SIZE + PAGE_PAYLOAD;
/// A config record's payload: the PCI configuration space.
pub const CONFIG_PAYLOAD: usize = 256;
/// A UART record's payload.
pub const UART_PAYLOAD: usize = 28;
/// Record flag: a reader that does not know the type must refuse the stream.
pub const REQUIRED: u16 = 1;
pub const CONFIG: u16 = 1;
pub const UART: u16 = 2;
pub const PAGE: u16 = 3;
/// Since 1.1, before the end: the bytes and page records before it; not `REQUIRED`.
pub const SUMMARY: u16 = 4;
pub const END: u16 = 0xffff;
/// A summary record's payload: u64 bytes before the record, u32 page records, u32 reserved.
pub const SUMMARY_PAYLOAD: usize = 16;
/// Pages in a MiB of device memory.
const PAGES_PER_MIB: u64 = (1 << 20) / PAGE_SIZE as u64;

/// The header of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub major: u16,
    pub minor: u16,
    pub flags: u32,
    pub memory_mib: u32,
    pub ports: u32,
    /// The CRC the header carries.
    pub crc: u32,
    /// Whether it is the CRC-32C of the header's first 24 bytes.
    pub crc_ok: bool,
    pub reserved: u32,
}

/// Why a stream has no header to describe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_SIZE`] bytes.
    Short(usize),
    /// Not an rmtty stream.
    Magic([u8; 8]),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Short(len) => {
                write!(f, "{len} bytes, shorter than the {HEADER_SIZE}-byte header")
            }
            HeaderError::Magic(magic) => {
                write!(
                    f,
                    "magic {:?} is not RMTTYMIG",
                    String::from_utf8_lossy(magic)
                )
            }
        }
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Header {
    /// Parses the header at the start of `stream`.
    pub fn parse(stream: &[u8]) -> Result<Self, HeaderError> {
        let h = stream
            .get(..HEADER_SIZE)
            .ok_or(HeaderError::Short(stream.len()))?;
        if h[..8] != MAGIC {
            let mut magic = [0; 8];
            magic.copy_from_slice(&h[..8]);
            return Err(HeaderError::Magic(magic));
        }
        let crc = le32(h, 24);
        Ok(Self {
            major: le16(h, 8),
            minor: le16(h, 10),
            flags: le32(h, 12),
            memory_mib: le32(h, 16),
            ports: le32(h, 20),
            crc,
            crc_ok: crc == crc32c::crc32c(&h[..24]),
            reserved: le32(h, 28),
        })
    }

    /// The pages of device memory a device of this shape has.
    pub fn pages(&self) -> u64 {
        u64::from(self.memory_mib) * PAGES_PER_MIB
    }
}

/// The CRC a record with header `head` (its first 8 bytes count) and `payload` carries.
pub fn record_crc(head: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&head[..8]), payload)
}

/// What a stream holds, record by record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub header: Option<Header>,
    /// Page records.
    pub page_records: u64,
    /// Distinct pages among them.
    pub pages: u64,
    pub config: u32,
    pub uart: u32,
    /// Summary records (1.1) whose counts are those of what came before them.
    pub summary: u32,
    /// Records of types this reader does not know: with `REQUIRED` set, and without.
    pub unknown_required: u32,
    pub unknown_optional: u32,
    /// Records whose CRC does not match.
    pub bad_crc: u32,
    /// Records with the wrong payload length for their type, page records with an index past
    /// the memory or a reserved word not 0, or summary records with wrong counts.
    pub malformed: u32,
    /// Whether the end record is there.
    pub end: bool,
    /// Bytes after the end record.
    pub trailing: u64,
    /// Bytes of a record cut short at the end of the stream.
    pub truncated: u64,
}

impl Summary {
    /// Describes `stream`, which may be only a part of one (a pre-copy pass's bytes).
    pub fn of(stream: &[u8]) -> Result<Self, HeaderError> {
        let header = Header::parse(stream)?;
        let mut s = Summary {
            header: Some(header),
            ..Summary::default()
        };
        let mut pages = BTreeSet::new();
        let mut rest = &stream[HEADER_SIZE..];
        while !rest.is_empty() {
            let at = (stream.len() - rest.len()) as u64;
            if s.end {
                s.trailing = rest.len() as u64;
                break;
            }
            let Some(head) = rest.get(..RECORD_HEADER_SIZE) else {
                s.truncated = rest.len() as u64;
                break;
            };
            let (kind, flags) = (le16(head, 0), le16(head, 2));
            let len = le32(head, 4) as usize;
            let end = RECORD_HEADER_SIZE.checked_add(len);
            let Some((payload, next)) =
                end.and_then(|end| Some((rest.get(RECORD_HEADER_SIZE..end)?, end)))
            else {
                s.truncated = rest.len() as u64;
                break;
            };
            rest = &rest[next..];
            if le32(head, 8) != record_crc(head, payload) {
                s.bad_crc += 1;
                continue;
            }
            match (kind, len) {
                (CONFIG, CONFIG_PAYLOAD) => s.config += 1,
                (UART, UART_PAYLOAD) => s.uart += 1,
                (PAGE, PAGE_PAYLOAD) => {
                    let index = le32(payload, 0);
                    if u64::from(index) >= header.pages() || le32(payload, 4) != 0 {
                        s.malformed += 1;
                    } else {
                        s.page_records += 1;
                        pages.insert(index);
                    }
                }
                (SUMMARY, SUMMARY_PAYLOAD) => {
                    let before = u64::from(le32(payload, 0)) | u64::from(le32(payload, 4)) << 32;
                    // The page count is modulo 2^32.
                    if before == at
                        && le32(payload, 8) == s.page_records as u32
                        && le32(payload, 12) == 0
                    {
                        s.summary += 1;
                    } else {
                        s.malformed += 1;
                    }
                }
                (END, 0) => s.end = true,
                (CONFIG | UART | PAGE | SUMMARY | END, _) => s.malformed += 1,
                _ if flags & REQUIRED != 0 => s.unknown_required += 1,
                _ => s.unknown_optional += 1,
            }
        }
        s.pages = pages.len() as u64;
        Ok(s)
    }

    /// Whether a reader of the header's version would take the stream: the end record after a
    /// config and a UART record, every page and (1.1) a summary record, and nothing wrong.
    pub fn complete(&self) -> bool {
        let Some(h) = self.header else {
            return false;
        };
        h.crc_ok
            && h.major == 1
            && h.flags == 0
            && h.reserved == 0
            && self.end
            && self.config > 0
            && self.uart > 0
            && (h.minor == 0 || self.summary == 1)
            && self.pages == h.pages()
            && self.unknown_required == 0
            && self.bad_crc == 0
            && self.malformed == 0
            && self.trailing == 0
            && self.truncated == 0
    }

    /// The summary as JSON.
    pub fn json(&self) -> serde_json::Value {
        let header = self.header.map(|h| {
            serde_json::json!({
                "major": h.major,
                "minor": h.minor,
                "flags": h.flags,
                "memory_mib": h.memory_mib,
                "ports": h.ports,
                "crc": h.crc,
                "crc_ok": h.crc_ok,
                "reserved": h.reserved,
            })
        });
        serde_json::json!({
            "header": header,
            "page_records": self.page_records,
            "pages": self.pages,
            "config_records": self.config,
            "uart_records": self.uart,
            "summary_records": self.summary,
            "unknown_required_records": self.unknown_required,
            "unknown_optional_records": self.unknown_optional,
            "bad_crc_records": self.bad_crc,
            "malformed_records": self.malformed,
            "end": self.end,
            "trailing_bytes": self.trailing,
            "truncated_bytes": self.truncated,
            "complete": self.complete(),
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(h) = self.header else {
            return f.write_str("no header");
        };
        write!(
            f,
            "rmtty {}.{}, memory_mib={} ports={}, header CRC {}",
            h.major,
            h.minor,
            h.memory_mib,
            h.ports,
            if h.crc_ok { "ok" } else { "BAD" }
        )?;
        if h.flags != 0 || h.reserved != 0 {
            write!(f, " (flags {:#x}, reserved {:#x})", h.flags, h.reserved)?;
        }
        write!(
            f,
            "; {} page records ({} of {} pages), {} config, {} UART",
            self.page_records,
            self.pages,
            h.pages(),
            self.config,
            self.uart
        )?;
        if self.summary > 0 {
            write!(f, ", {} summary", self.summary)?;
        }
        let others = [
            (self.unknown_required, "unknown required"),
            (self.unknown_optional, "unknown optional"),
            (self.bad_crc, "with a bad CRC"),
            (self.malformed, "malformed"),
        ];
        for (count, what) in others {
            if count > 0 {
                write!(f, ", {count} {what}")?;
            }
        }
        f.write_str(if self.end { ", end" } else { ", no end record" })?;
        if self.trailing > 0 {
            write!(f, ", {} bytes after the end", self.trailing)?;
        }
        if self.truncated > 0 {
            write!(f, ", {} bytes of a cut record", self.truncated)?;
        }
        Ok(())
    }
}
