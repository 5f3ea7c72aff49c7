// SPDX-License-Identifier: GPL-2.0

//! Interrupts of VFIO devices: `VFIO_DEVICE_GET_IRQ_INFO` and `VFIO_DEVICE_SET_IRQS`, checked
//! against the driver's description of the interrupt index before the driver sees them.

use super::{
    DeviceOps,
    Refusal, //
};
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
use core::{
    mem::size_of,
    ops::Range, //
};

/// What a device has at one interrupt index, the answer to `VFIO_DEVICE_GET_IRQ_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqInfo {
    /// `VFIO_IRQ_INFO_*`, e.g. `VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE`.
    ///
    /// `VFIO_DEVICE_SET_IRQS` requests that mask or unmask an index without
    /// `VFIO_IRQ_INFO_MASKABLE`, or pass eventfds to one without `VFIO_IRQ_INFO_EVENTFD`, fail
    /// with `ENOTTY` before they reach the driver.
    pub flags: u32,
    /// The number of vectors, at most [`IrqInfo::MAX_COUNT`]; `VFIO_DEVICE_SET_IRQS` requests
    /// must stay within them.
    pub count: u32,
}

impl IrqInfo {
    /// An index the device's API defines but the device does not implement: no vectors.
    pub const NONE: Self = Self { flags: 0, count: 0 };

    /// The most vectors an index may have: those of MSI-X, the largest PCI interrupt index. It
    /// bounds what a request makes the kernel allocate; requests for an index described with
    /// more fail with `EINVAL`.
    pub const MAX_COUNT: u32 = 2048;

    /// `argsz`, `flags`, `index` and `count`, each a `u32`: what every caller must provide.
    const MINSZ: usize = 4 * size_of::<u32>();

    /// Answers the `struct vfio_irq_info` at `arg`, whose header was `query`, with what `T` has
    /// at the index it names.
    pub(super) fn answer<T: DeviceOps>(
        driver: &T,
        query: IrqQuery,
        arg: UserPtr,
    ) -> Result<isize, Refusal> {
        if (query.argsz as usize) < Self::MINSZ {
            return Err(EINVAL.into());
        }
        let info = driver.irq_info(query.index)?;
        let mut writer = UserSlice::new(arg, Self::MINSZ).writer();
        for field in [query.argsz, info.flags, query.index, info.count] {
            writer.write(&field)?;
        }
        Ok(0)
    }
}

/// The header of a `VFIO_DEVICE_GET_IRQ_INFO` request.
#[derive(Clone, Copy, Debug)]
pub(super) struct IrqQuery {
    pub(super) argsz: u32,
    pub(super) index: u32,
}

impl IrqQuery {
    /// Reads the header of the `struct vfio_irq_info` at `arg`.
    pub(super) fn read_from(arg: UserPtr) -> Result<Self> {
        let mut reader = UserSlice::new(arg, IrqInfo::MINSZ).reader();
        let argsz = reader.read()?;
        let _flags: u32 = reader.read()?;
        let index = reader.read()?;
        Ok(Self { argsz, index })
    }
}

/// The header of a `VFIO_DEVICE_SET_IRQS` request, before its data.
#[derive(Clone, Copy, Debug)]
pub(super) struct IrqSetHeader {
    pub(super) argsz: u32,
    pub(super) flags: u32,
    pub(super) index: u32,
    pub(super) start: u32,
    pub(super) count: u32,
}

impl IrqSetHeader {
    /// `argsz`, `flags`, `index`, `start` and `count`, each a `u32`.
    const SIZE: usize = 5 * size_of::<u32>();

    /// Reads the header of the `struct vfio_irq_set` at `arg`.
    pub(super) fn read_from(arg: UserPtr) -> Result<Self> {
        let mut reader = UserSlice::new(arg, Self::SIZE).reader();
        Ok(Self {
            argsz: reader.read()?,
            flags: reader.read()?,
            index: reader.read()?,
            start: reader.read()?,
            count: reader.read()?,
        })
    }
}

/// What a `VFIO_DEVICE_SET_IRQS` request does to its vectors (`VFIO_IRQ_SET_ACTION_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqAction {
    /// Stop signalling the vectors until they are unmasked.
    Mask,
    /// Signal the vectors again, including what became pending while they were masked.
    Unmask,
    /// Set up or tear down the signalling of the vectors, or fire them, depending on the data.
    Trigger,
}

/// The data of a `VFIO_DEVICE_SET_IRQS` request (`VFIO_IRQ_SET_DATA_*`), one entry per vector
/// of the request, in order.
#[derive(Debug)]
pub enum IrqData {
    /// No data: the action applies to every vector of the request. A `Trigger` of no vectors
    /// tears down the signalling of the whole index.
    None,
    /// Per vector, whether the action applies to it.
    Bool(KVec<bool>),
    /// Per vector, the eventfd to signal it through, or `None` (a negative descriptor) to
    /// unassign the one it has. Only with [`IrqAction::Trigger`]: eventfds that unmask (irqfds)
    /// are not supported, and such requests fail with `ENOTTY`.
    EventFd(KVec<Option<EventFd>>),
}

/// A `VFIO_DEVICE_SET_IRQS` request, checked against the [`IrqInfo`] of its index.
///
/// # Invariants
///
/// The vectors `vectors` exist at `index`, the index supports `action` with `data` as its
/// [`IrqInfo::flags`] say, and `data` has one entry per vector unless it is [`IrqData::None`].
#[derive(Debug)]
pub struct IrqSet {
    index: u32,
    vectors: Range<u32>,
    action: IrqAction,
    data: IrqData,
}

impl IrqSet {
    /// The interrupt index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The vectors the request is about, possibly none.
    pub fn vectors(&self) -> Range<u32> {
        self.vectors.clone()
    }

    /// What to do to them.
    pub fn action(&self) -> IrqAction {
        self.action
    }

    /// With what, one entry per vector.
    pub fn data(&self) -> &IrqData {
        &self.data
    }

    /// Takes the data, to keep its eventfds.
    pub fn into_data(self) -> IrqData {
        self.data
    }

    /// Checks the `struct vfio_irq_set` at `arg`, whose header was `header`, for the device
    /// `driver`, and reads its data.
    ///
    /// Fails with `EINVAL` for an index `driver` does not describe, vectors it does not have,
    /// unknown or conflicting flags, or an `argsz` too small for the data; with `ENOTTY` for an
    /// action or data the index does not support; with `EBADF` or `EINVAL` for a descriptor
    /// that is not an eventfd.
    pub(super) fn read_from<T: DeviceOps>(
        driver: &T,
        header: IrqSetHeader,
        arg: UserPtr,
    ) -> Result<Self, Refusal> {
        let mut hdr = bindings::vfio_irq_set {
            argsz: header.argsz,
            flags: header.flags,
            index: header.index,
            start: header.start,
            count: header.count,
            data: bindings::__IncompleteArrayField::new(),
        };

        let info = driver.irq_info(hdr.index)?;
        if info.count > IrqInfo::MAX_COUNT {
            return Err(EINVAL.into());
        }
        let mut data_size = 0;
        // SAFETY: `hdr` and `data_size` are valid for the call. The index was checked against
        // the driver above, so any bound on it will do. The count fits an `int`.
        to_result(unsafe {
            bindings::vfio_set_irqs_validate_and_prepare(
                &mut hdr,
                info.count as c_int,
                c_int::MAX,
                &mut data_size,
            )
        })?;

        let action = match hdr.flags & bindings::VFIO_IRQ_SET_ACTION_TYPE_MASK {
            bindings::VFIO_IRQ_SET_ACTION_MASK => IrqAction::Mask,
            bindings::VFIO_IRQ_SET_ACTION_UNMASK => IrqAction::Unmask,
            bindings::VFIO_IRQ_SET_ACTION_TRIGGER => IrqAction::Trigger,
            _ => return Err(EINVAL.into()),
        };
        // The core checked that the data type is exactly one of these.
        let data_type = hdr.flags & bindings::VFIO_IRQ_SET_DATA_TYPE_MASK;
        let maskable = info.flags & bindings::VFIO_IRQ_INFO_MASKABLE != 0;
        let eventfds = info.flags & bindings::VFIO_IRQ_INFO_EVENTFD != 0;
        match (action, data_type) {
            (IrqAction::Mask | IrqAction::Unmask, _) if !maskable => return Err(ENOTTY.into()),
            (IrqAction::Mask | IrqAction::Unmask, bindings::VFIO_IRQ_SET_DATA_EVENTFD) => {
                return Err(ENOTTY.into())
            }
            (IrqAction::Trigger, bindings::VFIO_IRQ_SET_DATA_EVENTFD) if !eventfds => {
                return Err(ENOTTY.into())
            }
            _ => {}
        }

        // The core bounded the data by the vectors, at most `MAX_COUNT` of at most 4 bytes.
        let mut bytes = KVec::from_elem(0u8, data_size, GFP_KERNEL)?;
        UserSlice::new(arg.wrapping_byte_add(IrqSetHeader::SIZE), data_size)
            .reader()
            .read_slice(&mut bytes)?;
        let count = hdr.count as usize;
        let data = match data_type {
            bindings::VFIO_IRQ_SET_DATA_BOOL if bytes.len() == count => {
                let mut flags = KVec::with_capacity(count, GFP_KERNEL)?;
                for &byte in bytes.iter() {
                    flags.push(byte != 0, GFP_KERNEL)?;
                }
                IrqData::Bool(flags)
            }
            bindings::VFIO_IRQ_SET_DATA_EVENTFD if bytes.len() == count * size_of::<i32>() => {
                let mut eventfds = KVec::with_capacity(count, GFP_KERNEL)?;
                for fd in bytes.chunks_exact(size_of::<i32>()) {
                    let fd = i32::from_ne_bytes(fd.try_into().map_err(|_| EINVAL)?);
                    let eventfd = if fd < 0 {
                        None
                    } else {
                        Some(EventFd::from_fd(fd)?)
                    };
                    eventfds.push(eventfd, GFP_KERNEL)?;
                }
                IrqData::EventFd(eventfds)
            }
            bindings::VFIO_IRQ_SET_DATA_NONE => IrqData::None,
            _ => return Err(EINVAL.into()),
        };

        // INVARIANT: The core checked the vectors and the flags, the index's flags were checked
        // above, and the data has `count` entries.
        Ok(Self {
            index: hdr.index,
            vectors: hdr.start..hdr.start + hdr.count,
            action,
            data,
        })
    }
}
