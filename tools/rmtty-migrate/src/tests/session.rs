// SPDX-License-Identifier: GPL-2.0

use super::mock::{self, Mock, Op};
use crate::report::{Operation, PassEnd, PassKind, Report};
use crate::session::{self, SaveOptions, CHUNK};
use crate::transport::{Error, MigState, Pending, Result};

const EINVAL: i32 = 22;
const EIO: i32 = 5;
const ENOMSG: i32 = 42;

fn report(operation: Operation) -> Report {
    Report::new(operation, "/sys/bus/mdev/devices/x".into(), "group", "mock")
}

fn save(
    mock: &mut Mock,
    passes: u32,
    workload: Option<session::Workload<'_>>,
) -> (Report, Vec<u8>) {
    let mut r = report(Operation::Save);
    let mut out = Vec::new();
    let opts = SaveOptions {
        precopy_passes: passes,
    };
    let done = session::save(mock, &opts, workload, &mut r, &mut out);
    assert_eq!(done.as_ref().err(), r.error.as_ref());
    (r, out)
}

#[test]
fn save_by_stop_copy_alone() {
    let mut m = Mock::new();
    m.stop_copy = mock::whole(1);
    m.read_limit = 100_000;
    let (r, out) = save(&mut m, 0, None);
    assert_eq!(r.error, None);
    assert_eq!(out, m.stop_copy);
    assert_eq!(m.transitions, [MigState::StopCopy, MigState::Stop]);
    assert_eq!(r.passes.len(), 1);
    let pass = &r.passes[0];
    assert_eq!(pass.kind, PassKind::StopCopy);
    assert_eq!(pass.bytes, out.len() as u64);
    // Full reads of read_limit, the rest, then the read of 0.
    assert_eq!(pass.calls, out.len().div_ceil(100_000) as u64 + 1);
    assert_eq!(pass.end, Some(PassEnd::Eof));
    assert_eq!(r.data_size, Some(out.len() as u64));
    assert_eq!(r.initial_state, Some(MigState::Running));
    assert_eq!(r.final_state, Some(MigState::Stop));
    assert!(r.stream_complete());
    let summary = r.stream.as_ref().unwrap().as_ref().unwrap();
    assert!(summary.complete(), "{summary}");
    let phases: Vec<&str> = r.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(phases, ["RUNNING -> STOP_COPY", "STOP_COPY -> STOP"]);
}

#[test]
fn save_with_precopy_passes_and_a_workload() {
    let mut m = Mock::new();
    let first = mock::first_pass(1);
    let dirty = mock::page(7, 0xaa);
    m.precopy = [first.clone(), dirty.clone()].into();
    m.stop_copy = mock::tail();
    let mut runs = Vec::new();
    let mut workload = |pass: u32| -> Result<()> {
        runs.push(pass);
        Ok(())
    };
    let (r, out) = save(&mut m, 2, Some(&mut workload));
    assert_eq!(r.error, None);
    assert_eq!(runs, [1, 2]);
    assert_eq!(
        m.transitions,
        [MigState::PreCopy, MigState::StopCopy, MigState::Stop]
    );
    let expected: Vec<u8> = [first.clone(), dirty.clone(), mock::tail()].concat();
    assert_eq!(out, expected);
    let kinds: Vec<PassKind> = r.passes.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            PassKind::PreCopy(1),
            PassKind::PreCopy(2),
            PassKind::StopCopy
        ]
    );
    assert_eq!(
        r.passes[0].pending,
        Some(Pending::Split {
            initial: first.len() as u64,
            dirty: 0
        })
    );
    assert_eq!(r.passes[0].end, Some(PassEnd::NotReady));
    assert_eq!(r.passes[1].bytes, dirty.len() as u64);
    assert_eq!(r.passes[2].bytes, mock::tail().len() as u64);
    assert_eq!(r.data_size, Some(320));
    assert_eq!(
        r.pending_at_stop_copy,
        Some(Pending::Split {
            initial: 0,
            dirty: 0
        })
    );
    assert_eq!(r.bytes(), expected.len() as u64);
    let summary = r.stream.as_ref().unwrap().as_ref().unwrap();
    assert_eq!((summary.page_records, summary.pages), (257, 256));
    assert!(summary.complete());
    assert!(r.phases.iter().any(|p| p.name == "workload after pass 2"));
}

#[test]
fn precopy_passes_need_pre_copy() {
    let mut m = Mock::new();
    m.features.pre_copy = false;
    let (r, out) = save(&mut m, 1, None);
    let e = r.error.unwrap();
    assert!(e.to_string().contains("PRE_COPY"), "{e}");
    assert!(m.transitions.is_empty());
    assert!(out.is_empty());
    assert_eq!(r.final_state, Some(MigState::Running));
}

#[test]
fn a_device_not_running_is_not_saved() {
    let mut m = Mock::new();
    m.state = MigState::Stop;
    let (r, _) = save(&mut m, 0, None);
    assert!(r.error.unwrap().to_string().contains("STOP, not RUNNING"));
    assert!(m.transitions.is_empty());
}

#[test]
fn a_size_other_than_mig_data_size_fails_the_save() {
    let mut m = Mock::new();
    m.stop_copy = mock::whole(1);
    m.data_size = Some(m.stop_copy.len() as u64 - 1);
    let (r, out) = save(&mut m, 0, None);
    let e = r.error.clone().unwrap();
    assert_eq!(e.errno, None);
    assert!(e.to_string().contains("MIG_DATA_SIZE"), "{e}");
    // The stream is whole all the same, and the device stopped.
    assert!(r.stream_complete());
    assert_eq!(out, m.stop_copy);
    assert_eq!(r.final_state, Some(MigState::Stop));
}

#[test]
fn a_huge_mig_data_size_is_only_a_mismatch() {
    let mut m = Mock::new();
    m.stop_copy = mock::whole(1);
    m.data_size = Some(u64::MAX);
    let (r, out) = save(&mut m, 0, None);
    assert!(r.error.unwrap().to_string().contains("MIG_DATA_SIZE"));
    assert_eq!(out, m.stop_copy);
}

#[test]
fn a_protocol_without_mig_data_size_is_not_checked() {
    let mut m = Mock::new();
    m.stop_copy = mock::whole(1);
    m.data_size = Some(1);
    m.has_data_size = false;
    let (r, out) = save(&mut m, 0, None);
    assert_eq!(r.error, None);
    assert_eq!(r.data_size, None);
    assert_eq!(out, m.stop_copy);
    assert_eq!(r.json()["data_size"], serde_json::Value::Null);
}

#[test]
fn enomsg_is_no_end_in_stop_copy() {
    let mut m = Mock::new();
    m.stop_copy = mock::whole(1);
    m.enomsg_in_stop_copy = true;
    let (r, _) = save(&mut m, 0, None);
    let e = r.error.clone().unwrap();
    assert_eq!(e.errno, Some(ENOMSG));
    assert!(e.what.starts_with("stop-copy: "), "{e}");
    assert!(!r.stream_complete());
    assert_eq!(r.passes[0].end, None);
    assert_eq!(r.final_state, Some(MigState::StopCopy));
}

#[test]
fn a_failed_transition_is_reported_with_its_errno() {
    let mut m = Mock::new();
    m.fail = Some((Op::SetState(MigState::StopCopy), EINVAL));
    let (r, _) = save(&mut m, 0, None);
    let e = r.error.clone().unwrap();
    assert_eq!(e.errno, Some(EINVAL));
    assert_eq!(e.errno_name().as_deref(), Some("EINVAL"));
    assert!(e.what.starts_with("RUNNING -> STOP_COPY"), "{e}");
    assert!(r.passes.is_empty());
    assert_eq!(r.final_state, Some(MigState::Running));
}

#[test]
fn a_failed_read_ends_the_pass_it_is_in() {
    let mut m = Mock::new();
    m.precopy = [mock::first_pass(1)].into();
    m.fail = Some((Op::Read, EIO));
    let (r, _) = save(&mut m, 1, None);
    let e = r.error.unwrap();
    assert!(e.what.starts_with("pre-copy pass 1: "), "{e}");
    assert_eq!(e.errno, Some(EIO));
    assert_eq!(r.passes.len(), 1);
    assert_eq!(r.passes[0].calls, 1);
    assert_eq!(r.final_state, Some(MigState::PreCopy));
}

#[test]
fn a_failing_workload_stops_the_save_before_stop_copy() {
    let mut m = Mock::new();
    m.precopy = [mock::first_pass(1)].into();
    m.stop_copy = mock::tail();
    let mut workload = |_: u32| -> Result<()> {
        Err(Error::other(
            "workload after pre-copy pass 1",
            "exit status: 3",
        ))
    };
    let (r, _) = save(&mut m, 3, Some(&mut workload));
    assert!(r.error.unwrap().to_string().contains("exit status: 3"));
    assert_eq!(m.transitions, [MigState::PreCopy]);
    assert_eq!(r.passes.len(), 1);
}

#[test]
fn mig_data_size_failure_is_reported() {
    let mut m = Mock::new();
    m.fail = Some((Op::DataSize, EINVAL));
    let (r, _) = save(&mut m, 0, None);
    let e = r.error.unwrap();
    assert!(e.what.starts_with("before STOP_COPY: MIG_DATA_SIZE"), "{e}");
}

fn load(mock: &mut Mock, stream: &[u8]) -> Report {
    let mut r = report(Operation::Load);
    let done = session::load(mock, stream, &mut r);
    assert_eq!(done.as_ref().err(), r.error.as_ref());
    r
}

#[test]
fn load_writes_in_chunks_and_resumes() {
    let mut m = Mock::new();
    let stream: Vec<u8> = (0..CHUNK * 5 / 2).map(|i| i as u8).collect();
    let r = load(&mut m, &stream);
    assert_eq!(r.error, None);
    assert_eq!(m.writes, [CHUNK, CHUNK, CHUNK / 2]);
    assert_eq!(m.written, stream);
    assert_eq!(m.transitions, [MigState::Resuming, MigState::Running]);
    assert_eq!(r.passes.len(), 1);
    assert_eq!(r.passes[0].kind, PassKind::Resume);
    assert_eq!(r.passes[0].bytes, stream.len() as u64);
    assert_eq!(r.passes[0].calls, 3);
    assert_eq!(r.passes[0].end, Some(PassEnd::Written));
    assert_eq!(r.final_state, Some(MigState::Running));
    // Not a stream: described as such, and loaded all the same.
    assert!(r.stream.as_ref().unwrap().is_err());
}

#[test]
fn a_refused_write_is_reported_with_its_bytes_and_errno() {
    let mut m = Mock::new();
    m.fail = Some((Op::Write(1), EINVAL));
    let stream = vec![0u8; CHUNK * 3];
    let r = load(&mut m, &stream);
    let e = r.error.clone().unwrap();
    assert_eq!(e.errno, Some(EINVAL));
    assert!(
        e.what.starts_with("write of stream bytes 1048576..2097152"),
        "{e}"
    );
    assert_eq!(m.transitions, [MigState::Resuming]);
    assert_eq!(r.passes[0].bytes, CHUNK as u64);
    assert_eq!(r.passes[0].end, None);
    assert_eq!(r.final_state, Some(MigState::Resuming));
}

#[test]
fn a_refused_commit_is_reported() {
    let mut m = Mock::new();
    m.fail = Some((Op::SetState(MigState::Running), EINVAL));
    let stream = mock::whole(1);
    let r = load(&mut m, &stream);
    let e = r.error.clone().unwrap();
    assert!(e.what.starts_with("RESUMING -> RUNNING"), "{e}");
    assert!(
        e.to_string()
            .ends_with("EINVAL: the device refused the stream (incomplete or bad)"),
        "{e}"
    );
    assert_eq!(r.final_state, Some(MigState::Resuming));
    assert!(r.stream.as_ref().unwrap().as_ref().unwrap().complete());
}

#[test]
fn a_device_without_stop_copy_is_not_loaded() {
    let mut m = Mock::new();
    m.features.stop_copy = false;
    let r = load(&mut m, &mock::whole(1));
    assert!(r.error.unwrap().to_string().contains("STOP_COPY"));
    assert!(m.transitions.is_empty());
}
