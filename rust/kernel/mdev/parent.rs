// SPDX-License-Identifier: GPL-2.0

//! Parents of mediated devices and their types.

use super::{
    Adapter,
    Driver, //
};
use crate::{
    bindings,
    container_of,
    device,
    driver,
    error::{
        from_err_ptr,
        to_result, //
    },
    prelude::*,
    str::CString,
    sync::Arc,
    types::Opaque, //
};
use core::{
    marker::PhantomData,
    ptr::{
        null_mut,
        NonNull, //
    },
};

/// A type of mediated device that a driver offers, as the driver describes it.
///
/// A driver builds its types when it registers a [`Parent`], e.g. from what the hardware says it
/// can share, so the names are owned.
///
/// # Examples
///
/// ```
/// use kernel::{mdev::TypeInfo, prelude::*, str::CString};
///
/// // A type of devices of two units: `<parent>-2`, named "sample, 2 units".
/// let name = CString::try_from(c"2")?;
/// let info = TypeInfo::new(name, CString::try_from(c"sample, 2 units")?, 2u32);
/// assert_eq!(info.sysfs_name(), c"2");
/// assert_eq!(*info.data(), 2);
/// # Ok::<(), Error>(())
/// ```
pub struct TypeInfo<D> {
    sysfs_name: CString,
    pretty_name: CString,
    data: D,
}

impl<D> TypeInfo<D> {
    /// A type whose sysfs node is `<parent driver string>-<sysfs_name>`, shown to users as
    /// `pretty_name` (its `name` attribute), with the driver's `data`.
    pub fn new(sysfs_name: CString, pretty_name: CString, data: D) -> Self {
        Self {
            sysfs_name,
            pretty_name,
            data,
        }
    }

    /// The type's name, without the parent's prefix.
    pub fn sysfs_name(&self) -> &CStr {
        &self.sysfs_name
    }

    /// The type's human-readable name.
    pub fn pretty_name(&self) -> &CStr {
        &self.pretty_name
    }

    /// The driver's data of this type.
    pub fn data(&self) -> &D {
        &self.data
    }
}

/// Storage of a `struct mdev_type` and the driver's description of the type.
///
/// # Invariants
///
/// The names in `raw` point to those of `info`, which live as long as the slot.
#[repr(C)]
struct TypeSlot<D> {
    raw: Opaque<bindings::mdev_type>,
    info: TypeInfo<D>,
}

/// A type of a registered [`Parent`].
///
/// # Invariants
///
/// A [`Type<T>`] is the `struct mdev_type` of a `TypeSlot<T::TypeData>` of a registered
/// [`Parent<T>`].
#[repr(transparent)]
pub struct Type<T: Driver>(Opaque<bindings::mdev_type>, PhantomData<T>);

impl<T: Driver> Type<T> {
    /// # Safety
    ///
    /// `ptr` must be a type of a [`Parent<T>`] that stays registered for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::mdev_type) -> &'a Self {
        // SAFETY: `Type<T>` is a transparent wrapper of `struct mdev_type`; validity is
        // guaranteed by the safety requirements.
        unsafe { &*ptr.cast() }
    }

    /// The driver's description of this type.
    pub fn info(&self) -> &TypeInfo<T::TypeData> {
        let raw = core::ptr::from_ref(&self.0).cast_mut();
        // SAFETY: By the type invariant `self` is embedded in a `TypeSlot<T::TypeData>`, which
        // lives as long as `self`.
        unsafe { &(*container_of!(raw, TypeSlot<T::TypeData>, raw)).info }
    }
}

/// The C types of a parent, built from the driver's [`TypeInfo`]s.
///
/// # Invariants
///
/// `ptrs[i]` points to `slots[i].raw`; neither is resized once built, since the mdev core keeps
/// both the array and the types.
struct Types<D> {
    /// Owns the types that `ptrs` points to.
    _slots: KVec<TypeSlot<D>>,
    ptrs: KVec<*mut bindings::mdev_type>,
}

impl<D> Types<D> {
    fn new(infos: KVec<TypeInfo<D>>) -> Result<Self> {
        let mut slots = KVec::with_capacity(infos.len(), GFP_KERNEL)?;
        for info in infos {
            let mut raw: bindings::mdev_type = pin_init::zeroed();
            // The names are on the heap: moving the slot does not move them.
            raw.sysfs_name = info.sysfs_name.as_char_ptr();
            raw.pretty_name = info.pretty_name.as_char_ptr();
            // INVARIANT: The names point to those of `info`, moved into the same slot.
            slots.push(
                TypeSlot {
                    raw: Opaque::new(raw),
                    info,
                },
                GFP_KERNEL,
            )?;
        }

        // Pointers derived from the buffer's, so that their provenance covers whole slots, which
        // `Type::info()` reaches from them.
        let mut ptrs = KVec::with_capacity(slots.len(), GFP_KERNEL)?;
        for i in 0..slots.len() {
            // SAFETY: `i` is within `slots`.
            let slot: *mut TypeSlot<D> = unsafe { slots.as_mut_ptr().add(i) };
            // SAFETY: `slot` points to a valid slot.
            let raw = unsafe { &raw const (*slot).raw };
            ptrs.push(Opaque::cast_into(raw), GFP_KERNEL)?;
        }
        // INVARIANT: `ptrs[i]` was derived from `slots[i].raw` above.
        Ok(Self {
            _slots: slots,
            ptrs,
        })
    }
}

/// The part of a [`Parent`] that C callbacks find from a type's `parent` pointer.
///
/// # Invariants
///
/// `raw` is only registered by [`Parent<T>`], with the driver of a
/// `driver::Registration<Adapter<T>>`; so the parent of every type and device bound to
/// `Adapter<T>` is a `ParentCore<T>`.
#[repr(C)]
#[pin_data]
pub(super) struct ParentCore<T: Driver> {
    #[pin]
    raw: Opaque<bindings::mdev_parent>,
    #[pin]
    data: T,
}

impl<T: Driver> ParentCore<T> {
    /// Returns the parent of `mtype`.
    ///
    /// # Safety
    ///
    /// `mtype` must be a type of a [`Parent<T>`] that stays registered for `'a`.
    pub(super) unsafe fn from_type<'a>(mtype: *mut bindings::mdev_type) -> &'a Self {
        // SAFETY: The core sets a type's `parent` at registration to the `struct mdev_parent`
        // given to `mdev_register_parent()`, which `Parent<T>` embeds in a `ParentCore<T>`.
        unsafe { &*container_of!(Opaque::cast_from((*mtype).parent).cast_mut(), Self, raw) }
    }

    /// The driver's state.
    pub(super) fn data(&self) -> &T {
        &self.data
    }
}

/// The registration of a device as the parent of a driver's mediated device types.
///
/// # Examples
///
/// The [module's example](super) registers a parent with types it builds at run time, and drops
/// it.
///
/// While it exists, `/sys/class/mdev_bus/<device>` and the types under its
/// `mdev_supported_types` exist and userspace can create devices. Dropping it removes every
/// device of the parent, then the types, then drops the driver's state, the parent device and
/// the reference to the driver registration, in that order.
///
/// # Invariants
///
/// `core.raw` is registered with the mdev core with the types `types` until the drop.
#[pin_data(PinnedDrop)]
pub struct Parent<T: Driver, D: AsRef<device::Device> + Send + Sync = ParentDevice> {
    #[pin]
    core: ParentCore<T>,
    types: Types<T::TypeData>,
    dev: D,
    driver: Arc<driver::Registration<Adapter<T>>>,
}

// SAFETY: The raw pointers in `types` point into the parent's own storage; the C
// parts are only changed by the mdev core under its own locks; the driver's state and the device
// are `Send`; and dropping the parent (removing sysfs files, `mdev_unregister_parent()`) may
// happen on any thread.
unsafe impl<T: Driver, D: AsRef<device::Device> + Send + Sync> Send for Parent<T, D> {}

// SAFETY: `&Parent` gives access to nothing but `&T` and `&D`, which are `Sync`.
unsafe impl<T: Driver, D: AsRef<device::Device> + Send + Sync> Sync for Parent<T, D> {}

impl<T: Driver, D: AsRef<device::Device> + Send + Sync> Parent<T, D> {
    /// Registers `dev` as the parent of the types `types`, in that order, whose devices bind to
    /// `driver`, with the driver's state `data`.
    pub fn new(
        dev: D,
        driver: Arc<driver::Registration<Adapter<T>>>,
        types: KVec<TypeInfo<T::TypeData>>,
        data: impl PinInit<T, Error>,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(&this in Self {
            core <- try_pin_init!(ParentCore {
                raw: Opaque::uninit(),
                data <- data,
            }),
            types: Types::new(types)?,
            dev,
            driver,
            _: {
                // SAFETY: Every field is initialized and the parent is pinned.
                let this = unsafe { this.as_ref() };
                this.register()?;
            },
        })
    }

    fn register(&self) -> Result {
        let nr_types = u32::try_from(self.types.ptrs.len())?;

        // SAFETY: `core.raw` is pinned and outlives the registration, which `drop` undoes. The
        // device is kept alive by `self.dev`. The driver is registered and kept so by
        // `self.driver`. The types array and the types are never resized or moved.
        //
        // INVARIANT: On success `core.raw` is registered with the types `types`, until `drop`.
        to_result(unsafe {
            bindings::mdev_register_parent(
                self.core.raw.get(),
                self.dev.as_ref().as_raw(),
                self.driver.as_raw(),
                self.types.ptrs.as_ptr().cast_mut(),
                nr_types,
            )
        })
    }

    /// The driver's state.
    pub fn data(&self) -> &T {
        &self.core.data
    }

    /// The parent device.
    pub fn device(&self) -> &D {
        &self.dev
    }
}

#[pinned_drop]
impl<T: Driver, D: AsRef<device::Device> + Send + Sync> PinnedDrop for Parent<T, D> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant `core.raw` is registered. This removes every device of the
        // parent, which unbinds it and drops its private data, and the types with their attributes,
        // waiting for every callback into them. It returns once the core's last reference to the
        // types is gone (tools/kernel/patches: the devices' releases use the types, the parent and
        // the driver), so the fields can be dropped afterwards.
        unsafe { bindings::mdev_unregister_parent(self.core.raw.get()) };
    }
}

/// A device in a class of its own, as the parent of mediated devices with no hardware behind
/// them (samples, test drivers).
///
/// The mdev core prefixes type names with the parent's driver name, or, for a device with
/// neither driver nor bus, its class name: the types of a [`ParentDevice`] named `name` appear as
/// `name-<sysfs_name>` under `/sys/class/mdev_bus/name/mdev_supported_types/`. A driver of real
/// hardware registers its bus device as the parent instead.
///
/// # Examples
///
/// ```
/// use kernel::{mdev::ParentDevice, prelude::*};
///
/// let dev = ParentDevice::new(c"mdev_parent_example")?;
/// // `/sys/class/mdev_parent_example/mdev_parent_example`, until `dev` is dropped.
/// assert_eq!(dev.as_ref().name(), c"mdev_parent_example");
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// `class` was created by `class_create()` and `dev` by `device_create()` in it; both exist until
/// the drop.
pub struct ParentDevice {
    class: NonNull<bindings::class>,
    dev: NonNull<bindings::device>,
}

impl ParentDevice {
    /// Creates the class `name` and a device `name` in it.
    pub fn new(name: &'static CStr) -> Result<Self> {
        // SAFETY: `name` is static, as the class keeps it.
        let class = from_err_ptr(unsafe { bindings::class_create(name.as_char_ptr()) })?;
        let class = NonNull::new(class).ok_or(ENOMEM)?;

        // SAFETY: `class` is a valid class; the format consumes exactly one string argument.
        let dev = from_err_ptr(unsafe {
            bindings::device_create(
                class.as_ptr(),
                null_mut(),
                0,
                null_mut(),
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        })
        .and_then(|dev| NonNull::new(dev).ok_or(ENOMEM));

        match dev {
            // INVARIANT: Both were created above.
            Ok(dev) => Ok(Self { class, dev }),
            Err(e) => {
                // SAFETY: Created above and not used by anything else.
                unsafe { bindings::class_destroy(class.as_ptr()) };
                Err(e)
            }
        }
    }
}

impl AsRef<device::Device> for ParentDevice {
    fn as_ref(&self) -> &device::Device {
        // SAFETY: By the type invariant `dev` is a registered device for the life of `self`.
        unsafe { device::Device::from_raw(self.dev.as_ptr()) }
    }
}

impl Drop for ParentDevice {
    fn drop(&mut self) {
        // SAFETY: By the type invariant both exist; the device goes before its class.
        unsafe {
            bindings::device_unregister(self.dev.as_ptr());
            bindings::class_destroy(self.class.as_ptr());
        }
    }
}

// SAFETY: The device core's registration functions may be called from any thread.
unsafe impl Send for ParentDevice {}

// SAFETY: `&ParentDevice` only gives access to the `struct device`, which is thread safe.
unsafe impl Sync for ParentDevice {}
