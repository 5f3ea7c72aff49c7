// SPDX-License-Identifier: GPL-2.0

//! What a session did: its passes over the stream, the time of each phase, what went wrong;
//! written for a person (to stderr) or as one JSON object.

use crate::stream::{HeaderError, Summary};
use crate::transport::{Error, Features, MigState, Pending};
use crate::v1::Layout;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::Duration;

/// Which way a session moved the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Save,
    Load,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Save => "save",
            Operation::Load => "load",
        }
    }
}

/// A pass over the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassKind {
    /// Pre-copy pass number N (from 1): reads in `PRE_COPY` until nothing is ready.
    PreCopy(u32),
    /// The reads in `STOP_COPY`, to the end of the stream.
    StopCopy,
    /// The writes in `RESUMING`.
    Resume,
}

/// How a pass ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassEnd {
    /// A read found nothing ready (v2: `ENOMSG`).
    NotReady,
    /// A read found the end of the stream (v2: `read() == 0`).
    Eof,
    /// The last byte was written.
    Written,
}

impl PassEnd {
    /// How the end shows in the v2 protocol.
    pub fn name(self) -> &'static str {
        match self {
            PassEnd::NotReady => "ENOMSG",
            PassEnd::Eof => "EOF",
            PassEnd::Written => "written",
        }
    }

    /// How the end shows in the v1 protocol, where nothing ready and the end are both
    /// `pending_bytes` 0, told apart by the state.
    pub fn v1_name(self) -> &'static str {
        match self {
            PassEnd::NotReady | PassEnd::Eof => "pending_bytes 0",
            PassEnd::Written => "written",
        }
    }
}

/// One pass over the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pass {
    pub kind: PassKind,
    /// What the device said it had pending when the pass began (pre-copy only).
    pub pending: Option<Pending>,
    pub bytes: u64,
    /// The read() or write() calls it took (v1: buffers read, and the reads of
    /// `pending_bytes` that found 0; pieces written).
    pub calls: u64,
    pub time: Duration,
    /// How it ended; `None` if it failed.
    pub end: Option<PassEnd>,
}

impl Pass {
    pub fn new(kind: PassKind) -> Self {
        Self {
            kind,
            pending: None,
            bytes: 0,
            calls: 0,
            time: Duration::ZERO,
            end: None,
        }
    }
}

/// A timed phase: a transition, a pass, a workload, writing the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    pub name: String,
    pub time: Duration,
}

/// What a session did.
#[derive(Clone, Debug)]
pub struct Report {
    pub operation: Operation,
    pub device: String,
    pub front_door: &'static str,
    pub transport: &'static str,
    pub features: Option<Features>,
    pub initial_state: Option<MigState>,
    /// The state the device was in when the session ended.
    pub final_state: Option<MigState>,
    /// `MIG_DATA_SIZE` just before `STOP_COPY`.
    pub data_size: Option<u64>,
    /// What the device had pending just before `STOP_COPY`, after the last workload.
    pub pending_at_stop_copy: Option<Pending>,
    pub passes: Vec<Pass>,
    pub phases: Vec<Phase>,
    pub total: Duration,
    /// The stream saved or loaded, if there was one.
    pub stream: Option<Result<Summary, HeaderError>>,
    pub error: Option<Error>,
    /// After a failure: the state the device was put back to, or why it could not be.
    pub cancel: Option<Result<MigState, Error>>,
    /// The v1 migration region and how its data moved, for a v1 session.
    pub v1: Option<Layout>,
}

/// Seconds as a JSON number.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A duration for a person: milliseconds.
fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn pending_json(p: Option<Pending>) -> Value {
    match p {
        Some(Pending::Split { initial, dirty }) => {
            json!({ "initial_bytes": initial, "dirty_bytes": dirty })
        }
        Some(Pending::Total(bytes)) => json!({ "pending_bytes": bytes }),
        None => json!({}),
    }
}

fn pending_text(p: Pending) -> String {
    match p {
        Pending::Split { initial, dirty } => format!("initial {initial}, dirty {dirty}"),
        Pending::Total(bytes) => format!("pending_bytes {bytes}"),
    }
}

fn layout_json(l: &Layout) -> Value {
    json!({
        "region_index": l.index,
        "region_size": l.size,
        "data_offset": l.data_offset,
        "data_section_size": l.data_section,
        "data_access": l.access.name(),
        "no_mmap_reason": l.no_mmap_reason,
    })
}

fn layout_text(l: &Layout) -> String {
    let mut s = format!(
        "region {}: {} bytes, data section of {} bytes at {}, through {}",
        l.index,
        l.size,
        l.data_section,
        l.data_offset,
        l.access.name()
    );
    if let Some(reason) = &l.no_mmap_reason {
        s += &format!(" ({reason})");
    }
    s
}

fn error_json(e: &Error) -> Value {
    json!({
        "message": e.to_string(),
        "what": e.what,
        "errno": e.errno,
        "errno_name": e.errno_name(),
        "detail": e.detail,
    })
}

impl Report {
    pub fn new(
        operation: Operation,
        device: String,
        front_door: &'static str,
        transport: &'static str,
    ) -> Self {
        Self {
            operation,
            device,
            front_door,
            transport,
            features: None,
            initial_state: None,
            final_state: None,
            data_size: None,
            pending_at_stop_copy: None,
            passes: Vec::new(),
            phases: Vec::new(),
            total: Duration::ZERO,
            stream: None,
            error: None,
            cancel: None,
            v1: None,
        }
    }

    /// The name of how pass `end` ended, in the terms of the report's protocol.
    fn end_name(&self, end: PassEnd) -> &'static str {
        if self.v1.is_some() {
            end.v1_name()
        } else {
            end.name()
        }
    }

    /// Records that phase `name` took `time`.
    pub fn phase(&mut self, name: impl Into<String>, time: Duration) {
        self.phases.push(Phase {
            name: name.into(),
            time,
        });
    }

    /// The stream's bytes that moved.
    pub fn bytes(&self) -> u64 {
        self.passes.iter().map(|p| p.bytes).sum()
    }

    /// The time spent reading or writing the stream.
    pub fn transfer_time(&self) -> Duration {
        self.passes.iter().map(|p| p.time).sum()
    }

    /// Transfer throughput in MB/s (10^6 bytes per second), if any time passed.
    pub fn mb_per_s(&self) -> Option<f64> {
        let t = self.transfer_time().as_secs_f64();
        (t > 0.0).then(|| self.bytes() as f64 / 1e6 / t)
    }

    /// Bytes read in `STOP_COPY`.
    pub fn stop_copy_bytes(&self) -> Option<u64> {
        self.passes
            .iter()
            .find(|p| p.kind == PassKind::StopCopy)
            .map(|p| p.bytes)
    }

    /// The report as one JSON object.
    pub fn json(&self) -> Value {
        let passes: Vec<Value> = self
            .passes
            .iter()
            .map(|p| {
                let (phase, number) = match p.kind {
                    PassKind::PreCopy(n) => ("pre-copy", Some(n)),
                    PassKind::StopCopy => ("stop-copy", None),
                    PassKind::Resume => ("resume", None),
                };
                let mut v = json!({
                    "phase": phase,
                    "pass": number,
                    "bytes": p.bytes,
                    "calls": p.calls,
                    "seconds": secs(p.time),
                    "end": p.end.map(|end| self.end_name(end)),
                });
                if let (Some(obj), Value::Object(pending)) =
                    (v.as_object_mut(), pending_json(p.pending))
                {
                    obj.extend(pending);
                }
                v
            })
            .collect();
        let phases: Vec<Value> = self
            .phases
            .iter()
            .map(|p| json!({ "name": p.name, "seconds": secs(p.time) }))
            .collect();
        let stream = match &self.stream {
            Some(Ok(summary)) => summary.json(),
            Some(Err(e)) => json!({ "error": e.to_string() }),
            None => Value::Null,
        };
        json!({
            "operation": self.operation.name(),
            "ok": self.error.is_none(),
            "device": self.device,
            "front_door": self.front_door,
            "transport": self.transport,
            "migration_flags": self.features.map(|f| f.names()),
            "initial_state": self.initial_state.map(MigState::name),
            "final_state": self.final_state.map(MigState::name),
            "bytes": self.bytes(),
            "data_size": self.data_size,
            "stop_copy_bytes": self.stop_copy_bytes(),
            "pending_at_stop_copy": self.pending_at_stop_copy.map(|p| pending_json(Some(p))),
            "precopy_passes": self.passes.iter().filter(|p| matches!(p.kind, PassKind::PreCopy(_))).count(),
            "passes": passes,
            "phases": phases,
            "transfer_seconds": secs(self.transfer_time()),
            "total_seconds": secs(self.total),
            "mb_per_s": self.mb_per_s(),
            "stream": stream,
            "error": self.error.as_ref().map(error_json),
            "cancelled_to": self.cancel.as_ref().and_then(|c| c.as_ref().ok()).map(|s| s.name()),
            "cancel_error": self.cancel.as_ref().and_then(|c| c.as_ref().err()).map(error_json),
            "v1_region": self.v1.as_ref().map(layout_json),
        })
    }

    /// The report for a person, one line per fact.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "rmtty-migrate {} {} ({}, {})",
            self.operation.name(),
            self.device,
            self.front_door,
            self.transport
        );
        if let Some(f) = self.features {
            let _ = writeln!(s, "  migration: {}", f.names().join(" | "));
        }
        if let Some(layout) = &self.v1 {
            let _ = writeln!(s, "  v1 {}", layout_text(layout));
        }
        match &self.stream {
            Some(Ok(summary)) => {
                let _ = writeln!(s, "  stream: {summary}");
            }
            Some(Err(e)) => {
                let _ = writeln!(s, "  stream: {e}");
            }
            None => {}
        }
        for p in &self.passes {
            let name = match p.kind {
                PassKind::PreCopy(n) => format!("pre-copy pass {n}"),
                PassKind::StopCopy => "stop-copy".to_string(),
                PassKind::Resume => "resume".to_string(),
            };
            let _ = write!(
                s,
                "  {name}: {} bytes in {} calls, {}",
                p.bytes,
                p.calls,
                ms(p.time)
            );
            if let Some(pending) = p.pending {
                let _ = write!(s, "; pending at start: {}", pending_text(pending));
            }
            if p.kind == PassKind::StopCopy {
                if let Some(size) = self.data_size {
                    let _ = write!(s, "; MIG_DATA_SIZE {size}");
                }
            }
            let _ = writeln!(s, "; {}", p.end.map_or("failed", |end| self.end_name(end)));
        }
        let _ = write!(
            s,
            "  total: {} bytes, {} passes, transfer {}",
            self.bytes(),
            self.passes.len(),
            ms(self.transfer_time())
        );
        if let Some(rate) = self.mb_per_s() {
            let _ = write!(s, " ({rate:.1} MB/s)");
        }
        let _ = writeln!(s, ", total {}", ms(self.total));
        if !self.phases.is_empty() {
            let phases: Vec<String> = self
                .phases
                .iter()
                .map(|p| format!("{} {}", p.name, ms(p.time)))
                .collect();
            let _ = writeln!(s, "  phases: {}", phases.join(", "));
        }
        if let Some(state) = self.final_state {
            let _ = writeln!(s, "  device state: {state}");
        }
        if let Some(e) = &self.error {
            let _ = writeln!(s, "  error: {e}");
        }
        match &self.cancel {
            Some(Ok(state)) => {
                let _ = writeln!(s, "  cancelled: the device was put back to {state}");
            }
            Some(Err(e)) => {
                let _ = writeln!(s, "  cancel (back to RUNNING) failed: {e}");
            }
            None => {}
        }
        s
    }
}
