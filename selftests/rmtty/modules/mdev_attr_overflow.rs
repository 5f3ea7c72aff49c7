// SPDX-License-Identifier: GPL-2.0

//! An mdev parent whose attributes format more than a page and ignore the formatter's errors, as a
//! careless driver might: `rmtty_abstraction_test` reads them to check that the abstractions
//! refuse such a value (`EFBIG`) instead of overrunning the page or warning in sysfs.
//!
//! It has one type, `mdev_attr_overflow-1`, whose `description` and `overflow` attribute
//! overflow, and whose devices have an `overflow` attribute that does too. Its `fits` attributes
//! hold exactly the most a sysfs page takes (`PAGE_SIZE - 1` bytes), which must still be read.

use core::fmt::Write;
use kernel::{
    driver,
    mdev::{self, Attribute, AttributeGroup, Parent, ParentDevice, Type, TypeInfo},
    page::PAGE_SIZE,
    prelude::*,
    str::Formatter,
    sync::Arc,
};

module! {
    type: OverflowModule,
    name: "mdev_attr_overflow",
    authors: ["rmtty developers"],
    description: "Test driver: mdev attributes that overflow their page",
    license: "GPL",
}

/// The attributes: one too long, one exactly as long as a page allows.
#[derive(Clone, Copy)]
enum Attr {
    Overflow,
    Fits,
}

/// Writes `len` bytes of `x` to `f`, ignoring the error the formatter returns past its end.
fn fill(f: &mut Formatter<'_>, len: usize) -> Result {
    const CHUNK: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK.len());
        let _ = f.write_str(&CHUNK[..n]);
        left -= n;
    }
    Ok(())
}

/// What an attribute formats: three pages, or the `PAGE_SIZE - 1` bytes that fit.
fn show(attr: Attr, f: &mut Formatter<'_>) -> Result {
    match attr {
        Attr::Overflow => fill(f, 3 * PAGE_SIZE),
        Attr::Fits => fill(f, PAGE_SIZE - 1),
    }
}

struct Overflow;

#[vtable]
impl mdev::Driver for Overflow {
    type TypeData = ();
    type Data<'bound> = ();
    type DeviceAttr = Attr;
    type TypeAttr = Attr;

    const DEVICE_API: &'static CStr = c"vfio-pci";
    const DEVICE_ATTRIBUTE_GROUPS: &'static [AttributeGroup<Attr>] = &[AttributeGroup::new(
        None,
        &[
            Attribute::read_only(c"overflow", Attr::Overflow),
            Attribute::read_only(c"fits", Attr::Fits),
        ],
    )];
    const TYPE_ATTRIBUTE_GROUPS: &'static [AttributeGroup<Attr>] = &[AttributeGroup::new(
        None,
        &[
            Attribute::read_only(c"overflow", Attr::Overflow),
            Attribute::read_only(c"fits", Attr::Fits),
        ],
    )];

    fn probe<'bound>(
        &'bound self,
        _dev: &'bound mdev::Device<kernel::device::Core<'_>>,
        _mtype: &'bound Type<Self>,
    ) -> impl PinInit<(), Error> + 'bound {
        Ok::<(), Error>(())
    }

    fn available_instances(&self, _mtype: &Type<Self>) -> u32 {
        1
    }

    fn description(&self, _mtype: &Type<Self>, f: &mut Formatter<'_>) -> Result {
        show(Attr::Overflow, f)
    }

    fn show_device_attribute(
        &self,
        _dev: &mdev::Device<kernel::device::Bound>,
        _data: Pin<&()>,
        attr: Attr,
        f: &mut Formatter<'_>,
    ) -> Result {
        show(attr, f)
    }

    fn show_type_attribute(
        &self,
        _mtype: &Type<Self>,
        attr: Attr,
        f: &mut Formatter<'_>,
    ) -> Result {
        show(attr, f)
    }
}

#[pin_data]
struct OverflowModule {
    #[pin]
    parent: Parent<Overflow>,
}

impl kernel::InPlaceModule for OverflowModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            parent <- {
                let driver = Arc::pin_init(
                    driver::Registration::new(c"mdev_attr_overflow", module),
                    GFP_KERNEL,
                )?;
                let mut types = KVec::new();
                types.push(
                    TypeInfo::new(c"1".try_into()?, c"overflow".try_into()?, ()),
                    GFP_KERNEL,
                )?;
                Parent::new(
                    ParentDevice::new(c"mdev_attr_overflow")?,
                    driver,
                    types,
                    Ok::<_, Error>(Overflow),
                )
            },
        })
    }
}
