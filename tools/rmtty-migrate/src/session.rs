// SPDX-License-Identifier: GPL-2.0

//! The two sessions, over any [`Transport`]:
//!
//! - save: `RUNNING -> PRE_COPY` and pre-copy passes if asked (each reads until nothing is ready;
//!   a workload runs after each), `MIG_DATA_SIZE`, `-> STOP_COPY`, reads to the end of the
//!   stream, `STOP_COPY -> STOP`; the bytes read in `STOP_COPY` must be `MIG_DATA_SIZE`'s (where
//!   the protocol has it);
//! - load: `RUNNING -> RESUMING`, the stream written in pieces of the transport's
//!   [`Transport::write_size`], `RESUMING -> RUNNING` (which commits it).
//!
//! Each fills a [`Report`] as it goes, so that a failed session still says how far it got, and
//! ends with the device's state; a failed one then asks the transport to put the device back to
//! running ([`Transport::cancel`]).

use crate::report::{Pass, PassEnd, PassKind, Report};
use crate::stream::Summary;
use crate::transport::{Chunk, Error, MigState, Result, Transport};
use std::time::Instant;

/// The size of each read() of the stream, and of each v2 write().
pub const CHUNK: usize = 1 << 20;

/// The most room a pass makes for the bytes the device says are coming, lest a wrong figure
/// exhaust the memory; a pass still takes more as they come.
const MAX_ROOM: u64 = 256 << 20;

/// What a save does besides stop-and-copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaveOptions {
    /// Pre-copy passes before stop-and-copy.
    pub precopy_passes: u32,
}

/// Runs after pre-copy pass N (given N), before the next pass or stop-and-copy.
pub type Workload<'a> = &'a mut dyn FnMut(u32) -> Result<()>;

/// Moves the device from `from` to `to`, timing it as a phase.
fn transition(
    t: &mut dyn Transport,
    report: &mut Report,
    from: MigState,
    to: MigState,
) -> Result<()> {
    let start = Instant::now();
    let done = t.set_state(to);
    report.phase(format!("{from} -> {to}"), start.elapsed());
    done.map_err(|e| e.context(format!("{from} -> {to}")))
}

/// Reads the stream onto the end of `out` until nothing is ready (in `PRE_COPY`) or its end (in
/// `STOP_COPY`), counting into `pass`. The reads go straight into `out`, made room for before the
/// clock starts for the `expected` bytes (up to [`MAX_ROOM`]; grown as needed past them).
fn read_pass(
    t: &mut dyn Transport,
    out: &mut Vec<u8>,
    expected: u64,
    pass: &mut Pass,
) -> Result<()> {
    let precopy = matches!(pass.kind, PassKind::PreCopy(_));
    let mut filled = out.len();
    // CAST: at most MAX_ROOM.
    let room = (expected.min(MAX_ROOM) as usize).max(CHUNK);
    out.resize(filled + room, 0);
    let start = Instant::now();
    let ended = loop {
        if out.len() - filled < CHUNK {
            out.resize(filled + CHUNK, 0);
        }
        let chunk = t.read(&mut out[filled..filled + CHUNK]);
        pass.calls += 1;
        match chunk {
            Ok(Chunk::Data(n)) => {
                filled += n;
                pass.bytes += n as u64;
            }
            Ok(Chunk::NotReady) if precopy => break Ok(PassEnd::NotReady),
            Ok(Chunk::NotReady) => {
                break Err(Error::errno(
                    "read() of the data file (nothing ready is no end in STOP_COPY)",
                    libc::ENOMSG,
                ))
            }
            Ok(Chunk::End) => break Ok(PassEnd::Eof),
            Err(e) => break Err(e),
        }
    };
    pass.time = start.elapsed();
    out.truncate(filled);
    pass.end = ended.as_ref().ok().copied();
    ended.map(|_| ())
}

/// The device's features and state, checked for a session that needs `pre_copy`.
fn check_device(t: &mut dyn Transport, report: &mut Report, pre_copy: bool) -> Result<()> {
    let features = t.features()?;
    report.features = Some(features);
    if !features.stop_copy {
        return Err(Error::other(
            "VFIO_DEVICE_FEATURE_MIGRATION",
            "the device does not offer STOP_COPY",
        ));
    }
    if pre_copy && !features.pre_copy {
        return Err(Error::other(
            "VFIO_DEVICE_FEATURE_MIGRATION",
            "the device does not offer PRE_COPY, which pre-copy passes need",
        ));
    }
    let state = t.state()?;
    report.initial_state = Some(state);
    if state != MigState::Running {
        return Err(Error::other(
            "initial state",
            format!("the device is in {state}, not RUNNING"),
        ));
    }
    Ok(())
}

fn save_steps(
    t: &mut dyn Transport,
    opts: &SaveOptions,
    mut workload: Option<Workload<'_>>,
    report: &mut Report,
    out: &mut Vec<u8>,
) -> Result<()> {
    check_device(t, report, opts.precopy_passes > 0)?;
    let mut from = MigState::Running;
    if opts.precopy_passes > 0 {
        transition(t, report, from, MigState::PreCopy)?;
        from = MigState::PreCopy;
        for n in 1..=opts.precopy_passes {
            let what = format!("pre-copy pass {n}");
            let mut pass = Pass::new(PassKind::PreCopy(n));
            let pending = t.pending().map_err(|e| e.context(&what))?;
            pass.pending = Some(pending);
            let done = read_pass(t, out, pending.total(), &mut pass);
            report.passes.push(pass);
            done.map_err(|e| e.context(&what))?;
            if let Some(run) = workload.as_mut() {
                let start = Instant::now();
                let done = run(n);
                report.phase(format!("workload after pass {n}"), start.elapsed());
                done?;
            }
        }
        report.pending_at_stop_copy = Some(t.pending().map_err(|e| e.context("after pre-copy"))?);
    }
    let size = t.data_size().map_err(|e| e.context("before STOP_COPY"))?;
    report.data_size = size;
    transition(t, report, from, MigState::StopCopy)?;
    let mut pass = Pass::new(PassKind::StopCopy);
    let done = read_pass(t, out, size.unwrap_or(0), &mut pass);
    let bytes = pass.bytes;
    report.passes.push(pass);
    done.map_err(|e| e.context("stop-copy"))?;
    transition(t, report, MigState::StopCopy, MigState::Stop)?;
    if let Some(size) = size.filter(|&size| size != bytes) {
        return Err(Error::other(
            "stop-copy",
            format!("read {bytes} bytes, but MIG_DATA_SIZE said {size} just before STOP_COPY"),
        ));
    }
    Ok(())
}

/// Notes the end of a session in `report`: its error, and the state the device is in; after a
/// failure that left the device other than running, puts it back to running if the transport
/// does that.
fn finish(t: &mut dyn Transport, report: &mut Report, done: Result<()>) -> Result<()> {
    report.final_state = t.state().ok();
    if let Err(e) = &done {
        report.error = Some(e.clone());
        if report.final_state != Some(MigState::Running) {
            let start = Instant::now();
            match t.cancel() {
                Ok(None) => {}
                Ok(Some(state)) => {
                    report.phase(format!("cancel -> {state}"), start.elapsed());
                    report.cancel = Some(Ok(state));
                }
                Err(e) => report.cancel = Some(Err(e)),
            }
        }
    }
    done
}

/// Saves the device's state into `out`, running `workload` after each pre-copy pass.
///
/// On success the stream is whole: it ended with `read() == 0` in `STOP_COPY`. A failure after
/// that (`STOP_COPY -> STOP`, a size that is not `MIG_DATA_SIZE`) leaves it whole too; see
/// [`Report::stream_complete`] for telling the cases apart.
pub fn save(
    t: &mut dyn Transport,
    opts: &SaveOptions,
    workload: Option<Workload<'_>>,
    report: &mut Report,
    out: &mut Vec<u8>,
) -> Result<()> {
    let done = save_steps(t, opts, workload, report, out);
    if !out.is_empty() {
        report.stream = Some(Summary::of(out));
    }
    finish(t, report, done)
}

fn load_steps(t: &mut dyn Transport, stream: &[u8], report: &mut Report) -> Result<()> {
    check_device(t, report, false)?;
    transition(t, report, MigState::Running, MigState::Resuming)?;
    let mut pass = Pass::new(PassKind::Resume);
    let start = Instant::now();
    let mut done = Ok(());
    let size = t.write_size().max(1);
    for (i, chunk) in stream.chunks(size).enumerate() {
        let at = i * size;
        pass.calls += 1;
        if let Err(e) = t.write_all(chunk) {
            done = Err(e.context(format!("write of stream bytes {at}..{}", at + chunk.len())));
            break;
        }
        pass.bytes += chunk.len() as u64;
    }
    pass.time = start.elapsed();
    pass.end = done.is_ok().then_some(PassEnd::Written);
    report.passes.push(pass);
    done?;
    transition(t, report, MigState::Resuming, MigState::Running).map_err(|mut e| {
        // Leaving RESUMING is where the device takes the stream or refuses it.
        if e.errno == Some(libc::EINVAL) && e.detail.is_none() {
            e.detail = Some("the device refused the stream (incomplete or bad)".into());
        }
        e
    })
}

/// Loads `stream` into the device.
pub fn load(t: &mut dyn Transport, stream: &[u8], report: &mut Report) -> Result<()> {
    report.stream = Some(Summary::of(stream));
    let done = load_steps(t, stream, report);
    finish(t, report, done)
}

impl Report {
    /// Whether a save read its stream to the end.
    pub fn stream_complete(&self) -> bool {
        self.passes
            .iter()
            .any(|p| p.kind == PassKind::StopCopy && p.end == Some(PassEnd::Eof))
    }
}
