// SPDX-License-Identifier: GPL-2.0

//! A transport that plays a device from a script, and streams built as the driver builds them.

use crate::stream::{record_crc, CONFIG, END, MAGIC, PAGE, PAGE_SIZE, REQUIRED, UART};
use crate::transport::{Chunk, Error, Features, MigState, Pending, Result, Transport};
use std::collections::VecDeque;

/// A stream header for a device of `memory_mib` MiB and `ports` ports.
pub fn header(memory_mib: u32, ports: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(32);
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&memory_mib.to_le_bytes());
    h.extend_from_slice(&ports.to_le_bytes());
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h
}

/// A record of type `kind` with `flags` and `payload`, its CRC right.
pub fn record(kind: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(12 + payload.len());
    r.extend_from_slice(&kind.to_le_bytes());
    r.extend_from_slice(&flags.to_le_bytes());
    r.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    r.extend_from_slice(&[0; 4]);
    let crc = record_crc(&r, payload);
    r[8..12].copy_from_slice(&crc.to_le_bytes());
    r.extend_from_slice(payload);
    r
}

/// The page record of page `index`, filled with `fill`.
pub fn page(index: u32, fill: u8) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + PAGE_SIZE);
    payload.extend_from_slice(&index.to_le_bytes());
    payload.extend_from_slice(&[0; 4]);
    payload.resize(8 + PAGE_SIZE, fill);
    record(PAGE, REQUIRED, &payload)
}

/// The config and UART records and the end record.
pub fn tail() -> Vec<u8> {
    let mut t = record(CONFIG, REQUIRED, &[0; 256]);
    t.extend(record(UART, REQUIRED, &[0; 28]));
    t.extend(record(END, REQUIRED, &[]));
    t
}

/// The header and every page of a device of `memory_mib` MiB, in order.
pub fn first_pass(memory_mib: u32) -> Vec<u8> {
    let mut s = header(memory_mib, 1);
    for i in 0..memory_mib * 256 {
        s.extend(page(i, i as u8));
    }
    s
}

/// A whole stream saved by stop-and-copy alone.
pub fn whole(memory_mib: u32) -> Vec<u8> {
    let mut s = first_pass(memory_mib);
    s.extend(tail());
    s
}

/// Where the mock fails, with an errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    SetState(MigState),
    DataSize,
    Pending,
    Read,
    /// The Nth write (from 0).
    Write(usize),
}

/// A device played from a script.
pub struct Mock {
    pub features: Features,
    pub state: MigState,
    /// What each pre-copy pass finds ready, in order.
    pub precopy: VecDeque<Vec<u8>>,
    /// What `STOP_COPY` produces.
    pub stop_copy: Vec<u8>,
    /// `MIG_DATA_SIZE`, if not the size of `stop_copy`.
    pub data_size: Option<u64>,
    /// Whether the protocol has `MIG_DATA_SIZE` (v1 has not).
    pub has_data_size: bool,
    /// The most bytes one read returns.
    pub read_limit: usize,
    /// `STOP_COPY` ends with `ENOMSG` instead of `read() == 0`.
    pub enomsg_in_stop_copy: bool,
    pub fail: Option<(Op, i32)>,
    /// The states set, in order.
    pub transitions: Vec<MigState>,
    /// The size of each write, and their bytes.
    pub writes: Vec<usize>,
    pub written: Vec<u8>,
    ready: VecDeque<u8>,
}

impl Mock {
    pub fn new() -> Self {
        Self {
            features: Features {
                stop_copy: true,
                p2p: true,
                pre_copy: true,
            },
            state: MigState::Running,
            precopy: VecDeque::new(),
            stop_copy: Vec::new(),
            data_size: None,
            has_data_size: true,
            read_limit: usize::MAX,
            enomsg_in_stop_copy: false,
            fail: None,
            transitions: Vec::new(),
            writes: Vec::new(),
            written: Vec::new(),
            ready: VecDeque::new(),
        }
    }

    fn check(&self, op: Op, what: &str) -> Result<()> {
        match self.fail {
            Some((fail, errno)) if fail == op => Err(Error::errno(what, errno)),
            _ => Ok(()),
        }
    }

    fn next_piece(&mut self) {
        self.ready = self.precopy.pop_front().unwrap_or_default().into();
    }
}

impl Transport for Mock {
    fn features(&mut self) -> Result<Features> {
        Ok(self.features)
    }

    fn state(&mut self) -> Result<MigState> {
        Ok(self.state)
    }

    fn set_state(&mut self, state: MigState) -> Result<()> {
        self.check(Op::SetState(state), "MIG_DEVICE_STATE")?;
        match (self.state, state) {
            (MigState::Running, MigState::PreCopy) => self.next_piece(),
            (_, MigState::StopCopy) => self.ready = self.stop_copy.clone().into(),
            _ => {}
        }
        self.state = state;
        self.transitions.push(state);
        Ok(())
    }

    fn data_size(&mut self) -> Result<Option<u64>> {
        self.check(Op::DataSize, "MIG_DATA_SIZE")?;
        if !self.has_data_size {
            return Ok(None);
        }
        Ok(Some(self.data_size.unwrap_or(
            self.ready.len() as u64 + self.stop_copy.len() as u64,
        )))
    }

    fn pending(&mut self) -> Result<Pending> {
        self.check(Op::Pending, "VFIO_MIG_GET_PRECOPY_INFO")?;
        Ok(Pending::Split {
            initial: self.ready.len() as u64,
            dirty: 0,
        })
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<Chunk> {
        self.check(Op::Read, "read()")?;
        let n = buf.len().min(self.read_limit).min(self.ready.len());
        if n > 0 {
            for (dst, src) in buf.iter_mut().zip(self.ready.drain(..n)) {
                *dst = src;
            }
            return Ok(Chunk::Data(n));
        }
        match self.state {
            MigState::PreCopy => {
                self.next_piece();
                Ok(Chunk::NotReady)
            }
            MigState::StopCopy if self.enomsg_in_stop_copy => Ok(Chunk::NotReady),
            _ => Ok(Chunk::End),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.check(Op::Write(self.writes.len()), "write()")?;
        self.writes.push(buf.len());
        self.written.extend_from_slice(buf);
        Ok(())
    }

    fn write_size(&self) -> usize {
        crate::session::CHUNK
    }
}
