// SPDX-License-Identifier: GPL-2.0

//! The C callbacks in a VFIO device's ops tables: each finds the device's data, calls the
//! [`DeviceOps`] or [`Migration`] op the request is for, and logs what the op refused.

use super::{
    ioctl,
    irq::{
        IrqQuery,
        IrqSetHeader, //
    },
    migration::{
        self,
        Migration, //
    },
    release_device,
    request::Request,
    DeviceOps,
    IrqInfo,
    IrqSet,
    RawDevice,
    Refusal,
    RegionCaps,
    RegionInfo, //
};
use crate::{
    bindings,
    error::from_result,
    mm::virt::VmaNew,
    page::PAGE_SHIFT,
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

impl<T: DeviceOps> RawDevice<T> {
    /// The ops the VFIO core calls for a device of `T`.
    pub(super) const VTABLE: bindings::vfio_device_ops = bindings::vfio_device_ops {
        name: crate::str::as_char_ptr_in_const_context(T::NAME).cast_mut(),
        release: Some(release_device),
        // With IOMMUFD, registration requires these; the emulated ones track the iommufd
        // context for the device's DMA through `vfio_pin_pages()`/`vfio_dma_rw()`.
        #[cfg(CONFIG_IOMMUFD)]
        bind_iommufd: Some(bindings::vfio_iommufd_emulated_bind),
        #[cfg(CONFIG_IOMMUFD)]
        unbind_iommufd: Some(bindings::vfio_iommufd_emulated_unbind),
        #[cfg(CONFIG_IOMMUFD)]
        attach_ioas: Some(bindings::vfio_iommufd_emulated_attach_ioas),
        #[cfg(CONFIG_IOMMUFD)]
        detach_ioas: Some(bindings::vfio_iommufd_emulated_detach_ioas),
        open_device: Some(Self::open_callback),
        close_device: Some(Self::close_callback),
        read: if T::HAS_READ {
            Some(Self::read_callback)
        } else {
            None
        },
        write: if T::HAS_WRITE {
            Some(Self::write_callback)
        } else {
            None
        },
        mmap: if T::HAS_MMAP {
            Some(Self::mmap_callback)
        } else {
            None
        },
        ioctl: Some(Self::ioctl_callback),
        get_region_info_caps: if T::HAS_REGION_INFO {
            Some(Self::region_info_callback)
        } else {
            None
        },
        request: Some(Self::request_callback),
        ..pin_init::zeroed()
    };

    extern "C" fn open_callback(vdev: *mut bindings::vfio_device) -> c_int {
        // SAFETY: The core only opens registered devices.
        let raw = unsafe { Self::from_vdev(vdev) };
        from_result(|| {
            raw.data()
                .open()
                .map_err(|e| raw.refuse(Request::Open, e))?;
            if let Some(open) = &raw.head.open {
                // SAFETY: The open callback of `vdev`, whose driver's open succeeded.
                unsafe { open.set(vdev) };
            }
            Ok(0)
        })
    }

    extern "C" fn close_callback(vdev: *mut bindings::vfio_device) {
        // SAFETY: The core only closes opened devices.
        let raw = unsafe { Self::from_vdev(vdev) };
        if let Some(open) = &raw.head.open {
            // SAFETY: The close callback of `vdev`, before its driver's close.
            unsafe { open.set(core::ptr::null_mut()) };
        }
        raw.data().close();
    }

    extern "C" fn read_callback(
        vdev: *mut bindings::vfio_device,
        buf: *mut c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: The core only reads from open devices, passing a valid position.
        let (raw, pos) = unsafe { (Self::from_vdev(vdev), *ppos) };
        let mut writer = UserSlice::new(UserPtr::from_ptr(buf.cast()), count).writer();
        from_result(|| {
            let done = u64::try_from(pos)
                .map_err(|_| Refusal::from(EINVAL))
                .and_then(|offset| raw.data().read(&mut writer, offset))
                .and_then(|done| at_most(done, count))
                .map_err(|e| raw.refuse(Request::Read { len: count, pos }, e))?;
            isize::try_from(done).map_err(|_| EINVAL)
        })
    }

    extern "C" fn write_callback(
        vdev: *mut bindings::vfio_device,
        buf: *const c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: The core only writes to open devices, passing a valid position.
        let (raw, pos) = unsafe { (Self::from_vdev(vdev), *ppos) };
        let mut reader = UserSlice::new(UserPtr::from_ptr(buf.cast_mut().cast()), count).reader();
        from_result(|| {
            let done = u64::try_from(pos)
                .map_err(|_| Refusal::from(EINVAL))
                .and_then(|offset| raw.data().write(&mut reader, offset))
                .and_then(|done| at_most(done, count))
                .map_err(|e| raw.refuse(Request::Write { len: count, pos }, e))?;
            isize::try_from(done).map_err(|_| EINVAL)
        })
    }

    extern "C" fn mmap_callback(
        vdev: *mut bindings::vfio_device,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: The core only maps open devices, from the `mmap()` of their file, with the vma
        // being set up.
        let (raw, vma) = unsafe { (Self::from_vdev(vdev), VmaNew::from_raw(vma)) };
        // CAST: A usize fits in a u64.
        let pgoff = vma.pgoff() as u64;
        let len = vma.end() - vma.start();
        from_result(|| {
            pgoff
                .checked_mul(1 << PAGE_SHIFT)
                .ok_or(Refusal::from(EINVAL))
                .and_then(|offset| raw.data().mmap(vma, offset))
                .map_err(|e| raw.refuse(Request::Mmap { len, pgoff }, e))?;
            Ok(0)
        })
    }

    extern "C" fn ioctl_callback(
        vdev: *mut bindings::vfio_device,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_long {
        const {
            // The requests are checked against the driver's description of the index.
            assert!(T::HAS_IRQ_INFO == T::HAS_SET_IRQS);
        }

        // SAFETY: The core only passes ioctls of open devices.
        let raw = unsafe { Self::from_vdev(vdev) };
        // `arg` is a user address, by the definition of the ioctls the core passes on.
        let arg = UserPtr::from_addr(arg);
        from_result(|| raw.ioctl(cmd, arg))
    }

    /// Handles ioctl `cmd`, logging a refusal with as much of the request as was read.
    fn ioctl(&self, cmd: u32, arg: UserPtr) -> Result<isize> {
        let data = self.data();
        match cmd {
            ioctl::DEVICE_GET_IRQ_INFO if T::HAS_IRQ_INFO => {
                let query =
                    IrqQuery::read_from(arg).map_err(|e| self.refuse(Request::Ioctl(cmd), e))?;
                IrqInfo::answer(data, query, arg)
                    .map_err(|e| self.refuse(Request::IrqInfo(query.index), e))
            }
            ioctl::DEVICE_SET_IRQS if T::HAS_IRQ_INFO => {
                let header = IrqSetHeader::read_from(arg)
                    .map_err(|e| self.refuse(Request::Ioctl(cmd), e))?;
                IrqSet::read_from(data, header, arg)
                    .and_then(|irqs| data.set_irqs(irqs))
                    .map(|()| 0)
                    .map_err(|e| self.refuse(Request::SetIrqs(header), e))
            }
            _ => data
                .ioctl(cmd, arg)
                .map_err(|e| self.refuse(Request::Ioctl(cmd), e)),
        }
    }

    extern "C" fn region_info_callback(
        vdev: *mut bindings::vfio_device,
        info: *mut bindings::vfio_region_info,
        caps: *mut bindings::vfio_info_cap,
    ) -> c_int {
        // SAFETY: The core only asks open devices, with its copy of the user's region info and
        // its capability chain, both valid for the call.
        let (raw, mut info, mut caps) = unsafe {
            (
                Self::from_vdev(vdev),
                RegionInfo::from_raw(info),
                RegionCaps::from_raw(caps),
            )
        };
        let index = info.index();
        from_result(|| {
            raw.data()
                .region_info(&mut info, &mut caps)
                .and_then(|()| Ok(info.check_described()?))
                .map_err(|e| raw.refuse(Request::RegionInfo(index), e))?;
            Ok(0)
        })
    }

    extern "C" fn request_callback(vdev: *mut bindings::vfio_device, count: c_uint) {
        // SAFETY: The core only sends requests for registered devices.
        unsafe { Self::from_vdev(vdev) }.data().request(count);
    }
}

impl<T: Migration> RawDevice<T> {
    /// The migration ops the VFIO core calls for a device of `T`.
    pub(super) const MIGRATION_VTABLE: bindings::vfio_migration_ops =
        bindings::vfio_migration_ops {
            migration_set_state: Some(Self::set_state_callback),
            migration_get_state: Some(Self::get_state_callback),
            migration_get_data_size: Some(Self::data_size_callback),
        };

    extern "C" fn set_state_callback(
        vdev: *mut bindings::vfio_device,
        new: bindings::vfio_device_mig_state,
    ) -> *mut bindings::file {
        // SAFETY: The core only passes requests of open devices.
        let raw = unsafe { Self::from_vdev(vdev) };
        // SAFETY: `vdev` has migration ops and is open for the call.
        let transition = unsafe { migration::Transition::new(vdev) };
        let result = migration::State::from_raw(new)
            .ok_or(Refusal::from(EINVAL))
            .and_then(|new| raw.data().set_state(&transition, new));
        match result {
            Ok(Some(file)) => file.into_raw(),
            Ok(None) => core::ptr::null_mut(),
            Err(e) => raw.refuse(Request::SetMigrationState(new), e).to_ptr(),
        }
    }

    extern "C" fn get_state_callback(
        vdev: *mut bindings::vfio_device,
        state: *mut bindings::vfio_device_mig_state,
    ) -> c_int {
        // SAFETY: The core only passes requests of open devices.
        let raw = unsafe { Self::from_vdev(vdev) };
        from_result(|| {
            let current = raw
                .data()
                .state()
                .map_err(|e| raw.refuse(Request::GetMigrationState, e))?;
            // SAFETY: The core passes a valid place for the state.
            unsafe { *state = current as u32 };
            Ok(0)
        })
    }

    extern "C" fn data_size_callback(
        vdev: *mut bindings::vfio_device,
        size: *mut c_ulong,
    ) -> c_int {
        // SAFETY: The core only passes requests of open devices.
        let raw = unsafe { Self::from_vdev(vdev) };
        from_result(|| {
            let bytes = raw
                .data()
                .data_size()
                .map_err(|e| raw.refuse(Request::MigrationDataSize, e))?;
            // SAFETY: The core passes a valid place for the size.
            unsafe { *size = bytes as c_ulong };
            Ok(0)
        })
    }
}

/// Checks a driver's claim to have read or written `done` bytes of the `count` asked for: more
/// than that is a driver bug, which userspace sees as `EIO` instead of a count past its buffer.
fn at_most(done: usize, count: usize) -> Result<usize, Refusal> {
    if done > count {
        pr_err!("VFIO driver claimed {done} bytes of a {count}-byte access\n");
        return Err(Refusal::logged(EIO));
    }
    Ok(done)
}
