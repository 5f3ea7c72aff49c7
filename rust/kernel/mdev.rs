// SPDX-License-Identifier: GPL-2.0

//! Mediated devices (mdev).
//!
//! A mediated device is a device that a parent driver creates on request from userspace, out of
//! resources the parent shares among all its mediated devices. The parent advertises *types*
//! under `/sys/class/mdev_bus/<parent>/mdev_supported_types/`; writing a UUID to a type's
//! `create` attribute creates a device of that type on the mdev bus and binds it to the parent's
//! [`Driver`].
//!
//! A parent driver in Rust consists of:
//!
//! - a type implementing [`Driver`]: the parent's shared state (e.g. a resource pool) and the
//!   callbacks the mdev core and sysfs invoke on it;
//! - a [`driver::Registration`] of [`Adapter<T>`], the `struct mdev_driver` the devices bind to;
//! - a [`Parent`], which registers a device as the parent of the driver's types, owns the
//!   driver's state and keeps the driver registration alive for as long as it is registered.
//!
//! # Examples
//!
//! A parent of types it learns when it registers, each with a count of the devices that may still
//! be created, which a device borrows while it is bound:
//!
//! ```
//! use kernel::{
//!     driver,
//!     mdev::{self, Parent, ParentDevice, Type, TypeInfo},
//!     prelude::*,
//!     str::CString,
//!     sync::{
//!         atomic::{Atomic, Relaxed},
//!         Arc,
//!     },
//!     ThisModule,
//! };
//!
//! /// A type: how many more devices of it may be created.
//! struct Slots(Atomic<u32>);
//!
//! struct Sample;
//!
//! #[vtable]
//! impl mdev::Driver for Sample {
//!     type TypeData = Slots;
//!     type Data<'bound> = &'bound Slots;
//!     type DeviceAttr = ();
//!     type TypeAttr = ();
//!
//!     const DEVICE_API: &'static CStr = c"vfio-platform";
//!
//!     fn probe<'bound>(
//!         &'bound self,
//!         _dev: &'bound mdev::Device<kernel::device::Core<'_>>,
//!         mtype: &'bound Type<Self>,
//!     ) -> impl PinInit<&'bound Slots, Error> + 'bound {
//!         let slots = mtype.info().data();
//!         let mut free = slots.0.load(Relaxed);
//!         loop {
//!             if free == 0 {
//!                 return Err(ENOSPC);
//!             }
//!             match slots.0.cmpxchg(free, free - 1, Relaxed) {
//!                 Ok(_) => return Ok(slots),
//!                 Err(now) => free = now,
//!             }
//!         }
//!     }
//!
//!     fn unbind<'bound>(
//!         &'bound self,
//!         _dev: &'bound mdev::Device<kernel::device::Core<'_>>,
//!         slots: Pin<&&'bound Slots>,
//!     ) {
//!         slots.0.fetch_add(1, Relaxed);
//!     }
//!
//!     fn available_instances(&self, mtype: &Type<Self>) -> u32 {
//!         mtype.info().data().0.load(Relaxed)
//!     }
//! }
//!
//! fn register(module: &'static ThisModule) -> Result<Pin<KBox<Parent<Sample>>>> {
//!     let driver = Arc::pin_init(driver::Registration::new(c"mdev_sample", module), GFP_KERNEL)?;
//!     let mut types = KVec::new();
//!     for kib in [4, 8] {
//!         let name = CString::try_from_fmt(fmt!("{kib}k"))?;
//!         let pretty_name = CString::try_from_fmt(fmt!("sample, {kib} KiB"))?;
//!         types.push(TypeInfo::new(name, pretty_name, Slots(Atomic::new(2))), GFP_KERNEL)?;
//!     }
//!     // The types are `mdev_sample-4k` and `mdev_sample-8k`, under
//!     // `/sys/class/mdev_bus/mdev_sample/mdev_supported_types/`, until the parent is dropped.
//!     let dev = ParentDevice::new(c"mdev_sample")?;
//!     KBox::pin_init(Parent::new(dev, driver, types, Ok::<_, Error>(Sample)), GFP_KERNEL)
//! }
//!
//! # // SAFETY: Doctests are built into the kernel image, whose `THIS_MODULE` is NULL.
//! # static MODULE: ThisModule = unsafe { ThisModule::from_ptr(core::ptr::null_mut()) };
//! let parent = register(&MODULE)?;
//! assert_eq!(parent.device().as_ref().name(), c"mdev_sample");
//! drop(parent);
//! // Everything went with it: the same names register again.
//! drop(register(&MODULE)?);
//! # Ok::<(), Error>(())
//! ```
//!
//! C header: [`include/linux/mdev.h`](srctree/include/linux/mdev.h)

use crate::{
    bindings,
    device,
    driver,
    error::{
        from_result,
        to_result,
        VTABLE_DEFAULT_ERROR, //
    },
    prelude::*,
    str::Formatter,
    types::Opaque,
    ThisModule, //
};
use core::{
    marker::PhantomData,
    mem::offset_of, //
};

mod attr;
mod parent;

pub use crate::sysfs::{
    Attribute,
    AttributeGroup,
    MAX_ATTRIBUTE_GROUPS, //
};
pub use parent::{
    Parent,
    ParentDevice,
    Type,
    TypeInfo, //
};

use attr::{
    DeviceAttributeTable,
    TypeAttributeTable, //
};
use parent::ParentCore;

/// The parent driver of mediated devices.
///
/// The type implementing this trait is the parent's shared state: every callback receives it as
/// `&self`. It is owned by the [`Parent`] registration, and all callbacks run while that is
/// registered, concurrently with each other.
///
/// Attributes the driver adds to its devices ([`Driver::DEVICE_ATTRIBUTE_GROUPS`]) and to its
/// types ([`Driver::TYPE_ATTRIBUTE_GROUPS`]) are named by values of the driver's own identifier
/// types, which the show and store callbacks receive.
///
/// # Examples
///
/// The [module's example](self) implements it for a parent with run-time types.
#[vtable]
pub trait Driver: Send + Sync + Sized + 'static {
    /// The driver's information about one of its types, e.g. the resources a device needs.
    type TypeData: Send + Sync + 'static;

    /// The driver's private data of one device, created by [`Driver::probe`] and dropped after
    /// the device is unbound.
    ///
    /// It may borrow from the parent's state and from the device's [`Type`] for `'bound`, the
    /// time the device is bound: the [`Parent`] that owns both removes its devices first.
    type Data<'bound>: Send + Sync + 'bound;

    /// Identifies a device attribute of [`Driver::DEVICE_ATTRIBUTE_GROUPS`].
    type DeviceAttr: Copy + Send + Sync + 'static;

    /// Identifies a type attribute of [`Driver::TYPE_ATTRIBUTE_GROUPS`].
    type TypeAttr: Copy + Send + Sync + 'static;

    /// The device API of every type, shown in the type's `device_api`, e.g. `c"vfio-pci"`.
    const DEVICE_API: &'static CStr;

    /// Attribute groups added to every device while it is bound to the driver.
    ///
    /// At most [`MAX_ATTRIBUTE_GROUPS`] groups.
    const DEVICE_ATTRIBUTE_GROUPS: &'static [AttributeGroup<Self::DeviceAttr>] = &[];

    /// Attribute groups added to the sysfs node of every type, beside the core's `create`,
    /// `name`, `description`, `device_api`, `available_instances` and `devices/`.
    ///
    /// They exist before the parent's `MDEV_STATE=registered` uevent, and until every device of
    /// the parent is gone. At most [`MAX_ATTRIBUTE_GROUPS`] groups.
    const TYPE_ATTRIBUTE_GROUPS: &'static [AttributeGroup<Self::TypeAttr>] = &[];

    /// Creates the private data of a device of type `mtype` that userspace has just created.
    ///
    /// An error fails the userspace write to `create` with that error.
    fn probe<'bound>(
        &'bound self,
        dev: &'bound Device<device::Core<'_>>,
        mtype: &'bound Type<Self>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound;

    /// Called when the device is removed, before its private data is dropped.
    fn unbind<'bound>(
        &'bound self,
        dev: &'bound Device<device::Core<'_>>,
        data: Pin<&Self::Data<'bound>>,
    ) {
        let _ = (dev, data);
    }

    /// Returns how many more devices of type `mtype` can be created (`available_instances`).
    ///
    /// The core only reports this number: [`Driver::probe`] must refuse a device that does not
    /// fit.
    fn available_instances(&self, mtype: &Type<Self>) -> u32;

    /// Writes the description of `mtype` (`description`), trailing newline included.
    fn description(&self, mtype: &Type<Self>, f: &mut Formatter<'_>) -> Result {
        let _ = (mtype, f);
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Writes the content of the device attribute `attr` of `dev`.
    fn show_device_attribute(
        &self,
        dev: &Device<device::Bound>,
        data: Pin<&Self::Data<'_>>,
        attr: Self::DeviceAttr,
        f: &mut Formatter<'_>,
    ) -> Result {
        let _ = (dev, data, attr, f);
        Err(EIO)
    }

    /// Handles a write of `input` to the device attribute `attr` of `dev`.
    ///
    /// `input` is what userspace wrote, newline included.
    fn store_device_attribute(
        &self,
        dev: &Device<device::Bound>,
        data: Pin<&Self::Data<'_>>,
        attr: Self::DeviceAttr,
        input: &[u8],
    ) -> Result {
        let _ = (dev, data, attr, input);
        Err(EIO)
    }

    /// Writes the content of the type attribute `attr` of `mtype`.
    fn show_type_attribute(
        &self,
        mtype: &Type<Self>,
        attr: Self::TypeAttr,
        f: &mut Formatter<'_>,
    ) -> Result {
        let _ = (mtype, attr, f);
        Err(EIO)
    }

    /// Handles a write of `input` to the type attribute `attr` of `mtype`.
    ///
    /// `input` is what userspace wrote, newline included.
    fn store_type_attribute(
        &self,
        mtype: &Type<Self>,
        attr: Self::TypeAttr,
        input: &[u8],
    ) -> Result {
        let _ = (mtype, attr, input);
        Err(EIO)
    }
}

/// A mediated device.
///
/// Drivers only see references to it in callbacks. There is no `ARef<Device>`: a reference held
/// past the removal of the parent would keep `mdev_unregister_parent()` waiting for it.
///
/// # Invariants
///
/// A [`Device`] instance represents a valid `struct mdev_device` created by the mdev core.
#[repr(transparent)]
pub struct Device<Ctx: device::DeviceContext = device::Normal>(
    Opaque<bindings::mdev_device>,
    PhantomData<Ctx>,
);

impl<Ctx: device::DeviceContext> Device<Ctx> {
    fn as_raw(&self) -> *mut bindings::mdev_device {
        self.0.get()
    }

    /// Returns the device's UUID, as userspace wrote it to `create`.
    pub fn uuid(&self) -> &[u8; 16] {
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct mdev_device`, whose
        // `uuid` is set before the device is added and never changed.
        unsafe { &(*self.as_raw()).uuid.b }
    }
}

impl<Ctx: device::DeviceContext> AsRef<device::Device<Ctx>> for Device<Ctx> {
    fn as_ref(&self) -> &device::Device<Ctx> {
        // SAFETY: By the type invariant of `Self`, `self.as_raw()` is a pointer to a valid
        // `struct mdev_device`.
        let dev = unsafe { &raw mut (*self.as_raw()).dev };

        // SAFETY: `dev` points to a valid `struct device`.
        unsafe { device::Device::from_raw(dev) }
    }
}

// SAFETY: `mdev::Device` is a transparent wrapper of `struct mdev_device`, which embeds its
// `struct device` at `OFFSET`.
unsafe impl<Ctx: device::DeviceContext> device::AsBusDevice<Ctx> for Device<Ctx> {
    const OFFSET: usize = offset_of!(bindings::mdev_device, dev);
}

// SAFETY: `Device` is a transparent wrapper of a type that doesn't depend on `Device`'s generic
// argument.
kernel::impl_device_context_deref!(unsafe { Device });

// SAFETY: A `Device` may be used from any thread; the driver core synchronizes its state.
unsafe impl Send for Device {}

// SAFETY: All methods of `Device` (i.e. `Device<Normal>`) are thread safe.
unsafe impl Sync for Device {}

// SAFETY: Same as `Device<Normal>`: `Bound` is a type-state marker that does not affect thread
// safety.
unsafe impl Sync for Device<device::Bound> {}

/// The `struct mdev_driver` of a [`Driver`], registered with [`driver::Registration`].
///
/// A [`Parent`] holds a reference to the registration, so the driver stays registered until its
/// last parent is unregistered.
///
/// # Invariants
///
/// Every `struct mdev_parent` that names this driver is embedded in the `ParentCore<T>` of a
/// registered [`Parent<T>`]: the registered driver structure is only reachable within the kernel
/// crate, and only [`Parent::new`] passes it to `mdev_register_parent()`.
pub struct Adapter<T: Driver>(T);

// SAFETY:
// - `bindings::mdev_driver` is a C type declared as `repr(C)`.
// - `T::Data<'bound>` is the type of the driver's device private data stored by
//   `probe_callback`.
// - `DEVICE_DRIVER_OFFSET` is the offset of the `struct device_driver` embedded in
//   `struct mdev_driver`.
unsafe impl<T: Driver> driver::DriverLayout for Adapter<T> {
    type DriverType = bindings::mdev_driver;
    type DriverData<'bound> = T::Data<'bound>;
    const DEVICE_DRIVER_OFFSET: usize = offset_of!(bindings::mdev_driver, driver);
}

// SAFETY: `unregister` is only called for a driver that `register` registered successfully.
unsafe impl<T: Driver> driver::RegistrationOps for Adapter<T> {
    unsafe fn register(
        mdrv: &Opaque<Self::DriverType>,
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> Result {
        let dev_groups = attr::device_attribute_table::<T>()?;
        let type_groups = attr::type_attribute_table::<T>()?;
        let drv = mdrv.get();

        // SAFETY: The driver is not registered yet, so its fields may be set. Everything they
        // point to is static, except `dev_groups` and `type_groups`, which `unregister` frees.
        unsafe {
            (*drv).device_api = T::DEVICE_API.as_char_ptr();
            (*drv).probe = Some(Self::probe_callback);
            (*drv).remove = Some(Self::remove_callback);
            (*drv).get_available = Some(Self::get_available_callback);
            if T::HAS_DESCRIPTION {
                (*drv).show_description = Some(Self::show_description_callback);
            }
            (*drv).driver.name = name.as_char_ptr();
            (*drv).driver.owner = module.0;
            (*drv).type_groups = type_groups.into_raw();
            (*drv).driver.dev_groups = dev_groups.into_raw();
        }

        // SAFETY: `drv` is a valid `struct mdev_driver`, pinned until `unregister` by the
        // safety requirements of `register`.
        let ret = to_result(unsafe { bindings::mdev_register_driver(drv) });
        if ret.is_err() {
            // SAFETY: The tables were set above and the cores have not used them, since
            // registration failed.
            unsafe { Self::free_attribute_tables(drv) };
        }
        ret
    }

    unsafe fn unregister(mdrv: &Opaque<Self::DriverType>) {
        let drv = mdrv.get();

        // SAFETY: By the safety requirements `drv` was registered by `register`.
        unsafe { bindings::mdev_unregister_driver(drv) };

        // SAFETY: The driver is unregistered, so no device is bound to it, and it has no parent
        // left (each `Parent` holds a reference to the registration): no attribute of the tables
        // exists any more.
        unsafe { Self::free_attribute_tables(drv) };
    }
}

impl<T: Driver> Adapter<T> {
    /// Frees the attribute tables that `register` gave to `drv`.
    ///
    /// # Safety
    ///
    /// `drv` must have been set up by `register`, and neither core may use the tables any more.
    unsafe fn free_attribute_tables(drv: *mut bindings::mdev_driver) {
        // SAFETY: By the safety requirements both were set from `into_raw` of tables of these
        // types, and are no longer used.
        unsafe {
            drop(DeviceAttributeTable::<T>::from_raw(
                (*drv).driver.dev_groups,
            ));
            drop(TypeAttributeTable::<T>::from_raw((*drv).type_groups));
        }
    }

    /// Returns the driver state of the parent of `mdev`.
    ///
    /// # Safety
    ///
    /// `mdev` must be a valid `struct mdev_device` of a type registered by a [`Parent<T>`].
    unsafe fn parent_of<'a>(mdev: *mut bindings::mdev_device) -> &'a ParentCore<T> {
        // SAFETY: By the safety requirements `mdev` and its type are valid, and the type
        // belongs to a `Parent<T>`, which outlives all of its devices.
        unsafe { ParentCore::<T>::from_type((*mdev).type_) }
    }

    extern "C" fn probe_callback(mdev: *mut bindings::mdev_device) -> c_int {
        // SAFETY: The mdev bus only calls probe with a valid `struct mdev_device`, whose type
        // belongs to a `Parent<T>` since it is bound to `Adapter<T>`.
        //
        // INVARIANT: `mdev` is valid for the duration of `probe_callback()`.
        let dev = unsafe { &*mdev.cast::<Device<device::CoreInternal<'_>>>() };
        // SAFETY: As above.
        let parent = unsafe { Self::parent_of(mdev) };
        // SAFETY: The type of a device is set at creation and outlives the device.
        let mtype = unsafe { Type::<T>::from_raw((*mdev).type_) };

        from_result(|| {
            let data = parent.data().probe(dev, mtype);
            dev.as_ref().set_drvdata(data)?;
            Ok(0)
        })
    }

    extern "C" fn remove_callback(mdev: *mut bindings::mdev_device) {
        // SAFETY: The mdev bus only calls remove with a valid `struct mdev_device` that
        // `probe_callback` bound successfully.
        //
        // INVARIANT: `mdev` is valid for the duration of `remove_callback()`.
        let dev = unsafe { &*mdev.cast::<Device<device::CoreInternal<'_>>>() };
        // SAFETY: As in `probe_callback`.
        let parent = unsafe { Self::parent_of(mdev) };

        // SAFETY: `remove_callback` is only called after a successful `probe_callback`, which
        // stored a `Pin<KBox<T::Data>>`; it is dropped only after this returns.
        let data = unsafe { dev.as_ref().drvdata_borrow::<T::Data<'_>>() };

        parent.data().unbind(dev, data);
    }

    extern "C" fn get_available_callback(mtype: *mut bindings::mdev_type) -> c_uint {
        // SAFETY: The core only calls `get_available` for a type of a registered parent of this
        // driver, i.e. of a `Parent<T>`.
        let (parent, mtype) = unsafe { (ParentCore::<T>::from_type(mtype), Type::from_raw(mtype)) };

        parent.data().available_instances(mtype)
    }

    extern "C" fn show_description_callback(
        mtype: *mut bindings::mdev_type,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: As in `get_available_callback`.
        let (parent, mtype) = unsafe { (ParentCore::<T>::from_type(mtype), Type::from_raw(mtype)) };

        // SAFETY: The core passes a sysfs buffer of `PAGE_SIZE` bytes.
        unsafe { crate::sysfs::show_into(buf, |f| parent.data().description(mtype, f)) }
    }
}
