// SPDX-License-Identifier: GPL-2.0

use super::mock;
use crate::report::{Operation, Pass, PassEnd, PassKind, Report};
use crate::stream::Summary;
use crate::transport::{errno_name, Error, Features, MigState, Pending};
use std::time::Duration;

/// A save with one pre-copy pass and stop-copy: 2 MB in 10 ms, 1 MB in 10 ms.
fn saved() -> Report {
    let mut r = Report::new(
        Operation::Save,
        "/sys/bus/mdev/devices/u".into(),
        "cdev",
        "v2",
    );
    r.features = Some(Features {
        stop_copy: true,
        p2p: true,
        pre_copy: true,
    });
    r.initial_state = Some(MigState::Running);
    r.final_state = Some(MigState::Stop);
    r.data_size = Some(1_000_000);
    r.pending_at_stop_copy = Some(Pending::Split {
        initial: 0,
        dirty: 4116,
    });
    let mut pre = Pass::new(PassKind::PreCopy(1));
    pre.pending = Some(Pending::Split {
        initial: 2_000_000,
        dirty: 0,
    });
    pre.bytes = 2_000_000;
    pre.calls = 3;
    pre.time = Duration::from_millis(10);
    pre.end = Some(PassEnd::NotReady);
    let mut stop = Pass::new(PassKind::StopCopy);
    stop.bytes = 1_000_000;
    stop.calls = 2;
    stop.time = Duration::from_millis(10);
    stop.end = Some(PassEnd::Eof);
    r.passes = vec![pre, stop];
    r.phase("open", Duration::from_millis(1));
    r.phase("RUNNING -> PRE_COPY", Duration::from_micros(50));
    r.total = Duration::from_millis(25);
    r.stream = Some(Summary::of(&mock::whole(1)));
    r
}

#[test]
fn sums_bytes_and_time_and_rates_them_in_mb_per_s() {
    let r = saved();
    assert_eq!(r.bytes(), 3_000_000);
    assert_eq!(r.transfer_time(), Duration::from_millis(20));
    assert!((r.mb_per_s().unwrap() - 150.0).abs() < 1e-9);
    assert_eq!(r.stop_copy_bytes(), Some(1_000_000));
    let empty = Report::new(Operation::Load, "d".into(), "group", "v2");
    assert_eq!(empty.mb_per_s(), None);
}

#[test]
fn the_json_report() {
    let v = saved().json();
    assert_eq!(v["operation"], "save");
    assert_eq!(v["ok"], true);
    assert_eq!(v["device"], "/sys/bus/mdev/devices/u");
    assert_eq!(v["front_door"], "cdev");
    assert_eq!(v["transport"], "v2");
    assert_eq!(
        v["migration_flags"],
        serde_json::json!(["STOP_COPY", "P2P", "PRE_COPY"])
    );
    assert_eq!(v["initial_state"], "RUNNING");
    assert_eq!(v["final_state"], "STOP");
    assert_eq!(v["bytes"], 3_000_000);
    assert_eq!(v["data_size"], 1_000_000);
    assert_eq!(v["stop_copy_bytes"], 1_000_000);
    assert_eq!(v["precopy_passes"], 1);
    assert_eq!(v["pending_at_stop_copy"]["dirty_bytes"], 4116);
    let pre = &v["passes"][0];
    assert_eq!(pre["phase"], "pre-copy");
    assert_eq!(pre["pass"], 1);
    assert_eq!(pre["initial_bytes"], 2_000_000);
    assert_eq!(pre["dirty_bytes"], 0);
    assert_eq!(pre["bytes"], 2_000_000);
    assert_eq!(pre["calls"], 3);
    assert_eq!(pre["end"], "ENOMSG");
    assert_eq!(pre["seconds"], 0.01);
    let stop = &v["passes"][1];
    assert_eq!(stop["phase"], "stop-copy");
    assert_eq!(stop["pass"], serde_json::Value::Null);
    assert_eq!(stop["end"], "EOF");
    assert_eq!(v["phases"][0]["name"], "open");
    assert_eq!(v["phases"][1]["name"], "RUNNING -> PRE_COPY");
    assert_eq!(v["transfer_seconds"], 0.02);
    assert_eq!(v["total_seconds"], 0.025);
    assert_eq!(v["mb_per_s"], 150.0);
    assert_eq!(v["stream"]["header"]["memory_mib"], 1);
    assert_eq!(v["stream"]["complete"], true);
    assert_eq!(v["error"], serde_json::Value::Null);
    // One object, one line.
    assert!(!v.to_string().contains('\n'));
}

#[test]
fn the_json_report_of_a_failure() {
    let mut r = saved();
    r.error = Some(Error::errno("RUNNING -> STOP_COPY: MIG_DEVICE_STATE", 22));
    r.stream = Some(Summary::of(b"short"));
    let v = r.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["errno"], 22);
    assert_eq!(v["error"]["errno_name"], "EINVAL");
    assert_eq!(v["error"]["what"], "RUNNING -> STOP_COPY: MIG_DEVICE_STATE");
    assert_eq!(
        v["error"]["message"],
        "RUNNING -> STOP_COPY: MIG_DEVICE_STATE: EINVAL (Invalid argument)"
    );
    assert!(v["stream"]["error"].as_str().unwrap().contains("shorter"));
}

#[test]
fn the_human_report() {
    let mut r = saved();
    r.error = Some(Error::other("stop-copy", "read 1 bytes"));
    let text = r.human();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "rmtty-migrate save /sys/bus/mdev/devices/u (cdev, v2)"
    );
    assert_eq!(lines[1], "  migration: STOP_COPY | P2P | PRE_COPY");
    assert!(lines[2].starts_with("  stream: rmtty 1.0, memory_mib=1 ports=1, header CRC ok"));
    assert_eq!(
        lines[3],
        "  pre-copy pass 1: 2000000 bytes in 3 calls, 10.000 ms; \
         pending at start: initial 2000000, dirty 0; ENOMSG"
    );
    assert_eq!(
        lines[4],
        "  stop-copy: 1000000 bytes in 2 calls, 10.000 ms; MIG_DATA_SIZE 1000000; EOF"
    );
    assert_eq!(
        lines[5],
        "  total: 3000000 bytes, 2 passes, transfer 20.000 ms (150.0 MB/s), total 25.000 ms"
    );
    assert_eq!(
        lines[6],
        "  phases: open 1.000 ms, RUNNING -> PRE_COPY 0.050 ms"
    );
    assert_eq!(lines[7], "  device state: STOP");
    assert_eq!(lines[8], "  error: stop-copy: read 1 bytes");
}

#[test]
fn errors_name_their_errno() {
    assert_eq!(errno_name(22), "EINVAL");
    assert_eq!(errno_name(42), "ENOMSG");
    assert_eq!(errno_name(100_000), "errno 100000");
    let e = Error::errno("write()", 22).context("write of stream bytes 0..32");
    assert_eq!(
        e.to_string(),
        "write of stream bytes 0..32: write(): EINVAL (Invalid argument)"
    );
    let io = std::io::Error::from_raw_os_error(16);
    assert_eq!(
        Error::io("open", &io).errno_name().as_deref(),
        Some("EBUSY")
    );
}

#[test]
fn errors_find_the_errno_down_a_library_error() {
    let sys = vmm_sys_util::errno::Error::new(16);
    let e = Error::caused_by("open", &vfio_ioctls::VfioError::VfioDeviceFeature(sys));
    assert_eq!(e.errno, Some(16));
    assert!(e.to_string().starts_with("open: EBUSY: "), "{e}");
    let io = std::io::Error::from_raw_os_error(13);
    let e = Error::caused_by("open", &vfio_ioctls::VfioError::OpenContainer(io));
    assert_eq!(e.errno_name().as_deref(), Some("EACCES"));
    let e = Error::caused_by("open", &vfio_ioctls::VfioError::GroupViable);
    assert_eq!(e.errno, None);
    assert_eq!(e.to_string(), "open: group is not viable");
}
