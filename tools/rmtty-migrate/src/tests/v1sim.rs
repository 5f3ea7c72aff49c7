// SPDX-License-Identifier: GPL-2.0

//! A v1 migration region played in memory, as `v1-contract` has rmtty's behave: the header's
//! fields only at their width, `pending_bytes` handing the current buffer back, `data_offset`
//! preparing the next one, `data_size` written to take a piece, and leaving `RESUMING`
//! committing.

use crate::v1::{DataAccess, Field, Layout, RegionAccess};
use std::collections::VecDeque;
use std::io;

/// Where the data section is.
pub const DATA_OFFSET: u64 = 4096;

const RUNNING: u32 = 1;
const SAVING: u32 = 2;
const RESUMING: u32 = 4;

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// The region of a device, in memory.
pub struct Sim {
    /// The data section's size.
    pub section: usize,
    /// `device_state`: the state bits and `upper`.
    pub state: u32,
    /// Bits above the state's that the device reports, and wants written back as they are.
    pub upper: u32,
    /// What each pre-copy pass finds ready, in order.
    pub precopy: VecDeque<Vec<u8>>,
    /// What stop-and-copy adds.
    pub stop_copy: Vec<u8>,
    /// Bytes ready and not yet in a buffer.
    ready: VecDeque<u8>,
    /// The buffer handed out, until `pending_bytes` is read.
    buffer: Option<Vec<u8>>,
    /// The data section's bytes, as the user wrote them while resuming.
    data: Vec<u8>,
    /// Every piece taken while resuming, in order.
    pub loaded: Vec<Vec<u8>>,
    /// Whether leaving `RESUMING` refuses the stream.
    pub refuse_commit: bool,
    /// The `data_size` write (from 0) that fails, if one does.
    pub refuse_piece: Option<usize>,
    /// The field accesses, e.g. `r pending_bytes`, `w device_state 3`.
    pub log: Vec<String>,
    /// Data accesses: (offset, length).
    pub data_reads: Vec<(u64, usize)>,
    pub data_writes: Vec<(u64, usize)>,
}

impl Sim {
    /// A running device with a data section of `section` bytes.
    pub fn new(section: usize) -> Self {
        Self {
            section,
            state: RUNNING,
            upper: 0,
            precopy: VecDeque::new(),
            stop_copy: Vec::new(),
            ready: VecDeque::new(),
            buffer: None,
            data: vec![0; section],
            loaded: Vec::new(),
            refuse_commit: false,
            refuse_piece: None,
            log: Vec::new(),
            data_reads: Vec::new(),
            data_writes: Vec::new(),
        }
    }

    /// The layout the transport would find for it.
    pub fn layout(&self) -> Layout {
        Layout {
            index: 9,
            size: DATA_OFFSET + self.section as u64,
            data_offset: DATA_OFFSET,
            data_section: self.section as u64,
            access: DataAccess::Pread,
            no_mmap_reason: Some("simulated".into()),
        }
    }

    fn saving(&self) -> bool {
        self.state & SAVING != 0
    }

    /// The field accesses logged, one string.
    pub fn trace(&self) -> String {
        self.log.join(", ")
    }

    fn set_state(&mut self, value: u32) -> io::Result<()> {
        let bits = value & 7;
        if value & !7 != self.upper || matches!(bits, 0b101..=0b111) {
            return Err(einval());
        }
        let old = self.state & 7;
        if old == RESUMING && bits != RESUMING && self.refuse_commit {
            return Err(einval());
        }
        if old & SAVING == 0 && bits == SAVING | RUNNING {
            self.ready = self.precopy.pop_front().unwrap_or_default().into();
        }
        if old != SAVING && bits == SAVING {
            self.ready.extend(self.stop_copy.iter());
        }
        if bits & SAVING == 0 {
            self.ready.clear();
            self.buffer = None;
        }
        self.state = bits | self.upper;
        Ok(())
    }
}

impl RegionAccess for Sim {
    fn read_field(&mut self, field: Field) -> io::Result<u64> {
        self.log.push(format!("r {}", field.name()));
        Ok(match field {
            Field::DeviceState => self.state.into(),
            Field::PendingBytes => {
                self.buffer = None;
                if !self.saving() {
                    0
                } else {
                    if self.ready.is_empty() && self.state & 7 == SAVING | RUNNING {
                        // Nothing more for this pass: the next one finds the next piece.
                        let next = self.precopy.pop_front().unwrap_or_default();
                        self.ready = next.into();
                        return Ok(0);
                    }
                    self.ready.len() as u64
                }
            }
            Field::DataOffset => {
                if self.saving() && self.buffer.is_none() && !self.ready.is_empty() {
                    let n = self.section.min(self.ready.len());
                    self.buffer = Some(self.ready.drain(..n).collect());
                }
                DATA_OFFSET
            }
            Field::DataSize => self.buffer.as_ref().map_or(0, |b| b.len() as u64),
        })
    }

    fn write_field(&mut self, field: Field, value: u64) -> io::Result<()> {
        self.log.push(format!("w {} {value}", field.name()));
        match field {
            Field::DeviceState => self.set_state(u32::try_from(value).map_err(|_| einval())?),
            Field::DataSize if self.state & 7 == RESUMING => {
                let n = usize::try_from(value).map_err(|_| einval())?;
                if n == 0 || n > self.section || self.refuse_piece == Some(self.loaded.len()) {
                    return Err(einval());
                }
                self.loaded.push(self.data[..n].to_vec());
                Ok(())
            }
            _ => Err(einval()),
        }
    }

    fn read_data(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.data_reads.push((offset, buf.len()));
        let buffer = self.buffer.as_ref().ok_or_else(einval)?;
        let at = offset.checked_sub(DATA_OFFSET).ok_or_else(einval)? as usize;
        let src = buffer.get(at..at + buf.len()).ok_or_else(einval)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_data(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.data_writes.push((offset, buf.len()));
        if self.state & 7 != RESUMING {
            return Err(einval());
        }
        let at = offset.checked_sub(DATA_OFFSET).ok_or_else(einval)? as usize;
        let dst = self.data.get_mut(at..at + buf.len()).ok_or_else(einval)?;
        dst.copy_from_slice(buf);
        Ok(())
    }
}

/// A [`Sim`] whose header reads pass through a function of the state, the field and what the
/// simulated region answered, for devices that misbehave; everything else reaches the region.
pub struct Lying<F>(pub Sim, pub F);

impl<F: FnMut(u32, Field, u64) -> u64> RegionAccess for Lying<F> {
    fn read_field(&mut self, field: Field) -> io::Result<u64> {
        let value = self.0.read_field(field)?;
        Ok((self.1)(self.0.state, field, value))
    }

    fn write_field(&mut self, field: Field, value: u64) -> io::Result<()> {
        self.0.write_field(field, value)
    }

    fn read_data(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_data(offset, buf)
    }

    fn write_data(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.0.write_data(offset, buf)
    }
}
