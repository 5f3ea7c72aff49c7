// SPDX-License-Identifier: GPL-2.0

//! sysfs attributes that an mdev driver adds to its devices and types.
//!
//! Device attributes are regular attributes in groups, installed through the driver's
//! `dev_groups`: the driver core adds them after `probe` and removes them before `remove`, so their
//! callbacks always find the device's private data.
//!
//! The mdev core has no API for attributes on a type's node: its `struct mdev_type_attribute` is
//! private to the core, and regular attributes on the type's kobject are dispatched through the
//! core's `sysfs_ops`, which would call into that private layout. Type attributes are therefore
//! binary attributes, whose callbacks are their own and need nothing of the core but the type's
//! kobject. To userspace they read and write like text attributes, with these differences, which
//! are the constraints of this mechanism:
//!
//! - a read renders the whole value and returns the part at the file offset, so `cat` and
//!   repeated partial reads see one consistent value per call, not per open;
//! - every `write()` is handled as a whole value, whatever the file offset (as with regular
//!   attributes); kernfs splits writes longer than a page, so a value is at most one page;
//! - `stat()` reports a size of 0;
//! - they are created after the core registered the parent, so after its `MDEV_STATE=registered`
//!   uevent, and removed before the core unregisters it.

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
    error::to_result,
    page::PAGE_SIZE,
    prelude::*,
    str::Formatter, //
};
use core::ptr::{
    null,
    null_mut, //
};

/// The most attribute groups a driver may add to its devices.
pub const MAX_DEVICE_ATTRIBUTE_GROUPS: usize = 4;

const MODE_READ: u16 = 0o444;
const MODE_READ_WRITE: u16 = 0o644;

/// An attribute a driver adds to its devices or types, identified by the driver's `Id`.
pub struct Attribute<Id: 'static> {
    name: &'static CStr,
    mode: u16,
    id: Id,
}

impl<Id: Copy> Attribute<Id> {
    /// A read-only attribute (mode 0444).
    pub const fn read_only(name: &'static CStr, id: Id) -> Self {
        Self {
            name,
            mode: MODE_READ,
            id,
        }
    }

    /// A read-write attribute (mode 0644); only root may write.
    pub const fn read_write(name: &'static CStr, id: Id) -> Self {
        Self {
            name,
            mode: MODE_READ_WRITE,
            id,
        }
    }

    fn writable(&self) -> bool {
        self.mode & 0o200 != 0
    }

    /// A C `struct attribute` for this attribute.
    fn raw(&self) -> bindings::attribute {
        let mut attr: bindings::attribute = pin_init::zeroed();
        attr.name = self.name.as_char_ptr();
        attr.mode = self.mode;
        attr
    }
}

/// A group of device attributes; a named group is a subdirectory of the device's node.
pub struct AttributeGroup<Id: 'static> {
    name: Option<&'static CStr>,
    attrs: &'static [Attribute<Id>],
}

impl<Id> AttributeGroup<Id> {
    /// A group of `attrs`, in the device's directory or, if `name` is given, in a subdirectory.
    pub const fn new(name: Option<&'static CStr>, attrs: &'static [Attribute<Id>]) -> Self {
        Self { name, attrs }
    }
}

/// Runs `show` on a sysfs page at `buf` and returns what sysfs expects: the length written or a
/// negative errno.
///
/// Like `sysfs_emit()`, it writes at most `PAGE_SIZE - 1` bytes: sysfs warns about a show that
/// returns a whole page. A show that formatted more than that fails with `EFBIG`, even if it
/// ignored the formatter's error and returned `Ok`.
///
/// # Safety
///
/// `buf` must be valid for writes of [`PAGE_SIZE`] bytes.
pub(super) unsafe fn show_into(
    buf: *mut c_char,
    show: impl FnOnce(&mut Formatter<'_>) -> Result,
) -> isize {
    const CAPACITY: usize = PAGE_SIZE - 1;
    // SAFETY: By the safety requirements `buf` is valid for `PAGE_SIZE` bytes, for the whole
    // life of `f`.
    let mut f = unsafe { Formatter::from_buffer(buf.cast(), CAPACITY) };

    match show(&mut f).and_then(|()| fitted(&f, CAPACITY)) {
        // CAST: At most `CAPACITY` bytes were written.
        Ok(len) => len as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// The length of what `f` holds, or `EFBIG` if what was formatted into it did not fit in its
/// `capacity`.
///
/// The formatter keeps counting past its end (while it fails each write that goes there), so a
/// show that ignores a failed write and returns `Ok` would otherwise make sysfs read past the
/// buffer.
fn fitted(f: &Formatter<'_>, capacity: usize) -> Result<usize> {
    let len = f.bytes_written();
    if len > capacity {
        pr_err!("an mdev attribute's value of {len} bytes does not fit in {capacity}\n");
        return Err(EFBIG);
    }
    Ok(len)
}

/// Returns what userspace wrote, as a slice.
///
/// # Safety
///
/// `buf` must be valid for reads of `count` bytes for the returned lifetime.
unsafe fn input<'a>(buf: *const c_char, count: usize) -> &'a [u8] {
    // SAFETY: By the safety requirements.
    unsafe { core::slice::from_raw_parts(buf.cast(), count) }
}

/// Returns `count` on success, the negative errno otherwise.
fn store_result(result: Result, count: usize) -> isize {
    match result {
        // CAST: sysfs never passes more than a page.
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// A device attribute as the driver core sees it, with the driver's identifier.
///
/// # Invariants
///
/// `attr` is only registered through a [`DeviceAttributeTable`], whose callbacks find `id` from
/// it.
#[repr(C)]
struct DeviceAttributeSlot<Id> {
    attr: bindings::device_attribute,
    id: Id,
}

/// The C attribute groups built from a driver's [`Driver::DEVICE_ATTRIBUTE_GROUPS`], for the
/// driver's `dev_groups`.
///
/// # Invariants
///
/// - `group_ptrs` is NULL-terminated and its entries point into `groups`, whose `attrs` point
///   into `attr_ptrs`, whose entries point into `slots` (NULL-terminated per group).
/// - None of these is resized once built: C holds pointers into them.
#[repr(C)]
pub(super) struct DeviceAttributeTable<Id: 'static> {
    /// What `dev_groups` points at; first, so that the table can be found from it.
    group_ptrs: [*const bindings::attribute_group; MAX_DEVICE_ATTRIBUTE_GROUPS + 1],
    groups: [bindings::attribute_group; MAX_DEVICE_ATTRIBUTE_GROUPS],
    attr_ptrs: KVec<*mut bindings::attribute>,
    slots: KVec<DeviceAttributeSlot<Id>>,
}

impl<Id: Copy + 'static> DeviceAttributeTable<Id> {
    /// Builds the table of `T`'s device attribute groups.
    pub(super) fn new<T: Driver<DeviceAttr = Id>>() -> Result<KBox<Self>> {
        const {
            assert!(T::DEVICE_ATTRIBUTE_GROUPS.len() <= MAX_DEVICE_ATTRIBUTE_GROUPS);
        }
        let defs = T::DEVICE_ATTRIBUTE_GROUPS;
        let count = defs.iter().map(|g| g.attrs.len()).sum::<usize>();

        let mut slots = KVec::with_capacity(count, GFP_KERNEL)?;
        for def in defs.iter().flat_map(|g| g.attrs) {
            let mut attr: bindings::device_attribute = pin_init::zeroed();
            attr.attr = def.raw();
            attr.__bindgen_anon_1.show = Some(show_device_attribute::<T>);
            if def.writable() {
                attr.__bindgen_anon_2.store = Some(store_device_attribute::<T>);
            }
            slots.push(DeviceAttributeSlot { attr, id: def.id }, GFP_KERNEL)?;
        }

        let mut attr_ptrs = KVec::with_capacity(count + defs.len(), GFP_KERNEL)?;
        let mut slot = slots.as_mut_ptr();
        for def in defs {
            for _ in def.attrs {
                // SAFETY: `slot` is within `slots`, which holds one slot per attribute of every
                // group, in order.
                let attr = unsafe { &raw mut (*slot).attr.attr };
                // SAFETY: `attr` is a valid attribute about to be registered; `slots` is not
                // resized from here on.
                unsafe { bindings::sysfs_attr_init(attr) };
                attr_ptrs.push(attr, GFP_KERNEL)?;
                // SAFETY: At most one past the end of `slots`.
                slot = unsafe { slot.add(1) };
            }
            attr_ptrs.push(null_mut(), GFP_KERNEL)?;
        }

        let mut table = KBox::new(
            Self {
                group_ptrs: [null(); MAX_DEVICE_ATTRIBUTE_GROUPS + 1],
                groups: pin_init::zeroed(),
                attr_ptrs,
                slots,
            },
            GFP_KERNEL,
        )?;

        let mut attrs = table.attr_ptrs.as_mut_ptr();
        for (i, def) in defs.iter().enumerate() {
            let group = &mut table.groups[i];
            group.name = def.name.map_or(null(), CStr::as_char_ptr);
            group.__bindgen_anon_2.attrs = attrs;
            table.group_ptrs[i] = &raw const table.groups[i];
            // SAFETY: Skips this group's attributes and NULL terminator within `attr_ptrs`.
            attrs = unsafe { attrs.add(def.attrs.len() + 1) };
        }

        Ok(table)
    }

    /// Hands the table over to C, as the value of `dev_groups`.
    pub(super) fn into_raw(self: KBox<Self>) -> *const *const bindings::attribute_group {
        // CAST: `group_ptrs` is the first field of this `repr(C)` type.
        KBox::into_raw(self).cast()
    }

    /// Takes back a table given to C by [`DeviceAttributeTable::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`DeviceAttributeTable::into_raw`] for the same `Id`, and C must no
    /// longer use the table.
    pub(super) unsafe fn from_raw(ptr: *const *const bindings::attribute_group) -> KBox<Self> {
        // SAFETY: By the safety requirements.
        unsafe { KBox::from_raw(ptr.cast_mut().cast()) }
    }
}

/// What a device attribute callback works on.
struct DeviceAttributeContext<'a, T: Driver> {
    id: T::DeviceAttr,
    dev: &'a Device<device::Bound>,
    data: Pin<&'a T::Data>,
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
    // SAFETY: By the safety requirements `attr` is in a `DeviceAttributeSlot<T::DeviceAttr>`.
    let slot = unsafe { &*container_of!(attr, DeviceAttributeSlot<T::DeviceAttr>, attr) };
    // SAFETY: A device bound to `Adapter<T>` is a `struct mdev_device`.
    let mdev = unsafe { container_of!(dev, bindings::mdev_device, dev) };
    // SAFETY: The driver core adds `dev_groups` after probe and removes them, waiting for
    // running callbacks, before remove: the device is bound for the whole callback.
    let bound = unsafe { &*mdev.cast::<Device<device::Bound>>() };
    // SAFETY: The `CoreInternal` reference is only used to reach `drvdata_borrow()`, whose
    // requirements hold: the device is bound (see above), so `probe_callback` stored a
    // `T::Data`, which is only dropped after unbind, and no other type is stored there.
    let data = unsafe {
        (*dev.cast::<device::Device<device::CoreInternal<'_>>>()).drvdata_borrow::<T::Data>()
    };
    // SAFETY: The type of a bound device belongs to a registered `Parent<T>`.
    let parent = unsafe { ParentCore::<T>::from_type((*mdev).type_) };

    DeviceAttributeContext {
        id: slot.id,
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

/// A type attribute as sysfs sees it, with the driver's identifier.
///
/// # Invariants
///
/// `attr` is only registered through a [`TypeAttributeTable`], whose callbacks find `id` from it.
#[repr(C)]
struct TypeAttributeSlot<Id> {
    attr: bindings::bin_attribute,
    id: Id,
}

/// The binary attributes built from a driver's [`Driver::TYPE_ATTRIBUTES`]; each is created on
/// the kobject of every type of a parent.
///
/// # Invariants
///
/// `slots` is never resized once built: sysfs holds pointers into it while the attributes exist.
pub(super) struct TypeAttributeTable<Id: 'static> {
    slots: KVec<TypeAttributeSlot<Id>>,
}

impl<Id: Copy + 'static> TypeAttributeTable<Id> {
    /// Builds the attributes of `T`'s types.
    pub(super) fn new<T: Driver<TypeAttr = Id>>() -> Result<Self> {
        let defs = T::TYPE_ATTRIBUTES;
        let mut slots = KVec::with_capacity(defs.len(), GFP_KERNEL)?;

        for def in defs {
            let mut attr: bindings::bin_attribute = pin_init::zeroed();
            attr.attr = def.raw();
            attr.read = Some(read_type_attribute::<T>);
            if def.writable() {
                attr.write = Some(write_type_attribute::<T>);
            }
            slots.push(TypeAttributeSlot { attr, id: def.id }, GFP_KERNEL)?;
        }
        for slot in slots.iter_mut() {
            // SAFETY: `slot.attr.attr` is a valid attribute; `slots` is not resized from here on.
            unsafe { bindings::sysfs_attr_init(&raw mut slot.attr.attr) };
        }

        Ok(Self { slots })
    }

    /// Creates the attributes on the type `mtype`, all or none.
    ///
    /// # Safety
    ///
    /// `mtype` must be a type of a registered `Parent<T>` whose `TypeAttr` is `Id`, and the
    /// attributes must be removed with [`TypeAttributeTable::remove`] before the type is
    /// unregistered or `self` dropped.
    pub(super) unsafe fn create(&self, mtype: *mut bindings::mdev_type) -> Result {
        // SAFETY: By the safety requirements `mtype` is valid.
        let kobj = unsafe { &raw mut (*mtype).kobj };

        for i in 0..self.slots.len() {
            // SAFETY: `kobj` is a registered kobject and the attribute an initialized one that
            // outlives the file by the safety requirements.
            let ret = to_result(unsafe { bindings::sysfs_create_bin_file(kobj, self.attr(i)) });
            if let Err(e) = ret {
                for created in 0..i {
                    // SAFETY: Created just above.
                    unsafe { bindings::sysfs_remove_bin_file(kobj, self.attr(created)) };
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// The attribute of slot `i`, as a pointer whose provenance covers the whole slot, so that
    /// the callbacks can find the slot from it.
    fn attr(&self, i: usize) -> *const bindings::bin_attribute {
        // SAFETY: `i` is within `slots`.
        let slot = unsafe { self.slots.as_ptr().add(i) };
        // SAFETY: `slot` points to a valid slot.
        unsafe { &raw const (*slot).attr }
    }

    /// Removes the attributes from `mtype`, waiting for running callbacks to finish.
    ///
    /// # Safety
    ///
    /// The attributes must have been created on `mtype` by [`TypeAttributeTable::create`].
    pub(super) unsafe fn remove(&self, mtype: *mut bindings::mdev_type) {
        for i in 0..self.slots.len() {
            // SAFETY: By the safety requirements `mtype` is valid and has the attribute.
            unsafe { bindings::sysfs_remove_bin_file(&raw mut (*mtype).kobj, self.attr(i)) };
        }
    }
}

/// Returns the identifier, the type and the parent of a type attribute callback.
///
/// # Safety
///
/// `kobj` must be the kobject of a type of a registered `Parent<T>` and `attr` one of the
/// attributes [`TypeAttributeTable<T::TypeAttr>::create`] created on it.
unsafe fn type_attribute_context<'a, T: Driver>(
    kobj: *mut bindings::kobject,
    attr: *const bindings::bin_attribute,
) -> (T::TypeAttr, &'a Type<T>, &'a ParentCore<T>) {
    // SAFETY: By the safety requirements `attr` is in a `TypeAttributeSlot<T::TypeAttr>`.
    let slot = unsafe { &*container_of!(attr, TypeAttributeSlot<T::TypeAttr>, attr) };
    // SAFETY: By the safety requirements `kobj` is embedded in a `struct mdev_type`.
    let mtype = unsafe { container_of!(kobj, bindings::mdev_type, kobj) };

    // SAFETY: `mtype` is a type of a registered `Parent<T>`, which removes the attributes, waiting
    // for this callback, before it is unregistered.
    unsafe { (slot.id, Type::from_raw(mtype), ParentCore::from_type(mtype)) }
}

extern "C" fn read_type_attribute<T: Driver>(
    _file: *mut bindings::file,
    kobj: *mut bindings::kobject,
    attr: *const bindings::bin_attribute,
    buf: *mut c_char,
    offset: bindings::loff_t,
    count: usize,
) -> isize {
    // SAFETY: sysfs calls this only for the attributes `TypeAttributeTable::create` made.
    let (id, mtype, parent) = unsafe { type_attribute_context::<T>(kobj, attr) };

    let mut page = KVec::<u8>::new();
    if let Err(e) = page.resize(PAGE_SIZE, 0, GFP_KERNEL) {
        return Error::from(e).to_errno() as isize;
    }
    // Like a regular attribute's page, at most `PAGE_SIZE - 1` bytes of text.
    let capacity = PAGE_SIZE - 1;
    let mut f = Formatter::new(&mut page[..capacity]);
    let len = match parent
        .data()
        .show_type_attribute(mtype, id, &mut f)
        .and_then(|()| fitted(&f, capacity))
    {
        Ok(len) => len,
        Err(e) => return e.to_errno() as isize,
    };

    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(len);
    let chunk = &page[start..len.min(start.saturating_add(count))];
    // SAFETY: sysfs passes a buffer valid for `count` bytes, and `chunk` is at most that long.
    unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), buf.cast(), chunk.len()) };
    // CAST: At most a page.
    chunk.len() as isize
}

extern "C" fn write_type_attribute<T: Driver>(
    _file: *mut bindings::file,
    kobj: *mut bindings::kobject,
    attr: *const bindings::bin_attribute,
    buf: *mut c_char,
    _offset: bindings::loff_t,
    count: usize,
) -> isize {
    // SAFETY: sysfs calls this only for the attributes `TypeAttributeTable::create` made.
    let (id, mtype, parent) = unsafe { type_attribute_context::<T>(kobj, attr) };
    // SAFETY: sysfs passes `count` valid bytes.
    let input = unsafe { input(buf, count) };

    store_result(parent.data().store_type_attribute(mtype, id, input), count)
}
