// SPDX-License-Identifier: GPL-2.0

//! The command a save runs after each pre-copy pass, to change the device between passes.
//!
//! While the tool has the device open nothing else can open it (a VFIO group has one opener, an
//! iommufd cdev one binder), so the command inherits a descriptor of the open device, through
//! which it can write the device's regions, e.g. dirty pages of BAR2's memory:
//!
//! ```sh
//! python3 -c 'import os; os.pwrite(int(os.environ["RMTTY_MIGRATE_DEVICE_FD"]), b"x" * 4096,
//!             int(os.environ["RMTTY_MIGRATE_BAR2_OFFSET"]) + 5 * 4096)'
//! ```

use crate::transport::{Error, Result};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A shell command, and the device it may change.
pub struct Workload {
    pub command: String,
    /// The device's sysfs directory.
    pub device: PathBuf,
    /// The open device's descriptor, valid while the workload can run.
    pub device_fd: RawFd,
    /// Where BAR2 is in the device's file.
    pub bar2_offset: u64,
}

/// A copy of `fd` that a child inherits: `dup()` leaves `FD_CLOEXEC` clear, unlike
/// `try_clone_to_owned()`.
fn inheritable(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: dup() only reads its argument; an invalid descriptor fails with EBADF.
    let copy = unsafe { libc::dup(fd) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `copy` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

impl Workload {
    /// Runs `sh -c COMMAND` after pre-copy pass `pass` and waits for it. Its stdin is
    /// `/dev/null`, its stdout the tool's stderr (the tool's stdout may carry the stream); its
    /// environment has `RMTTY_MIGRATE_PASS`, `RMTTY_MIGRATE_DEVICE` (the sysfs directory),
    /// `RMTTY_MIGRATE_DEVICE_FD` and `RMTTY_MIGRATE_BAR2_OFFSET`. It fails unless the command
    /// exits with 0.
    pub fn run(&self, pass: u32) -> Result<()> {
        let what = format!("workload after pre-copy pass {pass}");
        let fail = |e: io::Error| Error::io(&what, &e);
        let stdout = io::stderr().as_fd().try_clone_to_owned().map_err(fail)?;
        let device = inheritable(self.device_fd).map_err(fail)?;
        let status = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .env("RMTTY_MIGRATE_PASS", pass.to_string())
            .env("RMTTY_MIGRATE_DEVICE", &self.device)
            .env("RMTTY_MIGRATE_DEVICE_FD", device.as_raw_fd().to_string())
            .env("RMTTY_MIGRATE_BAR2_OFFSET", self.bar2_offset.to_string())
            .status()
            .map_err(fail)?;
        drop(device);
        if status.success() {
            Ok(())
        } else {
            Err(Error::other(
                what,
                format!("`{}` failed: {status}", self.command),
            ))
        }
    }
}
