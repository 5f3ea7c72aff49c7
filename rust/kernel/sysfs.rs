// SPDX-License-Identifier: GPL-2.0

//! Groups of sysfs attributes that a driver declares, and the C tables built from them.
//!
//! A driver names its attributes with values of an identifier type of its own
//! ([`Attribute`], [`AttributeGroup`]); a bus abstraction builds an `AttributeTable` of the
//! C attribute type its core dispatches (a device's `struct device_attribute` for the driver
//! core's `dev_groups`, or a bus's own, such as the mdev core's `struct mdev_type_attribute`),
//! with callbacks that find the identifier and call the driver. Each attribute has a lockdep
//! class of its own for the active references that sysfs takes around its callbacks, as a
//! static C attribute does: a callback of one attribute that removes another is not mistaken
//! for recursion.
//!
//! C header: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h)

use crate::{
    bindings,
    container_of,
    page::PAGE_SIZE,
    prelude::*,
    str::Formatter,
    sync::LockClassKey, //
};
use core::ptr::{
    null,
    null_mut, //
};

/// The most attribute groups a driver may add to one kind of node (its devices, say).
pub const MAX_ATTRIBUTE_GROUPS: usize = 4;

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

/// A group of attributes; a named group is a subdirectory of the device's or type's node.
///
/// # Examples
///
/// A device's `migration_version` (read-write) in its own directory, and its
/// `mdev/aggregated_instances` (read-only), named by the driver's identifiers:
///
/// ```
/// use kernel::sysfs::{Attribute, AttributeGroup};
///
/// #[derive(Clone, Copy, PartialEq, Debug)]
/// enum Attr {
///     MigrationVersion,
///     AggregatedInstances,
/// }
///
/// const GROUPS: &[AttributeGroup<Attr>] = &[
///     AttributeGroup::new(
///         None,
///         &[Attribute::read_write(c"migration_version", Attr::MigrationVersion)],
///     ),
///     AttributeGroup::new(
///         Some(c"mdev"),
///         &[Attribute::read_only(c"aggregated_instances", Attr::AggregatedInstances)],
///     ),
/// ];
/// assert_eq!(GROUPS.len(), 2);
/// ```
pub struct AttributeGroup<Id: 'static> {
    name: Option<&'static CStr>,
    attrs: &'static [Attribute<Id>],
}

impl<Id> AttributeGroup<Id> {
    /// A group of `attrs`, in the node's directory or, if `name` is given, in a subdirectory.
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
pub(crate) unsafe fn show_into(
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
pub(crate) unsafe fn input<'a>(buf: *const c_char, count: usize) -> &'a [u8] {
    // SAFETY: By the safety requirements.
    unsafe { core::slice::from_raw_parts(buf.cast(), count) }
}

/// Returns `count` on success, the negative errno otherwise.
pub(crate) fn store_result(result: Result, count: usize) -> isize {
    match result {
        // CAST: sysfs never passes more than a page.
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// A C attribute type that embeds a `struct attribute`, with callbacks of its own signature.
///
/// # Safety
///
/// [`RawAttribute::attribute`] returns a pointer to the `struct attribute` embedded in `*this`.
pub(crate) unsafe trait RawAttribute: Sized {
    /// Returns the `struct attribute` embedded in `*this`.
    ///
    /// # Safety
    ///
    /// `this` must point to a valid `Self`.
    unsafe fn attribute(this: *mut Self) -> *mut bindings::attribute;
}

// SAFETY: `attribute` returns the embedded `attr` field.
unsafe impl RawAttribute for bindings::device_attribute {
    unsafe fn attribute(this: *mut Self) -> *mut bindings::attribute {
        // SAFETY: By the safety requirements `this` is valid.
        unsafe { &raw mut (*this).attr }
    }
}

/// A C attribute with the driver's identifier, which its callbacks find from the attribute.
///
/// # Invariants
///
/// `raw` is only registered through an [`AttributeTable`], and `key` is its lockdep class.
#[repr(C)]
struct Slot<R, Id> {
    raw: R,
    id: Id,
    key: Pin<KBox<LockClassKey>>,
}

/// The C attribute groups built from a driver's declarations, for a `dev_groups` or
/// `type_groups` pointer.
///
/// # Invariants
///
/// - `group_ptrs` is NULL-terminated and its entries point into `groups`, whose `attrs` point
///   into `attr_ptrs`, whose entries point into `slots` (NULL-terminated per group).
/// - None of these is resized once built: C holds pointers into them.
#[repr(C)]
pub(crate) struct AttributeTable<R: 'static, Id: 'static> {
    /// What `dev_groups` or `type_groups` points at; first, so that the table can be found from
    /// it.
    group_ptrs: [*const bindings::attribute_group; MAX_ATTRIBUTE_GROUPS + 1],
    groups: [bindings::attribute_group; MAX_ATTRIBUTE_GROUPS],
    attr_ptrs: KVec<*mut bindings::attribute>,
    slots: KVec<Slot<R, Id>>,
}

impl<R: RawAttribute + 'static, Id: Copy + 'static> AttributeTable<R, Id> {
    /// Builds the table of the groups `defs`, at most [`MAX_ATTRIBUTE_GROUPS`]; `raw` makes the C
    /// attribute of a `struct attribute` with the callbacks, a store one only if `writable`.
    pub(crate) fn new(
        defs: &'static [AttributeGroup<Id>],
        raw: impl Fn(bindings::attribute, bool) -> R,
    ) -> Result<KBox<Self>> {
        if defs.len() > MAX_ATTRIBUTE_GROUPS {
            return Err(EINVAL);
        }
        let count = defs.iter().map(|g| g.attrs.len()).sum::<usize>();

        let mut slots = KVec::with_capacity(count, GFP_KERNEL)?;
        for def in defs.iter().flat_map(|g| g.attrs) {
            slots.push(
                Slot {
                    raw: raw(def.raw(), def.writable()),
                    id: def.id,
                    key: KBox::pin_init(LockClassKey::new_dynamic(), GFP_KERNEL)?,
                },
                GFP_KERNEL,
            )?;
        }

        let mut attr_ptrs = KVec::with_capacity(count + defs.len(), GFP_KERNEL)?;
        let mut slot = slots.as_mut_ptr();
        for def in defs {
            for _ in def.attrs {
                // SAFETY: `slot` is within `slots`, which holds one slot per attribute of every
                // group, in order.
                let attr = unsafe { R::attribute(&raw mut (*slot).raw) };
                // SAFETY: `attr` is a valid attribute about to be registered, `slots` is not
                // resized from here on, and the key lives as long as the slot.
                unsafe { bindings::sysfs_attr_set_lock_class(attr, (*slot).key.as_ptr()) };
                attr_ptrs.push(attr, GFP_KERNEL)?;
                // SAFETY: At most one past the end of `slots`.
                slot = unsafe { slot.add(1) };
            }
            attr_ptrs.push(null_mut(), GFP_KERNEL)?;
        }

        let mut table = KBox::new(
            Self {
                group_ptrs: [null(); MAX_ATTRIBUTE_GROUPS + 1],
                groups: pin_init::zeroed(),
                attr_ptrs,
                slots,
            },
            GFP_KERNEL,
        )?;

        // Every pointer into the table is derived from this one, so that none invalidates another.
        let this: *mut Self = &raw mut *table;
        // SAFETY: `this` points to the boxed table, which nothing else uses yet; `i` is within
        // `groups` (at most `MAX_ATTRIBUTE_GROUPS` groups, checked above) and `group_ptrs`.
        let mut attrs = unsafe { (*this).attr_ptrs.as_mut_ptr() };
        for (i, def) in defs.iter().enumerate() {
            // SAFETY: As above.
            unsafe {
                let group = &raw mut (*this).groups[i];
                (*group).name = def.name.map_or(null(), CStr::as_char_ptr);
                (*group).__bindgen_anon_2.attrs = attrs;
                (*this).group_ptrs[i] = group;
                // Skips this group's attributes and NULL terminator within `attr_ptrs`.
                attrs = attrs.add(def.attrs.len() + 1);
            }
        }

        // INVARIANT: The pointers were set up above as the invariants describe.
        Ok(table)
    }

    /// Hands the table over to C, as the value of `dev_groups` or `type_groups`.
    pub(crate) fn into_raw(self: KBox<Self>) -> *const *const bindings::attribute_group {
        // CAST: `group_ptrs` is the first field of this `repr(C)` type.
        KBox::into_raw(self).cast()
    }

    /// Takes back a table given to C by [`AttributeTable::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`AttributeTable::into_raw`] for the same `R` and `Id`, and C must no
    /// longer use the table.
    pub(crate) unsafe fn from_raw(ptr: *const *const bindings::attribute_group) -> KBox<Self> {
        // SAFETY: By the safety requirements.
        unsafe { KBox::from_raw(ptr.cast_mut().cast()) }
    }

    /// Returns the driver's identifier of the attribute `raw`.
    ///
    /// # Safety
    ///
    /// `raw` must be an attribute of a live table of this type.
    pub(crate) unsafe fn id_of(raw: *const R) -> Id {
        // SAFETY: By the safety requirements `raw` is the `raw` field of a `Slot<R, Id>`.
        unsafe { (*container_of!(raw, Slot<R, Id>, raw)).id }
    }
}
