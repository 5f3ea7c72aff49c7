// SPDX-License-Identifier: GPL-2.0

//! Typed answers to the VFIO device uAPI, checked against what userspace passed in one place.

use crate::{
    bindings,
    error::{
        from_err_ptr,
        to_result, //
    },
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};
use core::{
    marker::PhantomData,
    mem::{
        offset_of,
        size_of, //
    },
};

/// The answer to `VFIO_DEVICE_GET_INFO`.
pub struct DeviceInfo {
    /// `VFIO_DEVICE_FLAGS_*`, e.g. `VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET`.
    pub flags: u32,
    /// Number of regions (for vfio-pci devices at least `VFIO_PCI_NUM_REGIONS`).
    pub num_regions: u32,
    /// Number of interrupt types.
    pub num_irqs: u32,
}

impl DeviceInfo {
    /// The size of the fields every caller must provide: up to `num_irqs`.
    const MINSZ: usize = offset_of!(bindings::vfio_device_info, num_irqs) + size_of::<u32>();

    /// Answers the `struct vfio_device_info` at `arg`: fails with `EINVAL` if its `argsz` is
    /// smaller than the fields it must hold, otherwise fills them in. No capabilities are
    /// reported, so `cap_offset` is left alone.
    pub fn write_to(&self, arg: UserPtr) -> Result<isize> {
        let (mut reader, mut writer) = UserSlice::new(arg, Self::MINSZ).reader_writer();
        let argsz: u32 = reader.read()?;
        if (argsz as usize) < Self::MINSZ {
            return Err(EINVAL);
        }
        for field in [argsz, self.flags, self.num_regions, self.num_irqs] {
            writer.write(&field)?;
        }
        Ok(0)
    }
}

/// The region `VFIO_DEVICE_GET_REGION_INFO` asks about, for the driver to describe.
///
/// The VFIO core has checked `argsz` and copies the answer and the capabilities back. The core's
/// copy of the user's struct holds whatever the user put in its other fields: they are cleared
/// before the driver sees them, and an answer the driver did not [`set`](Self::set) is refused.
///
/// # Invariants
///
/// `info` is the core's copy of the user's `struct vfio_region_info`. `described` is true iff
/// [`RegionInfo::set`] wrote its flags, size and offset.
pub struct RegionInfo<'a> {
    info: &'a mut bindings::vfio_region_info,
    described: bool,
}

impl<'a> RegionInfo<'a> {
    /// # Safety
    ///
    /// `info` must be valid and exclusively ours for `'a`.
    pub(super) unsafe fn from_raw(info: *mut bindings::vfio_region_info) -> Self {
        // SAFETY: By the safety requirements.
        let info = unsafe { &mut *info };
        info.flags = 0;
        info.cap_offset = 0;
        info.size = 0;
        info.offset = 0;
        // INVARIANT: Nothing is described yet.
        Self {
            info,
            described: false,
        }
    }

    /// The index of the region asked about.
    pub fn index(&self) -> u32 {
        self.info.index
    }

    /// Describes the region: where it is in the device file, its size, and its
    /// `VFIO_REGION_INFO_FLAG_*` flags.
    pub fn set(&mut self, offset: u64, size: u64, flags: u32) {
        self.info.offset = offset;
        self.info.size = size;
        self.info.flags = flags;
        self.described = true;
    }

    /// Fails with `EIO` if the driver answered without describing the region.
    pub(super) fn check_described(&self) -> Result {
        if self.described {
            Ok(())
        } else {
            pr_err!(
                "VFIO driver described region {} without setting it\n",
                self.index()
            );
            Err(EIO)
        }
    }
}

/// A part of a region that userspace may map, for [`RegionCaps::add_sparse_mmap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SparseMmapArea {
    /// Where the area starts, from the start of the region; page aligned.
    pub offset: u64,
    /// Its size in bytes; page aligned, and the area inside the region.
    pub size: u64,
}

/// The capability chain of a `VFIO_DEVICE_GET_REGION_INFO` answer.
///
/// # Invariants
///
/// `self.0` is the core's capability chain of the answer being built.
pub struct RegionCaps<'a>(*mut bindings::vfio_info_cap, PhantomData<&'a mut ()>);

impl<'a> RegionCaps<'a> {
    /// # Safety
    ///
    /// `caps` must be valid and exclusively ours for `'a`.
    pub(super) unsafe fn from_raw(caps: *mut bindings::vfio_info_cap) -> Self {
        // INVARIANT: By the safety requirements `caps` is the core's chain, ours for `'a`.
        Self(caps, PhantomData)
    }

    /// Adds a `VFIO_REGION_INFO_CAP_TYPE` capability: the region's device-specific type and
    /// subtype (e.g. type 3, subtype 1 for a v1 migration region).
    pub fn add_type(&mut self, ty: u32, subtype: u32) -> Result {
        let mut cap: bindings::vfio_region_info_cap_type = pin_init::zeroed();
        cap.header.id = bindings::VFIO_REGION_INFO_CAP_TYPE as u16;
        cap.header.version = 1;
        cap.type_ = ty;
        cap.subtype = subtype;
        // SAFETY: By the type invariant `self.0` is valid; the core copies `cap`, whose size is
        // given.
        to_result(unsafe {
            bindings::vfio_info_add_capability(self.0, &mut cap.header, size_of_val(&cap))
        })
    }

    /// Adds a `VFIO_REGION_INFO_CAP_SPARSE_MMAP` capability: of a region flagged
    /// `VFIO_REGION_INFO_FLAG_MMAP`, only `areas` may be mapped, and the rest is accessed through
    /// reads and writes.
    pub fn add_sparse_mmap(&mut self, areas: &[SparseMmapArea]) -> Result {
        type Cap = bindings::vfio_region_info_cap_sparse_mmap;
        type Area = bindings::vfio_region_sparse_mmap_area;

        let nr_areas = u32::try_from(areas.len()).map_err(|_| EINVAL)?;
        let size = size_of::<Area>()
            .checked_mul(areas.len())
            .and_then(|size| size.checked_add(size_of::<Cap>()))
            .ok_or(EINVAL)?;
        // SAFETY: By the type invariant `self.0` is valid. The core appends a zeroed capability
        // of at least `size` bytes, aligned to 8, with its header filled in.
        let header = from_err_ptr(unsafe {
            bindings::vfio_info_cap_add(
                self.0,
                size,
                bindings::VFIO_REGION_INFO_CAP_SPARSE_MMAP as u16,
                1,
            )
        })?;
        let cap = header.cast::<Cap>();
        // SAFETY: `cap` is aligned and valid for writes of `size` bytes: the fixed part and
        // `nr_areas` areas after it.
        unsafe {
            (*cap).nr_areas = nr_areas;
            let first = (&raw mut (*cap).areas).cast::<Area>();
            for (i, area) in areas.iter().enumerate() {
                first.add(i).write(Area {
                    offset: area.offset,
                    size: area.size,
                });
            }
        }
        Ok(())
    }
}
