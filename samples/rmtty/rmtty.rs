// SPDX-License-Identifier: GPL-2.0

//! rmtty: a mediated device parent with aggregatable types, the Rust sibling of the mtty sample.
//!
//! The parent `rmtty` shares a pool of `units` among its devices. A device of type `rmtty-<n>`
//! takes `n` units, times its aggregation: a device of type `rmtty-1` aggregated 4 times has the
//! resources of a device of type `rmtty-4`.

use core::{fmt::Write, num::NonZeroU32};
use kernel::{
    driver, fmt,
    mdev::{self, Attribute, AttributeGroup, Parent, ParentDevice, Type, TypeInfo},
    new_mutex,
    prelude::*,
    ratelimit::RateLimit,
    str::{BStr, CString, Formatter},
    sync::{Arc, Mutex},
    vfio,
};

mod device;
mod interrupts;
mod migration;
mod pci;
mod pool;
mod stream;
mod uart;
mod version;

use device::{DeviceState, Memory, RmttyVfio};
use migration::Machine;
use pool::Pool;
use version::{Shape, Stream};

module! {
    type: RmttyModule,
    name: "rmtty",
    authors: ["rmtty developers"],
    description: "Rust sample mediated device parent with aggregatable types",
    license: "GPL",
    params: {
        units: u32 {
            default: 16,
            description: "Units shared by all devices (1-256)",
        },
        unit_mib: u32 {
            default: 1,
            description: "Device memory per unit in MiB (1-64; units x unit_mib <= 1024)",
        },
    },
}

const UNITS_RANGE: core::ops::RangeInclusive<u32> = 1..=256;
const UNIT_MIB_RANGE: core::ops::RangeInclusive<u32> = 1..=64;
const MAX_POOL_MIB: u32 = 1024;

/// The module parameters, validated.
struct Config {
    units: u32,
    unit_mib: u32,
}

impl Config {
    fn from_params() -> Result<Self> {
        let units = *module_parameters::units.value();
        let unit_mib = *module_parameters::unit_mib.value();

        if !UNITS_RANGE.contains(&units) {
            pr_err!("units={units} is out of range {UNITS_RANGE:?}\n");
        } else if !UNIT_MIB_RANGE.contains(&unit_mib) {
            pr_err!("unit_mib={unit_mib} is out of range {UNIT_MIB_RANGE:?}\n");
        } else if units * unit_mib > MAX_POOL_MIB {
            pr_err!(
                "units={units} x unit_mib={unit_mib} exceeds {MAX_POOL_MIB} MiB of device memory\n"
            );
        } else {
            return Ok(Self { units, unit_mib });
        }
        Err(EINVAL)
    }
}

/// What a type needs: the units of a device of aggregation 1.
#[derive(Clone, Copy)]
struct RmttyType {
    units: NonZeroU32,
}

impl RmttyType {
    const fn new(units: u32) -> Self {
        Self {
            units: NonZeroU32::new(units).unwrap(),
        }
    }

    fn units(&self) -> u32 {
        self.units.get()
    }

    /// How many devices of aggregation 1 fit in `units`.
    fn fit(&self, units: u32) -> u32 {
        units / self.units
    }
}

/// The types: `rmtty-<n>` takes `n` units.
const TYPES: [RmttyType; 3] = [RmttyType::new(1), RmttyType::new(2), RmttyType::new(4)];

/// The types as the parent registers them: `rmtty-<n>`, named "rmtty x<n> (<n> units)".
fn types() -> Result<KVec<TypeInfo<RmttyType>>> {
    let mut types = KVec::with_capacity(TYPES.len(), GFP_KERNEL)?;
    for mtype in TYPES {
        let units = mtype.units();
        let s = if units == 1 { "" } else { "s" };
        let info = TypeInfo::new(
            CString::try_from_fmt(fmt!("{units}"))?,
            CString::try_from_fmt(fmt!("rmtty x{units} ({units} unit{s})"))?,
            mtype,
        );
        types.push(info, GFP_KERNEL)?;
    }
    Ok(types)
}

/// Attributes of every device.
#[derive(Clone, Copy)]
enum DeviceAttr {
    MigrationVersion,
    StreamVersion,
    AggregatedInstances,
    MaxAggregation,
}

/// Attributes of every type.
#[derive(Clone, Copy)]
enum TypeAttr {
    Aggregation,
    MigrationVersion,
}

/// The parent: its configuration and its pool of units.
struct Rmtty {
    config: Config,
    pool: Arc<Pool>,
    /// The rate limit of the refusals of writes to the types' attributes, which userspace can
    /// repeat at will. A device's attributes share the device's rate limit.
    refusals: Arc<RateLimit>,
}

impl Rmtty {
    fn new(config: Config) -> Result<Self> {
        Ok(Self {
            pool: Pool::new(config.units)?,
            refusals: Arc::pin_init(RateLimit::new(c"rmtty"), GFP_KERNEL)?,
            config,
        })
    }

    /// The largest aggregation a device of `mtype` can ever have.
    fn type_aggregation(&self, mtype: &RmttyType) -> u32 {
        mtype.fit(self.pool.total())
    }

    /// The shape of a device holding `units`.
    fn shape(&self, units: u32) -> Shape {
        Shape {
            ports: 1,
            memory_mib: units * self.config.unit_mib,
        }
    }
}

/// A device of the parent, of a type it borrows while it is bound.
#[pin_data]
struct RmttyDevice<'bound> {
    mtype: &'bound RmttyType,
    state: Arc<Mutex<DeviceState>>,
    vfio: vfio::Registration<RmttyVfio>,
}

impl RmttyDevice<'_> {
    /// Logs `why` the device refused a write to one of its attributes, within the rate limit of
    /// the device's refusals; returns `err`.
    fn refused(&self, err: Error, why: fmt::Arguments<'_>) -> Error {
        self.vfio.data().refused(err, why).error()
    }
}

#[vtable]
impl mdev::Driver for Rmtty {
    type TypeData = RmttyType;
    type Data<'bound> = RmttyDevice<'bound>;
    type DeviceAttr = DeviceAttr;
    type TypeAttr = TypeAttr;

    const DEVICE_API: &'static CStr = c"vfio-pci";
    const DEVICE_ATTRIBUTE_GROUPS: &'static [AttributeGroup<DeviceAttr>] = &[
        AttributeGroup::new(
            None,
            &[
                Attribute::read_write(c"migration_version", DeviceAttr::MigrationVersion),
                Attribute::read_write(c"stream_version", DeviceAttr::StreamVersion),
            ],
        ),
        AttributeGroup::new(
            Some(c"mdev"),
            &[
                Attribute::read_write(c"aggregated_instances", DeviceAttr::AggregatedInstances),
                Attribute::read_only(c"max_aggregation", DeviceAttr::MaxAggregation),
            ],
        ),
    ];
    const TYPE_ATTRIBUTE_GROUPS: &'static [AttributeGroup<TypeAttr>] = &[AttributeGroup::new(
        None,
        &[
            Attribute::read_only(c"aggregation", TypeAttr::Aggregation),
            Attribute::read_write(c"migration_version", TypeAttr::MigrationVersion),
        ],
    )];

    fn probe<'bound>(
        &'bound self,
        dev: &'bound mdev::Device<kernel::device::Core<'_>>,
        mtype: &'bound Type<Self>,
    ) -> impl PinInit<RmttyDevice<'bound>, Error> + 'bound {
        let units = mtype.info().data().units();

        try_pin_init!(RmttyDevice {
            mtype: mtype.info().data(),
            state: Arc::pin_init(
                new_mutex!(DeviceState {
                    reservation: self.pool.reserve(units)?,
                    memory: Memory::new(units, self.config.unit_mib)?,
                    aggregation: 1,
                    open: false,
                    migration: Machine::new(),
                }),
                GFP_KERNEL,
            )?,
            vfio: vfio::Registration::new_migratable(
                (**dev).as_ref(),
                RmttyVfio::new(state.clone(), self.config.unit_mib, (**dev).as_ref().into()),
            )?,
        })
    }

    fn available_instances(&self, mtype: &Type<Self>) -> u32 {
        mtype.info().data().fit(self.pool.free())
    }

    fn description(&self, mtype: &Type<Self>, f: &mut Formatter<'_>) -> Result {
        let units = mtype.info().data().units();
        writeln!(
            f,
            "{units} unit{}, 1 port, {} MiB device memory, aggregation up to {}",
            if units == 1 { "" } else { "s" },
            units * self.config.unit_mib,
            self.type_aggregation(mtype.info().data()),
        )?;
        Ok(())
    }

    fn show_type_attribute(
        &self,
        mtype: &Type<Self>,
        attr: TypeAttr,
        f: &mut Formatter<'_>,
    ) -> Result {
        let info = mtype.info().data();
        match attr {
            TypeAttr::Aggregation => writeln!(f, "{}", self.type_aggregation(info))?,
            TypeAttr::MigrationVersion => version::write_type(
                f,
                self.shape(info.units()),
                self.config.unit_mib,
                self.type_aggregation(info),
            )?,
        }
        Ok(())
    }

    fn store_type_attribute(&self, mtype: &Type<Self>, attr: TypeAttr, input: &[u8]) -> Result {
        let info = mtype.info().data();
        match attr {
            TypeAttr::MigrationVersion => {
                let max = self.type_aggregation(info);
                version::check_type(input, self.shape(info.units()), max).map_err(|refusal| {
                    if self.refusals.allow() {
                        let name = mtype.info().sysfs_name();
                        pr_warn!("rmtty-{name}: migration_version refused: {refusal}\n");
                    }
                    EINVAL
                })
            }
            TypeAttr::Aggregation => Err(EPERM),
        }
    }

    fn show_device_attribute(
        &self,
        _dev: &mdev::Device<kernel::device::Bound>,
        data: Pin<&RmttyDevice<'_>>,
        attr: DeviceAttr,
        f: &mut Formatter<'_>,
    ) -> Result {
        let state = data.state.lock();
        match attr {
            DeviceAttr::MigrationVersion => {
                let shape = self.shape(state.reservation.units());
                let stream = state.migration.stream();
                version::write_device(f, shape, stream, self.config.unit_mib)?;
            }
            DeviceAttr::StreamVersion => writeln!(f, "{}", state.migration.stream())?,
            DeviceAttr::AggregatedInstances => writeln!(f, "{}", state.aggregation)?,
            DeviceAttr::MaxAggregation => {
                let max = (state.aggregation + data.mtype.fit(self.pool.free()))
                    .min(self.type_aggregation(data.mtype));
                writeln!(f, "{max}")?;
            }
        }
        Ok(())
    }

    fn store_device_attribute(
        &self,
        _dev: &mdev::Device<kernel::device::Bound>,
        data: Pin<&RmttyDevice<'_>>,
        attr: DeviceAttr,
        input: &[u8],
    ) -> Result {
        match attr {
            DeviceAttr::MigrationVersion => {
                // Under the lock: the shape must not change while it is compared.
                let state = data.state.lock();
                let shape = self.shape(state.reservation.units());
                let stream = state.migration.stream();
                version::check_device(input, shape, stream).map_err(|refusal| {
                    data.refused(EINVAL, fmt!("migration_version refused: {refusal}"))
                })
            }
            DeviceAttr::StreamVersion => set_stream(&data, input),
            DeviceAttr::AggregatedInstances => self.set_aggregation(&data, input),
            DeviceAttr::MaxAggregation => Err(EPERM),
        }
    }
}

/// Sets the stream version a device writes and reads: `1.0` lets an older driver take its stream,
/// and makes it refuse 1.1 streams. Like the aggregation, it cannot change while the device is
/// open: a transfer in progress keeps the version it started with.
fn set_stream(device: &RmttyDevice<'_>, input: &[u8]) -> Result {
    let Some(stream) = Stream::parse(input) else {
        let (shown, more) = head(input.strip_suffix(b"\n").unwrap_or(input));
        return Err(device.refused(
            EINVAL,
            fmt!("stream_version: {shown:?}{more} is not a stream version this driver writes (1.0, 1.1)"),
        ));
    };
    let mut state = device.state.lock();
    if stream == state.migration.stream() {
        return Ok(());
    }
    if state.open {
        return Err(device.refused(EBUSY, fmt!("stream_version: the device is open")));
    }
    state.migration.set_stream(stream);
    Ok(())
}

impl Rmtty {
    /// Changes a device's aggregation, reserving or returning units at once.
    fn set_aggregation(&self, device: &RmttyDevice<'_>, input: &[u8]) -> Result {
        let max = self.type_aggregation(device.mtype);
        let digits = input.strip_suffix(b"\n").unwrap_or(input);
        let aggregation = match decimal(digits) {
            Some(value) if (1..=max).contains(&value) => value,
            _ => {
                let (shown, more) = head(digits);
                return Err(device.refused(
                    EINVAL,
                    fmt!(
                        "aggregated_instances: {shown:?}{more} is not an aggregation in 1..={max}"
                    ),
                ));
            }
        };

        let mut state = device.state.lock();
        if aggregation == state.aggregation {
            return Ok(());
        }
        if state.open {
            return Err(device.refused(EBUSY, fmt!("aggregated_instances: the device is open")));
        }
        let units = device.mtype.units() * aggregation;
        let held = state.reservation.units();
        let no_memory = |e| {
            device.refused(
                e,
                fmt!(
                    "aggregated_instances: no memory for {units} units of {} MiB",
                    self.config.unit_mib
                ),
            )
        };
        if units < held {
            // The smaller memory is a new allocation, which can fail: the units go back to the
            // pool only once it is in place, so that nothing can take them first.
            state
                .memory
                .resize(units, self.config.unit_mib)
                .map_err(no_memory)?;
            // Shrinking a reservation cannot fail.
            let _ = state.reservation.resize(units);
        } else {
            if let Err(e) = state.reservation.resize(units) {
                let free = self.pool.free();
                return Err(device.refused(
                    e,
                    fmt!("aggregated_instances: {aggregation} needs {units} units, {held} held and {free} free"),
                ));
            }
            if let Err(e) = state.memory.resize(units, self.config.unit_mib) {
                // Back to what it held: shrinking a reservation cannot fail.
                let _ = state.reservation.resize(held);
                return Err(no_memory(e));
            }
        }
        state.aggregation = aggregation;
        Ok(())
    }
}

/// A decimal number, without sign: its value, if it fits.
fn decimal(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &c| {
        n.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

/// Enough of a refused value to see what it was, and the reason within one log line: its first
/// 16 bytes, and "..." if there were more.
fn head(value: &[u8]) -> (&BStr, &'static str) {
    match value.get(..16) {
        Some(head) if value.len() > 16 => (BStr::from_bytes(head), "..."),
        _ => (BStr::from_bytes(value), ""),
    }
}

#[pin_data]
struct RmttyModule {
    #[pin]
    parent: Parent<Rmtty>,
}

impl kernel::InPlaceModule for RmttyModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            parent <- {
                let config = Config::from_params()?;
                let driver = Arc::pin_init(driver::Registration::new(c"rmtty", module), GFP_KERNEL)?;
                Parent::new(ParentDevice::new(c"rmtty")?, driver, types()?, Rmtty::new(config))
            },
        })
    }
}
