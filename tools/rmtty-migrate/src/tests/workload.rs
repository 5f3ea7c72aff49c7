// SPDX-License-Identifier: GPL-2.0

use crate::workload::Workload;
use std::fs::File;
use std::os::fd::AsRawFd;

fn workload(command: &str, device: &File) -> Workload {
    Workload {
        command: command.into(),
        device: "/sys/bus/mdev/devices/u".into(),
        device_fd: device.as_raw_fd(),
        bar2_offset: 2 << 40,
    }
}

#[test]
fn the_command_gets_its_environment() {
    let device = File::open("/dev/null").unwrap();
    let w = workload(
        r#"test "$RMTTY_MIGRATE_PASS" = 3 &&
           test "$RMTTY_MIGRATE_DEVICE" = /sys/bus/mdev/devices/u &&
           test "$RMTTY_MIGRATE_BAR2_OFFSET" = 2199023255552"#,
        &device,
    );
    assert_eq!(w.run(3), Ok(()));
}

#[test]
fn the_command_inherits_the_device() {
    let dir = std::env::temp_dir().join(format!("rmtty-migrate-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("device");
    let device = File::create(&path).unwrap();
    // Written through the inherited descriptor, as a workload dirties BAR2.
    let w = workload(r#"printf dirty >&"$RMTTY_MIGRATE_DEVICE_FD""#, &device);
    assert_eq!(w.run(1), Ok(()));
    assert_eq!(std::fs::read(&path).unwrap(), b"dirty");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failing_command_fails_with_its_status() {
    let device = File::open("/dev/null").unwrap();
    let e = workload("exit 3", &device).run(2).unwrap_err();
    assert_eq!(e.what, "workload after pre-copy pass 2");
    assert_eq!(e.errno, None);
    assert_eq!(e.detail.as_deref(), Some("`exit 3` failed: exit status: 3"));
}

#[test]
fn a_closed_device_fails_before_the_command_runs() {
    let device = File::open("/dev/null").unwrap();
    let mut w = workload("true", &device);
    w.device_fd = -1;
    assert_eq!(w.run(1).unwrap_err().errno_name().as_deref(), Some("EBADF"));
}
