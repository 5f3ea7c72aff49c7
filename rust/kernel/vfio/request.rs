// SPDX-License-Identifier: GPL-2.0

//! What userspace asked of a VFIO device, for the kernel log line of a refusal.

use super::{
    ioctl,
    irq::IrqSetHeader,
    migration::State, //
};
use crate::fmt;

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
