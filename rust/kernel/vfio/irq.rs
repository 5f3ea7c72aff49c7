// SPDX-License-Identifier: GPL-2.0

//! Interrupts of VFIO devices: `VFIO_DEVICE_GET_IRQ_INFO` and `VFIO_DEVICE_SET_IRQS`, checked
//! against what the driver describes before the driver sees them.

use super::Driver;
use crate::{
    alloc::KVec,
    bindings,
    error::to_result,
    eventfd::EventFd,
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};
use core::mem::size_of;

/// What a device has at one interrupt index, the answer to `VFIO_DEVICE_GET_IRQ_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqInfo {
    /// `VFIO_IRQ_INFO_*`, e.g. `VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE`.
    pub flags: u32,
    /// The number of vectors; `VFIO_DEVICE_SET_IRQS` requests must stay within them.
    pub count: u32,
}

impl IrqInfo {
    /// An index the device's API defines but the device does not implement: no vectors.
    pub const NONE: Self = Self { flags: 0, count: 0 };

    /// `argsz`, `flags`, `index` and `count`, each a `u32`: what every caller must provide.
    const MINSZ: usize = 4 * size_of::<u32>();

    /// Answers the `struct vfio_irq_info` at `arg` with what `T` has at the index it names.
    pub(super) fn answer<T: Driver>(driver: &T, arg: UserPtr) -> Result<isize> {
        let (mut reader, mut writer) = UserSlice::new(arg, Self::MINSZ).reader_writer();
        let argsz: u32 = reader.read()?;
        let _flags: u32 = reader.read()?;
        let index: u32 = reader.read()?;
        if (argsz as usize) < Self::MINSZ {
            return Err(EINVAL);
        }
        let info = driver.irq_info(index)?;
        for field in [argsz, info.flags, index, info.count] {
            writer.write(&field)?;
        }
        Ok(0)
    }
}

/// What a `VFIO_DEVICE_SET_IRQS` request does to its vectors (`VFIO_IRQ_SET_ACTION_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqAction {
    /// Stop signalling the vectors until they are unmasked.
    Mask,
    /// Signal the vectors again, including what became pending while they were masked.
    Unmask,
    /// Set up, tear down or fire the signalling of the vectors, depending on the data.
    Trigger,
}

/// The data of a `VFIO_DEVICE_SET_IRQS` request (`VFIO_IRQ_SET_DATA_*`), one entry per vector
/// from the request's first.
pub enum IrqData {
    /// No data: the action applies to every vector of the range. A `Trigger` with no vectors
    /// (`count` 0) tears down the signalling of the whole index.
    None,
    /// Per vector, whether the action applies to it.
    Bool(KVec<bool>),
    /// Per vector, the eventfd to signal it through, or `None` (a negative descriptor) to stop
    /// signalling it.
    EventFd(KVec<Option<EventFd>>),
}

/// A `VFIO_DEVICE_SET_IRQS` request, checked against the [`IrqInfo`] of its index.
///
/// The vectors it names, `start..start + count`, exist, the flags name one action and one data
/// type, and eventfds are resolved to their contexts: an invalid descriptor fails the request
/// before the driver sees it.
pub struct IrqSet {
    /// The interrupt index.
    pub index: u32,
    /// The first vector.
    pub start: u32,
    /// The number of vectors.
    pub count: u32,
    /// What to do to them.
    pub action: IrqAction,
    /// With what.
    pub data: IrqData,
}

impl IrqSet {
    /// `argsz`, `flags`, `index`, `start` and `count`, each a `u32`: the header before the data.
    const MINSZ: usize = 5 * size_of::<u32>();

    /// Reads and checks the `struct vfio_irq_set` at `arg` for the device `driver`.
    ///
    /// Fails with `EINVAL` for an index `driver` does not describe, vectors it does not have,
    /// unknown or conflicting flags, or an `argsz` too small for the data; with `EBADF` or
    /// `EINVAL` for a descriptor that is not an eventfd.
    pub(super) fn read_from<T: Driver>(driver: &T, arg: UserPtr) -> Result<Self> {
        let mut reader = UserSlice::new(arg, Self::MINSZ).reader();
        let mut hdr = bindings::vfio_irq_set {
            argsz: reader.read()?,
            flags: reader.read()?,
            index: reader.read()?,
            start: reader.read()?,
            count: reader.read()?,
            data: bindings::__IncompleteArrayField::new(),
        };

        let info = driver.irq_info(hdr.index)?;
        let vectors = c_int::try_from(info.count).map_err(|_| EINVAL)?;
        let mut data_size = 0;
        // SAFETY: `hdr` and `data_size` are valid for the call. The index was checked against
        // the driver above, so any bound on it will do.
        to_result(unsafe {
            bindings::vfio_set_irqs_validate_and_prepare(
                &mut hdr,
                vectors,
                c_int::MAX,
                &mut data_size,
            )
        })?;

        let action = match hdr.flags & bindings::VFIO_IRQ_SET_ACTION_TYPE_MASK {
            bindings::VFIO_IRQ_SET_ACTION_MASK => IrqAction::Mask,
            bindings::VFIO_IRQ_SET_ACTION_UNMASK => IrqAction::Unmask,
            bindings::VFIO_IRQ_SET_ACTION_TRIGGER => IrqAction::Trigger,
            _ => return Err(EINVAL),
        };
        let mut reader = UserSlice::new(arg.wrapping_byte_add(Self::MINSZ), data_size).reader();
        // The core checked that the data type is exactly one of these, and sized the data.
        let data = match hdr.flags & bindings::VFIO_IRQ_SET_DATA_TYPE_MASK {
            bindings::VFIO_IRQ_SET_DATA_BOOL => {
                let mut flags = KVec::with_capacity(data_size, GFP_KERNEL)?;
                for _ in 0..data_size {
                    flags.push(reader.read::<u8>()? != 0, GFP_KERNEL)?;
                }
                IrqData::Bool(flags)
            }
            bindings::VFIO_IRQ_SET_DATA_EVENTFD => {
                let count = data_size / size_of::<i32>();
                let mut eventfds = KVec::with_capacity(count, GFP_KERNEL)?;
                for _ in 0..count {
                    let fd: i32 = reader.read()?;
                    let eventfd = if fd < 0 {
                        None
                    } else {
                        Some(EventFd::from_fd(fd)?)
                    };
                    eventfds.push(eventfd, GFP_KERNEL)?;
                }
                IrqData::EventFd(eventfds)
            }
            _ => IrqData::None,
        };

        Ok(Self {
            index: hdr.index,
            start: hdr.start,
            count: hdr.count,
            action,
            data,
        })
    }
}
