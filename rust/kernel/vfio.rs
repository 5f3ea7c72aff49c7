// SPDX-License-Identifier: GPL-2.0

//! VFIO devices.
//!
//! A VFIO device gives userspace access to a device through a file descriptor: region reads and
//! writes, ioctls, interrupts. This module covers devices that the kernel emulates, like
//! mediated devices: they do no DMA of their own that userspace could trigger unmediated, so they
//! are registered with an emulated IOMMU and work with both front doors, the group/container
//! (`/dev/vfio/<group>`) and the iommufd character device (`/dev/vfio/devices/vfioN`).
//!
//! A driver implements [`DeviceOps`] on the data of its device and creates a [`Registration`],
//! which allocates the `struct vfio_device` with the data inside and registers it; dropping the
//! registration unregisters the device, waiting for userspace to close it.
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h)

use crate::{
    bindings, device,
    error::{
        from_err_ptr,
        to_result,
        VTABLE_DEFAULT_ERROR, //
    },
    mm::virt::VmaNew,
    prelude::*,
    ratelimit::RateLimit,
    sync::{
        aref::ARef,
        Arc,
        Completion, //
    },
    types::Opaque,
    uaccess::{
        UserPtr,
        UserSliceReader,
        UserSliceWriter, //
    },
};
use core::{
    mem::MaybeUninit,
    ptr::NonNull, //
};

mod callbacks;
mod info;
mod irq;
mod mappable;
pub mod migration;
mod request;

pub use info::{
    DeviceInfo,
    RegionCaps,
    RegionInfo,
    SparseMmapArea, //
};
pub use irq::{
    IrqAction,
    IrqData,
    IrqInfo,
    IrqSet, //
};
pub use mappable::MappableBuffer;
use migration::{
    Features,
    Migration, //
};
pub use request::Refusal;
use request::Request;

/// The ops of a VFIO device, implemented by the type of its data.
///
/// Callbacks run concurrently, from any userspace thread holding the device open; the data is
/// shared (`&self`), so its mutable state needs locks. Optional ops a driver does not implement
/// are not in the table the VFIO core sees, so it answers for them as it does for C drivers.
///
/// An error a callback returns reaches userspace, and the device logs it, rate limited, with
/// what userspace asked: drivers need not log their refusals. A driver that logs a reason of its
/// own returns [`Refusal::logged`], so that a refusal is one line in the log.
///
/// # Examples
///
/// A device with one region of 64 bytes of zeros, which a parent driver registers when it
/// binds:
///
/// ```
/// use kernel::{device, prelude::*, uaccess::UserSliceWriter, vfio};
///
/// struct Zeros;
///
/// #[vtable]
/// impl vfio::DeviceOps for Zeros {
///     const NAME: &'static CStr = c"zeros";
///
///     fn read(&self, buf: &mut UserSliceWriter, pos: u64) -> Result<usize, vfio::Refusal> {
///         let (index, offset) = vfio::region::split(pos);
///         let len = buf.len();
///         let end = usize::try_from(offset).ok().and_then(|o| o.checked_add(len));
///         let end = end.ok_or(EINVAL)?;
///         if index != 0 || end > 64 {
///             return Err(EINVAL.into());
///         }
///         buf.write_slice(&[0; 64][..len])?;
///         Ok(len)
///     }
/// }
///
/// fn bind(parent: &device::Device<device::Bound>) -> Result<vfio::Registration<Zeros>> {
///     vfio::Registration::new(parent, Ok::<_, Error>(Zeros))
/// }
/// ```
#[vtable]
pub trait DeviceOps: Send + Sync + Sized + 'static {
    /// The name of the device's ops, for diagnostics.
    const NAME: &'static CStr;

    /// Called when the first file descriptor of the device is opened.
    fn open(&self) -> Result<(), Refusal> {
        Ok(())
    }

    /// Called when the last file descriptor of the device is closed.
    fn close(&self) {}

    /// Reads from the device's regions at `offset` (the driver's encoding of region and offset)
    /// into `buf`; returns the number of bytes read.
    fn read(&self, buf: &mut UserSliceWriter, offset: u64) -> Result<usize, Refusal> {
        let _ = (buf, offset);
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Writes `buf` to the device's regions at `offset`; returns the number of bytes written.
    fn write(&self, buf: &mut UserSliceReader, offset: u64) -> Result<usize, Refusal> {
        let _ = (buf, offset);
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Sets up `vma`, a new mapping of the device at `offset` (the driver's encoding of region and
    /// offset, as for [`DeviceOps::read`]), typically with [`MappableBuffer::map`]. Without this op
    /// the core refuses every `mmap()` of the device.
    fn mmap(&self, vma: &VmaNew, offset: u64) -> Result<(), Refusal> {
        let _ = (vma, offset);
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Handles the device ioctls the VFIO core passes on (`VFIO_DEVICE_GET_INFO`,
    /// `VFIO_DEVICE_RESET`, ...); `arg` is the ioctl's argument. Unknown commands should fail
    /// with `ENOTTY`.
    ///
    /// `VFIO_DEVICE_GET_IRQ_INFO` and `VFIO_DEVICE_SET_IRQS` only come here if the driver does
    /// not implement [`DeviceOps::irq_info`] and [`DeviceOps::set_irqs`], which go together.
    fn ioctl(&self, cmd: u32, arg: UserPtr) -> Result<isize, Refusal> {
        let _ = (cmd, arg);
        Err(ENOTTY.into())
    }

    /// Describes interrupt index `index` for `VFIO_DEVICE_GET_IRQ_INFO`; an index the device
    /// does not have fails with `EINVAL`. `VFIO_DEVICE_SET_IRQS` requests are checked against
    /// this before they reach [`DeviceOps::set_irqs`]; it is called without any lock of the
    /// driver held, so a driver whose vector counts change must check again there.
    fn irq_info(&self, index: u32) -> Result<IrqInfo, Refusal> {
        let _ = index;
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Applies a `VFIO_DEVICE_SET_IRQS` request, which names vectors [`DeviceOps::irq_info`]
    /// describes and an action and data their flags allow, with valid eventfds. A request that
    /// does not fit the device's state (triggering vectors that are not set up, say) should
    /// fail with `EINVAL` and change nothing. Goes together with [`DeviceOps::irq_info`].
    fn set_irqs(&self, irqs: IrqSet) -> Result<(), Refusal> {
        let _ = irqs;
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Describes region `info.index()` for `VFIO_DEVICE_GET_REGION_INFO`, adding capabilities
    /// to `caps`; an index the device does not have fails with `EINVAL`.
    fn region_info(
        &self,
        info: &mut RegionInfo<'_>,
        caps: &mut RegionCaps<'_>,
    ) -> Result<(), Refusal> {
        let _ = (info, caps);
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Called while the device is being unregistered and userspace still holds it open, to ask
    /// userspace to release it; `count` counts the requests so far.
    fn request(&self, count: u32) {
        let _ = count;
    }
}

/// The part of a device's allocation that does not depend on the driver's data type.
///
/// The device's final release runs through [`release_device`], which only knows this part. That
/// function is not generic, so it is compiled into the kernel image and not into the driver's
/// module: the module may be unloaded as soon as the release has dropped the driver's data and
/// signalled [`DeviceHead::released`], while the VFIO core still finishes its own release.
///
/// # Invariants
///
/// `drop_data` is `Some` if and only if the data after this head is initialized, and then drops
/// it. `released` points to the [`Completion`] of the device's [`Registration`], or its
/// `Registration::new` while it runs; it outlives the device's release. `open` is `Some` for a
/// device with migration ops, from before its registration to its release.
#[repr(C)]
struct DeviceHead {
    vdev: Opaque<bindings::vfio_device>,
    refusals: MaybeUninit<RateLimit>,
    drop_data: Option<unsafe fn(*mut bindings::vfio_device)>,
    released: *const Completion,
    open: Option<Arc<migration::OpenDevice>>,
}

/// The open state of `vdev`, if it has migration ops.
///
/// # Safety
///
/// `vdev` must be a registered device of a [`Registration`].
unsafe fn open_device_of(vdev: *mut bindings::vfio_device) -> Option<Arc<migration::OpenDevice>> {
    // CAST: `vdev` is the first field of the `repr(C)` `DeviceHead` that starts the allocation.
    let head = vdev.cast::<DeviceHead>();
    // SAFETY: By the safety requirements the head is live; `open` is not written until the
    // release.
    unsafe { (*head).open.clone() }
}

/// The allocation the VFIO core makes for a device: the `struct vfio_device` first, as the core
/// requires, then the rest of the [`DeviceHead`] and the driver's data.
///
/// # Invariants
///
/// `data` is initialized if and only if `head.drop_data` is `Some`. A `&RawDevice<T>` only exists
/// while its [`Registration`] does: `head.refusals` and `data` are initialized, and the
/// registration holds a reference to the device's parent.
#[repr(C)]
struct RawDevice<T> {
    head: DeviceHead,
    data: MaybeUninit<T>,
}

/// The device's `release` op: drops the driver's data and tells the device's registration that the
/// release is done.
///
/// Not generic and never inlined into another crate, so the code that runs after the driver's data
/// is dropped is in the kernel image: the registration waits for this before the driver may go.
#[inline(never)]
extern "C" fn release_device(vdev: *mut bindings::vfio_device) {
    // CAST: `vdev` is the first field of the `repr(C)` `DeviceHead` that starts the allocation.
    let head = vdev.cast::<DeviceHead>();
    // SAFETY: The core calls release once, when the last reference is gone, and frees the
    // allocation after it returns. By the type invariant `drop_data` drops the data iff it is
    // initialized, and `released` points to a live completion.
    unsafe {
        if let Some(drop_data) = (*head).drop_data {
            drop_data(vdev);
        }
        drop(core::ptr::replace(&raw mut (*head).open, None));
        (*(*head).released).complete_all();
    }
}

impl<T: DeviceOps> RawDevice<T> {
    /// Returns the device of `vdev`.
    ///
    /// # Safety
    ///
    /// `vdev` must be the device of a live [`Registration<T>`], and `'a` must not outlive the
    /// registration. The core's callbacks other than `release` qualify: it calls them between
    /// registration and the return of `vfio_unregister_group_dev()`, which [`Registration`]'s
    /// `drop` waits for.
    unsafe fn from_vdev<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
        // CAST: `vdev` is the first field of the `repr(C)` `RawDevice<T>` the core allocated.
        // INVARIANT: By the safety requirements the registration, and so the device, is live.
        // SAFETY: By the safety requirements the allocation is live; every field is valid for
        // what the core and `Registration::new` wrote there.
        unsafe { &*vdev.cast::<Self>() }
    }

    /// Returns the driver's data.
    fn data(&self) -> &T {
        // SAFETY: By the type invariant the registration is live, so the data is initialized; it
        // is only dropped by `release_device`, after the registration is gone.
        unsafe { self.data.assume_init_ref() }
    }

    /// Logs that the device refused `request` with `refusal`, unless the driver has logged it or
    /// the device's refusals are over their rate limit; returns the error userspace sees.
    ///
    /// Userspace can repeat bad requests at will, so their log lines are rate limited.
    fn refuse(&self, request: Request, refusal: impl Into<Refusal>) -> Error {
        let refusal = refusal.into();
        let err = refusal.error();
        // SAFETY: By the type invariant the registration is live, so `refusals` is initialized.
        let refusals = unsafe { self.head.refusals.assume_init_ref() };
        if !refusal.is_logged() && refusals.allow() {
            // SAFETY: `dev` is the parent the device was allocated with, which the live
            // registration holds a reference to (by the type invariant).
            let dev: &device::Device =
                unsafe { device::Device::from_raw((*self.head.vdev.get()).dev) };
            dev_warn!(dev, "{request} refused: {err:?}\n");
        }
        err
    }

    /// Drops the data of the device `vdev`, for [`release_device`].
    ///
    /// # Safety
    ///
    /// `vdev` must be the device of a `RawDevice<T>` with initialized data that nothing uses any
    /// more; the data must not be used after this.
    unsafe fn drop_data(vdev: *mut bindings::vfio_device) {
        // CAST: `vdev` starts the `repr(C)` `RawDevice<T>`.
        let raw = vdev.cast::<Self>();
        // SAFETY: By the safety requirements the data is initialized and unused.
        unsafe { (*raw).data.assume_init_drop() };
    }
}

/// A registered VFIO device with an emulated IOMMU, whose data is a `T`.
///
/// Dropping the registration unregisters the device and returns once the device is gone: when
/// userspace has closed it and the data has been dropped, so that whatever the data holds is back
/// and the driver's module may be unloaded.
///
/// # Examples
///
/// [`DeviceOps`]'s example registers a device when its parent driver binds.
///
/// # Invariants
///
/// `raw` is a `RawDevice<T>` allocated by `_vfio_alloc_device()` with initialized data and rate
/// limit, registered with `vfio_register_emulated_iommu_dev()`, and this registration holds the
/// reference of its allocation. `released` is the completion its head points to. `_parent` is the
/// device's parent.
pub struct Registration<T: DeviceOps> {
    raw: NonNull<RawDevice<T>>,
    released: Pin<KBox<Completion>>,
    // Unregistration drops the core's reference to the parent before it waits for userspace to
    // close the device, and callbacks meanwhile may log through the parent. Fields drop after
    // `drop()` returns, so this reference outlives every callback.
    _parent: ARef<device::Device>,
}

// SAFETY: The registration only gives `&T` (`T: Sync`) and may be dropped on any thread: the VFIO
// core's unregistration and reference counting are thread safe, and so is its completion.
unsafe impl<T: DeviceOps> Send for Registration<T> {}

// SAFETY: `&Registration` only gives `&T`, and `T: Sync`.
unsafe impl<T: DeviceOps> Sync for Registration<T> {}

impl<T: DeviceOps> Registration<T> {
    /// Creates and registers a VFIO device of `parent` whose data is `data`.
    ///
    /// The registration keeps a reference to `parent` until the device is unregistered.
    pub fn new(
        parent: &device::Device<device::Bound>,
        data: impl PinInit<T, Error>,
    ) -> Result<Self> {
        Self::register(parent, data, None)
    }

    /// Creates and registers a VFIO device of `parent` whose data is `data`, with `features`
    /// and the ops of `ops` set (the device's migration) before it is registered.
    fn register(
        parent: &device::Device<device::Bound>,
        data: impl PinInit<T, Error>,
        migration: Option<(u32, &'static bindings::vfio_migration_ops)>,
    ) -> Result<Self> {
        const {
            // `kvzalloc()` aligns its allocations to at least 8 bytes.
            assert!(core::mem::align_of::<RawDevice<T>>() <= 8);
        }

        let released = KBox::pin_init(Completion::new(), GFP_KERNEL)?;
        // SAFETY: The size covers a `RawDevice<T>`, whose first field is the `struct vfio_device`;
        // the ops table is static; `parent` is a valid device.
        let vdev = from_err_ptr(unsafe {
            bindings::_vfio_alloc_device(
                core::mem::size_of::<RawDevice<T>>(),
                parent.as_raw(),
                &RawDevice::<T>::VTABLE,
            )
        })?;
        let raw = NonNull::new(vdev.cast::<RawDevice<T>>()).ok_or(ENOMEM)?;
        // SAFETY: The allocation is zeroed (`drop_data` is `None`) and not yet shared. `released`
        // lives until the device's release: this function drops it on error only after `put`
        // below has waited for the release, and the registration's `drop` waits for it too.
        unsafe { (*raw.as_ptr()).head.released = &raw const *released };
        let released_ref = &released;
        let put = move || {
            // SAFETY: `vdev` was allocated above and is not registered, so ours is the last
            // reference: this releases the device, dropping the data only if it was initialized.
            unsafe { bindings::vfio_put_device(vdev) };
            // The release may run later than the put (`CONFIG_DEBUG_KOBJECT_RELEASE` delays it),
            // and it completes `released`.
            released_ref.wait_for_completion();
        };

        if let Some((features, ops)) = migration {
            let open = match Arc::pin_init(migration::OpenDevice::new(), GFP_KERNEL) {
                Ok(open) => open,
                Err(e) => {
                    put();
                    return Err(e);
                }
            };
            // SAFETY: Not registered yet, so the core reads none of them; the ops table is
            // static. The head's `open` is zeroed, `None`, so nothing is leaked.
            unsafe {
                (*vdev).migration_flags = features;
                (*vdev).mig_ops = ops;
                (&raw mut (*raw.as_ptr()).head.open).write(Some(open));
            }
        }
        // SAFETY: The allocation is not yet shared; the slot is valid for writes and never
        // moves, since the core owns the allocation.
        let refusals = unsafe { (&raw mut (*raw.as_ptr()).head.refusals).cast::<RateLimit>() };
        // SAFETY: `refusals` is valid for writes and pinned.
        if let Err(never) = unsafe { RateLimit::new(T::NAME).__pinned_init(refusals) } {
            match never {}
        }
        // SAFETY: The allocation is not yet shared; the data slot is valid for writes and never
        // moves, since the core owns the allocation.
        let slot = unsafe { (&raw mut (*raw.as_ptr()).data).cast::<T>() };
        // SAFETY: `slot` is valid for writes and pinned; on error nothing was initialized.
        if let Err(e) = unsafe { data.__pinned_init(slot) } {
            put();
            return Err(e);
        }
        // SAFETY: As above; the data is initialized now, and `drop_data` drops it.
        unsafe { (*raw.as_ptr()).head.drop_data = Some(RawDevice::<T>::drop_data) };

        // SAFETY: `vdev` is an initialized device with emulated-IOMMU-capable ops.
        if let Err(e) = to_result(unsafe { bindings::vfio_register_emulated_iommu_dev(vdev) }) {
            put();
            return Err(e);
        }

        // INVARIANT: Allocated, initialized and registered above, with `parent` as the parent
        // and `released` as the completion of the head.
        Ok(Self {
            raw,
            released,
            _parent: parent.into(),
        })
    }

    /// Creates and registers a VFIO device of `parent` whose data is `data` and which can be
    /// migrated: the VFIO core passes the requests of the v2 migration protocol to its
    /// [`Migration`] ops.
    pub fn new_migratable(
        parent: &device::Device<device::Bound>,
        data: impl PinInit<T, Error>,
    ) -> Result<Self>
    where
        T: Migration,
    {
        const {
            let features = T::FEATURES.bits();
            assert!(features & Features::STOP_COPY.bits() != 0);
        }
        Self::register(
            parent,
            data,
            Some((T::FEATURES.bits(), &RawDevice::<T>::MIGRATION_VTABLE)),
        )
    }

    /// The device's data.
    pub fn data(&self) -> &T {
        // SAFETY: `self` is the device's live registration, and the result borrows from it.
        unsafe { RawDevice::<T>::from_vdev(self.raw.as_ptr().cast()) }.data()
    }
}

impl<T: DeviceOps> Drop for Registration<T> {
    fn drop(&mut self) {
        let vdev = self.raw.as_ptr().cast::<bindings::vfio_device>();
        // SAFETY: By the type invariant `vdev` is registered. Unregistering waits until userspace
        // has closed the device (sending requests meanwhile); then we drop our reference.
        unsafe {
            bindings::vfio_unregister_group_dev(vdev);
            bindings::vfio_put_device(vdev);
        }
        // The unregistration returns once userspace is done with the device, including the VFS's
        // close of a file opened through the character device (tools/kernel/patches/0007), so
        // the release is not left to the VFS. A reference taken elsewhere (or
        // `CONFIG_DEBUG_KOBJECT_RELEASE`) makes it run later: say so once, and wait for it,
        // since until it ran the data, and whatever it holds, is not back, and it must not run
        // after the driver's module is gone.
        if !self.released.is_done() {
            crate::pr_warn_once!(
                "vfio: a device's release runs after its unregistration returned\n"
            );
        }
        self.released.wait_for_completion();
    }
}

/// Numbers of the device ioctls the VFIO core passes to drivers.
pub mod ioctl {
    use crate::{ioctl::_IO, uapi};

    const fn nr(n: u32) -> u32 {
        _IO(uapi::VFIO_TYPE as u32, uapi::VFIO_BASE + n)
    }

    /// `VFIO_DEVICE_GET_INFO`.
    pub const DEVICE_GET_INFO: u32 = nr(7);
    /// `VFIO_DEVICE_GET_IRQ_INFO`.
    pub const DEVICE_GET_IRQ_INFO: u32 = nr(9);
    /// `VFIO_DEVICE_SET_IRQS`.
    pub const DEVICE_SET_IRQS: u32 = nr(10);
    /// `VFIO_DEVICE_RESET`.
    pub const DEVICE_RESET: u32 = nr(11);
}

/// Where a device's regions are in its file, by the convention of vfio-pci and vfio-platform:
/// region `index` starts at `index << 40`.
///
/// # Examples
///
/// ```
/// use kernel::vfio::region;
///
/// let pos = region::offset(2) + 0x10;
/// assert_eq!(pos, 0x200_0000_0010);
/// assert_eq!(region::split(pos), (2, 0x10));
/// ```
pub mod region {
    const SHIFT: u32 = 40;

    /// The file offset of region `index`.
    pub const fn offset(index: u32) -> u64 {
        (index as u64) << SHIFT
    }

    /// The region and the offset in it of file offset `pos`.
    pub const fn split(pos: u64) -> (u64, u64) {
        (pos >> SHIFT, pos & ((1 << SHIFT) - 1))
    }
}
