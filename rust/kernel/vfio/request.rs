// SPDX-License-Identifier: GPL-2.0

//! What userspace asked of a VFIO device, and why the device refused it, for the kernel log
//! line of a refusal.

use super::{
    ioctl,
    irq::IrqSetHeader,
    migration::State, //
};
use crate::{
    alloc::AllocError,
    error::Error,
    fmt, //
};

/// A device op's refusal of a request: the error userspace sees, and whether the driver has
/// logged why.
///
/// The device logs each refusal once. An [`Error`], which converts into a refusal (so `?` works
/// on the kernel's results), is logged by the device, rate limited, with the request userspace
/// made. A driver that logs a reason of its own, naming the request, returns
/// [`Refusal::logged`] instead, and the device logs nothing more.
///
/// # Examples
///
/// ```
/// use kernel::{prelude::*, vfio::Refusal};
///
/// fn set_mode(dev: &kernel::device::Device, mode: u32) -> Result<(), Refusal> {
///     if mode > 3 {
///         dev_warn!(dev, "mode {mode} refused: the device has modes 0 to 3\n");
///         return Err(Refusal::logged(EINVAL));
///     }
///     // A refusal the device logs.
///     Err(ENOTTY.into())
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    err: Error,
    logged: bool,
}

impl Refusal {
    /// A refusal with `err` whose reason the driver has already logged.
    pub fn logged(err: Error) -> Self {
        Self { err, logged: true }
    }

    /// The error userspace sees.
    pub fn error(self) -> Error {
        self.err
    }

    /// Whether the driver has logged the refusal's reason.
    pub(super) fn is_logged(self) -> bool {
        self.logged
    }
}

impl From<Error> for Refusal {
    fn from(err: Error) -> Self {
        Self { err, logged: false }
    }
}

impl From<AllocError> for Refusal {
    fn from(err: AllocError) -> Self {
        Error::from(err).into()
    }
}

/// A request of userspace to a VFIO device, as far as it was read before it was refused.
#[derive(Clone, Copy, Debug)]
pub(super) enum Request {
    /// Opening the device.
    Open,
    /// A read of `len` bytes at file offset `pos`.
    Read { len: usize, pos: i64 },
    /// A write of `len` bytes at file offset `pos`.
    Write { len: usize, pos: i64 },
    /// A mapping of `len` bytes at file page offset `pgoff`.
    Mmap { len: usize, pgoff: u64 },
    /// An ioctl, before (or without) reading its argument.
    Ioctl(u32),
    /// `VFIO_DEVICE_GET_IRQ_INFO` of an interrupt index.
    IrqInfo(u32),
    /// `VFIO_DEVICE_SET_IRQS` with this header.
    SetIrqs(IrqSetHeader),
    /// `VFIO_DEVICE_GET_REGION_INFO` of a region index.
    RegionInfo(u32),
    /// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` setting this state (the raw uAPI value).
    SetMigrationState(u32),
    /// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` reading the state.
    GetMigrationState,
    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`.
    MigrationDataSize,
}

/// The name of ioctl `cmd`, if it is one the VFIO core passes to drivers.
fn ioctl_name(cmd: u32) -> Option<&'static str> {
    Some(match cmd {
        ioctl::DEVICE_GET_INFO => "VFIO_DEVICE_GET_INFO",
        ioctl::DEVICE_GET_IRQ_INFO => "VFIO_DEVICE_GET_IRQ_INFO",
        ioctl::DEVICE_SET_IRQS => "VFIO_DEVICE_SET_IRQS",
        ioctl::DEVICE_RESET => "VFIO_DEVICE_RESET",
        _ => return None,
    })
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Open => f.write_str("open"),
            Self::Read { len, pos } => write!(f, "{len}-byte read at {pos:#x}"),
            Self::Write { len, pos } => write!(f, "{len}-byte write at {pos:#x}"),
            Self::Mmap { len, pgoff } => write!(f, "{len}-byte mmap at page offset {pgoff:#x}"),
            Self::Ioctl(cmd) => match ioctl_name(cmd) {
                Some(name) => f.write_str(name),
                None => write!(f, "ioctl {cmd:#x}"),
            },
            Self::IrqInfo(index) => write!(f, "VFIO_DEVICE_GET_IRQ_INFO of index {index}"),
            Self::SetIrqs(hdr) => write!(
                f,
                "VFIO_DEVICE_SET_IRQS of index {}, start {}, count {}, flags {:#x}",
                hdr.index, hdr.start, hdr.count, hdr.flags
            ),
            Self::RegionInfo(index) => write!(f, "VFIO_DEVICE_GET_REGION_INFO of index {index}"),
            Self::SetMigrationState(raw) => match State::from_raw(raw) {
                Some(state) => write!(f, "migration to {state}"),
                None => write!(f, "migration to state {raw}"),
            },
            Self::GetMigrationState => f.write_str("migration state query"),
            Self::MigrationDataSize => f.write_str("migration data size query"),
        }
    }
}
