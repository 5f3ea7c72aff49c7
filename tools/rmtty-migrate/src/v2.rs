// SPDX-License-Identifier: GPL-2.0

//! The v2 migration protocol: `VFIO_DEVICE_FEATURE` with `MIGRATION`, `MIG_DEVICE_STATE` (and its
//! data file), `MIG_DATA_SIZE`, and `VFIO_MIG_GET_PRECOPY_INFO` on the data file.
//!
//! `vfio-ioctls`' [`VfioDevice`] issues these ioctls, with the structs of `vfio-bindings`, and
//! keeps the data file the kernel returns: the one of `PRE_COPY` stays for `STOP_COPY`, and
//! leaving the saving or resuming states closes it.

use crate::transport::{Chunk, Error, Features, MigState, Pending, Result, Transport};
use vfio_bindings::bindings::vfio::{
    VFIO_MIGRATION_P2P, VFIO_MIGRATION_PRE_COPY, VFIO_MIGRATION_STOP_COPY,
};
use vfio_ioctls::{VfioDevice, VfioError};

/// The v2 protocol on an open device.
pub struct V2 {
    device: VfioDevice,
}

impl V2 {
    /// The v2 protocol on `device`.
    pub fn new(device: VfioDevice) -> Self {
        Self { device }
    }
}

/// `what` failed with `err`: its errno, or its message if it has none.
fn failed(what: impl Into<String>, err: &VfioError) -> Error {
    let mut e = Error::caused_by(what, err);
    if e.errno.is_some() {
        // The message only repeats the errno.
        e.detail = None;
    }
    e
}

/// The features that `VFIO_DEVICE_FEATURE_MIGRATION` flags `flags` say.
pub fn features_of(flags: u64) -> Features {
    Features {
        stop_copy: flags & u64::from(VFIO_MIGRATION_STOP_COPY) != 0,
        p2p: flags & u64::from(VFIO_MIGRATION_P2P) != 0,
        pre_copy: flags & u64::from(VFIO_MIGRATION_PRE_COPY) != 0,
    }
}

/// The errno of a data file access that failed, if it has one.
fn io_errno(err: &VfioError) -> Option<i32> {
    match err {
        VfioError::VfioMigrationDataIo(e) => e.raw_os_error(),
        _ => None,
    }
}

impl Transport for V2 {
    fn features(&mut self) -> Result<Features> {
        match self.device.query_migration_support() {
            Ok(Some(flags)) => Ok(features_of(flags)),
            // vfio-ioctls folds ENOTTY (no migration) and EINVAL into "none".
            Ok(None) => Err(Error::other(
                "VFIO_DEVICE_FEATURE_MIGRATION",
                "the device has no v2 migration (ENOTTY or EINVAL)",
            )),
            Err(e) => Err(failed("VFIO_DEVICE_FEATURE_MIGRATION", &e)),
        }
    }

    fn state(&mut self) -> Result<MigState> {
        let what = "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE (get)";
        let state = self
            .device
            .get_migration_state()
            .map_err(|e| failed(what, &e))?;
        MigState::from_v2(state).ok_or_else(|| Error::other(what, format!("unknown state {state}")))
    }

    fn set_state(&mut self, state: MigState) -> Result<()> {
        self.device
            .set_migration_state(state.v2())
            .map_err(|e| failed("VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE", &e))
    }

    fn data_size(&mut self) -> Result<Option<u64>> {
        self.device
            .get_mig_data_size()
            .map(Some)
            .map_err(|e| failed("VFIO_DEVICE_FEATURE_MIG_DATA_SIZE", &e))
    }

    fn pending(&mut self) -> Result<Pending> {
        let info = self
            .device
            .mig_get_precopy_info()
            .map_err(|e| failed("VFIO_MIG_GET_PRECOPY_INFO", &e))?;
        Ok(Pending::Split {
            initial: info.initial_bytes,
            dirty: info.dirty_bytes,
        })
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<Chunk> {
        loop {
            return match self.device.read_migration_data(buf) {
                Ok(0) => Ok(Chunk::End),
                Ok(n) => Ok(Chunk::Data(n)),
                Err(e) => match io_errno(&e) {
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOMSG) => Ok(Chunk::NotReady),
                    _ => Err(failed("read() of the data file", &e)),
                },
            };
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.device
            .write_migration_data(buf)
            .map_err(|e| failed("write() to the data file", &e))
    }

    fn write_size(&self) -> usize {
        // The data file takes any size.
        crate::session::CHUNK
    }
}
