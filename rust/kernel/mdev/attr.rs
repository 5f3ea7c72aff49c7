// SPDX-License-Identifier: GPL-2.0

//! sysfs attributes that an mdev driver adds to its devices and types.
//!
//! Both are regular attributes in groups that one [`AttributeTable`] builds from the driver's
//! declarations ([`crate::sysfs`]), and that the cores install: device attributes through the
//! driver's `dev_groups` (the driver core adds them after `probe` and removes them before
//! `remove`, so their callbacks always find the device's private data), type attributes through
//! the mdev driver's `type_groups` (the mdev core adds them to every type before it announces
//! the parent with its `MDEV_STATE=registered` uevent, and removes them, waiting for running
//! callbacks, before the parent's unregistration returns).

use super::{
    Device,
    Driver,
    ParentCore,
    Type, //
};
use crate::{
    bindings,
    container_of,
    device,
    prelude::*,
    sysfs::{
        input,
        show_into,
        store_result,
        AttributeTable,
        RawAttribute,
        MAX_ATTRIBUTE_GROUPS, //
    }, //
};

// SAFETY: `attribute` returns the embedded `attr` field.
unsafe impl RawAttribute for bindings::mdev_type_attribute {
    unsafe fn attribute(this: *mut Self) -> *mut bindings::attribute {
        // SAFETY: By the safety requirements `this` is valid.
        unsafe { &raw mut (*this).attr }
    }
}

/// The table of a driver's device attributes.
pub(super) type DeviceAttributeTable<T> =
    AttributeTable<bindings::device_attribute, <T as Driver>::DeviceAttr>;

/// The table of a driver's type attributes.
pub(super) type TypeAttributeTable<T> =
    AttributeTable<bindings::mdev_type_attribute, <T as Driver>::TypeAttr>;

/// Builds the table of `T`'s device attribute groups, for its `dev_groups`.
pub(super) fn device_attribute_table<T: Driver>() -> Result<KBox<DeviceAttributeTable<T>>> {
    const {
        assert!(T::DEVICE_ATTRIBUTE_GROUPS.len() <= MAX_ATTRIBUTE_GROUPS);
    }
    AttributeTable::new(T::DEVICE_ATTRIBUTE_GROUPS, |attr, writable| {
        let mut raw: bindings::device_attribute = pin_init::zeroed();
        raw.attr = attr;
        raw.__bindgen_anon_1.show = Some(show_device_attribute::<T>);
        if writable {
            raw.__bindgen_anon_2.store = Some(store_device_attribute::<T>);
        }
        raw
    })
}

/// Builds the table of `T`'s type attribute groups, for its `type_groups`.
pub(super) fn type_attribute_table<T: Driver>() -> Result<KBox<TypeAttributeTable<T>>> {
    const {
        assert!(T::TYPE_ATTRIBUTE_GROUPS.len() <= MAX_ATTRIBUTE_GROUPS);
    }
    AttributeTable::new(T::TYPE_ATTRIBUTE_GROUPS, |attr, writable| {
        let mut raw: bindings::mdev_type_attribute = pin_init::zeroed();
        raw.attr = attr;
        raw.show = Some(show_type_attribute::<T>);
        if writable {
            raw.store = Some(store_type_attribute::<T>);
        }
        raw
    })
}

/// What a device attribute callback works on.
struct DeviceAttributeContext<'a, T: Driver> {
    id: T::DeviceAttr,
    dev: &'a Device<device::Bound>,
    data: Pin<&'a T::Data<'a>>,
    parent: &'a ParentCore<T>,
}

/// Returns the context of a device attribute callback.
///
/// # Safety
///
/// `dev` must be a device bound to `Adapter<T>` and `attr` one of its `dev_groups` attributes.
unsafe fn device_attribute_context<'a, T: Driver>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
) -> DeviceAttributeContext<'a, T> {
    // SAFETY: By the safety requirements `attr` is an attribute of a `DeviceAttributeTable<T>`,
    // which lives until the driver is unregistered.
    let id = unsafe { DeviceAttributeTable::<T>::id_of(attr) };
    // SAFETY: A device bound to `Adapter<T>` is a `struct mdev_device`.
    let mdev = unsafe { container_of!(dev, bindings::mdev_device, dev) };
    // SAFETY: The driver core adds `dev_groups` after probe and removes them, waiting for
    // running callbacks, before remove: the device is bound for the whole callback.
    let bound = unsafe { &*mdev.cast::<Device<device::Bound>>() };
    // SAFETY: The `CoreInternal` reference is only used to reach `drvdata_borrow()`, whose
    // requirements hold: the device is bound (see above), so `probe_callback` stored a
    // `T::Data`, which is only dropped after unbind, and no other type is stored there.
    let data = unsafe {
        (*dev.cast::<device::Device<device::CoreInternal<'_>>>()).drvdata_borrow::<T::Data<'a>>()
    };
    // SAFETY: The type of a bound device belongs to a registered `Parent<T>`.
    let parent = unsafe { ParentCore::<T>::from_type((*mdev).type_) };

    DeviceAttributeContext {
        id,
        dev: bound,
        data,
        parent,
    }
}

extern "C" fn show_device_attribute<T: Driver>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: The driver core calls this only for `dev_groups` attributes of a bound device.
    let cx = unsafe { device_attribute_context::<T>(dev, attr) };

    // SAFETY: The driver core passes a page-sized buffer.
    unsafe {
        show_into(buf, |f| {
            cx.parent
                .data()
                .show_device_attribute(cx.dev, cx.data, cx.id, f)
        })
    }
}

extern "C" fn store_device_attribute<T: Driver>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: As in `show_device_attribute`.
    let cx = unsafe { device_attribute_context::<T>(dev, attr) };
    // SAFETY: The driver core passes `count` valid bytes.
    let input = unsafe { input(buf, count) };

    store_result(
        cx.parent
            .data()
            .store_device_attribute(cx.dev, cx.data, cx.id, input),
        count,
    )
}

/// Returns the identifier, the type and the parent of a type attribute callback.
///
/// # Safety
///
/// `mtype` must be a type of a registered `Parent<T>` and `attr` one of the attributes of its
/// driver's `type_groups`.
unsafe fn type_attribute_context<'a, T: Driver>(
    mtype: *mut bindings::mdev_type,
    attr: *mut bindings::mdev_type_attribute,
) -> (T::TypeAttr, &'a Type<T>, &'a ParentCore<T>) {
    // SAFETY: By the safety requirements `attr` is an attribute of a `TypeAttributeTable<T>`,
    // which lives until the driver is unregistered, after its last parent.
    let id = unsafe { TypeAttributeTable::<T>::id_of(attr) };

    // SAFETY: `mtype` is a type of a registered `Parent<T>`; the core removes the type's
    // attributes, waiting for this callback, before the parent's unregistration returns.
    unsafe { (id, Type::from_raw(mtype), ParentCore::from_type(mtype)) }
}

extern "C" fn show_type_attribute<T: Driver>(
    mtype: *mut bindings::mdev_type,
    attr: *mut bindings::mdev_type_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: The mdev core calls this only for the `type_groups` attributes of its types.
    let (id, mtype, parent) = unsafe { type_attribute_context::<T>(mtype, attr) };

    // SAFETY: The core passes a page-sized buffer.
    unsafe { show_into(buf, |f| parent.data().show_type_attribute(mtype, id, f)) }
}

extern "C" fn store_type_attribute<T: Driver>(
    mtype: *mut bindings::mdev_type,
    attr: *mut bindings::mdev_type_attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: As in `show_type_attribute`.
    let (id, mtype, parent) = unsafe { type_attribute_context::<T>(mtype, attr) };
    // SAFETY: sysfs passes `count` valid bytes.
    let input = unsafe { input(buf, count) };

    store_result(parent.data().store_type_attribute(mtype, id, input), count)
}
