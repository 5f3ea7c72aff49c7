// SPDX-License-Identifier: GPL-2.0

//! Writing the stream: a [`Saver`] builds one record at a time as its bytes are read.

use super::{
    header,
    pages,
    push_record,
    tail_size,
    Buffer,
    Sink,
    CONFIG,
    END,
    HEADER_SIZE,
    PAGE,
    PAGE_RECORD_SIZE,
    PAGE_SIZE,
    REQUIRED,
    SUMMARY,
    UART, //
};
use crate::{
    pci::CONFIG_SIZE,
    uart,
    version::{
        Shape,
        Stream, //
    },
};
use kernel::{
    bitmap::BitmapVec,
    prelude::*, //
};

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
            dirty: BitmapVec::new(pages, GFP_KERNEL_ACCOUNT)?,
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
            if !self.dirty.test_bit(page) {
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
