// SPDX-License-Identifier: GPL-2.0

//! rmmem: an mdev parent whose devices are plain memory, the second user of the Rust VFIO and
//! mdev abstractions beside rmtty.
//!
//! Where rmtty has a fixed set of types that share one pool, rmmem learns its types when it
//! loads, as the driver of a device would learn them from the hardware: `max_kib` gives the types
//! `rmmem-4k`, `rmmem-8k`, ... up to that size, each with a count of its own of the devices that
//! may still be created (`instances` at first). A device holds one of them for as long as it is
//! bound, borrowing its type. A device is a `vfio-platform` device with one region of that much
//! memory, which userspace reads and writes; it has no interrupts, no reset, no migration and no
//! attributes of its own.

use kernel::{
    driver,
    mdev::{self, Parent, ParentDevice, Type, TypeInfo},
    new_mutex,
    prelude::*,
    str::{CString, Formatter},
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
    uaccess::{UserPtr, UserSliceReader, UserSliceWriter},
    uapi,
    vfio::{self, DeviceInfo, RegionCaps, RegionInfo},
};

module! {
    type: RmmemModule,
    name: "rmmem",
    authors: ["rmtty developers"],
    description: "Rust sample mediated device parent: devices of plain memory",
    license: "GPL",
    params: {
        max_kib: u32 {
            default: 64,
            description: "Memory of the largest type's devices in KiB (4-1024, a power of two)",
        },
        instances: u32 {
            default: 4,
            description: "Devices of each type that may exist at once (1-64)",
        },
    },
}

/// The smallest type's memory, in KiB.
const MIN_KIB: u32 = 4;
const MAX_KIB: u32 = 1024;
const MAX_INSTANCES: u32 = 64;

/// A type: how much memory its devices have, and how many more of them may be created.
struct MemoryType {
    kib: u32,
    free: Atomic<u32>,
}

impl MemoryType {
    /// Takes one of the type's instances, for a device, which gives it back when dropped.
    fn take(&self) -> Result<Instance<'_>> {
        let mut free = self.free.load(Relaxed);
        loop {
            if free == 0 {
                return Err(ENOSPC);
            }
            match self.free.cmpxchg(free, free - 1, Relaxed) {
                Ok(_) => return Ok(Instance(self)),
                Err(now) => free = now,
            }
        }
    }
}

/// One instance of a type, held by a device.
struct Instance<'a>(&'a MemoryType);

impl Drop for Instance<'_> {
    fn drop(&mut self) {
        self.0.free.fetch_add(1, Relaxed);
    }
}

/// The types, from `MIN_KIB` up to `max_kib` KiB, doubling.
fn types(max_kib: u32, instances: u32) -> Result<KVec<TypeInfo<MemoryType>>> {
    let mut types = KVec::new();
    let mut kib = MIN_KIB;
    while kib <= max_kib {
        let info = TypeInfo::new(
            CString::try_from_fmt(fmt!("{kib}k"))?,
            CString::try_from_fmt(fmt!("rmmem {kib} KiB"))?,
            MemoryType {
                kib,
                free: Atomic::new(instances),
            },
        );
        types.push(info, GFP_KERNEL)?;
        kib *= 2;
    }
    Ok(types)
}

/// The module parameters, validated: `(max_kib, instances)`.
fn params() -> Result<(u32, u32)> {
    let max_kib = *module_parameters::max_kib.value();
    let instances = *module_parameters::instances.value();
    if !(MIN_KIB..=MAX_KIB).contains(&max_kib) || !max_kib.is_power_of_two() {
        pr_err!("max_kib={max_kib} is not a power of two in {MIN_KIB}..={MAX_KIB}\n");
        return Err(EINVAL);
    }
    if !(1..=MAX_INSTANCES).contains(&instances) {
        pr_err!("instances={instances} is out of range 1..={MAX_INSTANCES}\n");
        return Err(EINVAL);
    }
    Ok((max_kib, instances))
}

/// The parent's state: nothing but its types, which the mdev core keeps.
struct Rmmem;

/// A device, bound to a type it holds an instance of.
///
/// The VFIO device is dropped first (fields drop in their order here), which waits for userspace
/// to close it: only then is the instance given back.
#[pin_data]
struct RmmemDevice<'bound> {
    _vfio: vfio::Registration<Memory>,
    _instance: Instance<'bound>,
}

#[vtable]
impl mdev::Driver for Rmmem {
    type TypeData = MemoryType;
    type Data<'bound> = RmmemDevice<'bound>;
    type DeviceAttr = ();
    type TypeAttr = ();

    const DEVICE_API: &'static CStr = c"vfio-platform";

    fn probe<'bound>(
        &'bound self,
        dev: &'bound mdev::Device<kernel::device::Core<'_>>,
        mtype: &'bound Type<Self>,
    ) -> impl PinInit<RmmemDevice<'bound>, Error> + 'bound {
        let mtype = mtype.info().data();
        // The instance is taken first: no device is made for a type that has none left.
        try_pin_init!(RmmemDevice {
            _instance: mtype.take()?,
            _vfio: vfio::Registration::new((**dev).as_ref(), Memory::new(mtype.kib)?)?,
        })
    }

    fn available_instances(&self, mtype: &Type<Self>) -> u32 {
        mtype.info().data().free.load(Relaxed)
    }

    fn description(&self, mtype: &Type<Self>, f: &mut Formatter<'_>) -> Result {
        use core::fmt::Write;
        writeln!(f, "{} KiB of memory in one region", mtype.info().data().kib)?;
        Ok(())
    }
}

/// The VFIO side of a device: its memory.
#[pin_data]
struct Memory {
    size: usize,
    #[pin]
    bytes: Mutex<KVVec<u8>>,
}

impl Memory {
    fn new(kib: u32) -> Result<impl PinInit<Self, Error>> {
        let len = usize::try_from(kib)? * 1024;
        let mut bytes = KVVec::with_capacity(len, GFP_KERNEL)?;
        bytes.resize(len, 0, GFP_KERNEL)?;
        Ok(try_pin_init!(Self {
            size: len,
            bytes <- new_mutex!(bytes),
        }? Error))
    }

    /// The range of the memory that an access of `len` bytes at `pos` covers, if it is all in
    /// the region.
    fn range(&self, pos: u64, len: usize) -> Result<core::ops::Range<usize>> {
        let (index, offset) = vfio::region::split(pos);
        let start = usize::try_from(offset)?;
        let end = start.checked_add(len).ok_or(EINVAL)?;
        if index != 0 || end > self.size {
            return Err(EINVAL);
        }
        Ok(start..end)
    }
}

#[vtable]
impl vfio::DeviceOps for Memory {
    const NAME: &'static CStr = c"rmmem";

    fn read(&self, buf: &mut UserSliceWriter, pos: u64) -> Result<usize, vfio::Refusal> {
        let range = self.range(pos, buf.len())?;
        let len = range.len();
        buf.write_slice(&self.bytes.lock()[range])?;
        Ok(len)
    }

    fn write(&self, buf: &mut UserSliceReader, pos: u64) -> Result<usize, vfio::Refusal> {
        let range = self.range(pos, buf.len())?;
        let len = range.len();
        buf.read_slice(&mut self.bytes.lock()[range])?;
        Ok(len)
    }

    fn ioctl(&self, cmd: u32, arg: UserPtr) -> Result<isize, vfio::Refusal> {
        match cmd {
            vfio::ioctl::DEVICE_GET_INFO => Ok(DeviceInfo {
                flags: uapi::VFIO_DEVICE_FLAGS_PLATFORM,
                num_regions: 1,
                num_irqs: 0,
            }
            .write_to(arg)?),
            _ => Err(ENOTTY.into()),
        }
    }

    fn region_info(
        &self,
        info: &mut RegionInfo<'_>,
        _caps: &mut RegionCaps<'_>,
    ) -> Result<(), vfio::Refusal> {
        if info.index() != 0 {
            return Err(EINVAL.into());
        }
        let size = u64::try_from(self.size).map_err(|_| EOVERFLOW)?;
        let flags = uapi::VFIO_REGION_INFO_FLAG_READ | uapi::VFIO_REGION_INFO_FLAG_WRITE;
        info.set(vfio::region::offset(0), size, flags);
        Ok(())
    }
}

#[pin_data]
struct RmmemModule {
    #[pin]
    parent: Parent<Rmmem>,
}

impl kernel::InPlaceModule for RmmemModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            parent <- {
                let (max_kib, instances) = params()?;
                let driver = Arc::pin_init(driver::Registration::new(c"rmmem", module), GFP_KERNEL)?;
                Parent::new(
                    ParentDevice::new(c"rmmem")?,
                    driver,
                    types(max_kib, instances)?,
                    Ok::<_, Error>(Rmmem),
                )
            },
        })
    }
}
