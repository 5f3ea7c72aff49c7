// SPDX-License-Identifier: GPL-2.0

//! The VFIO device of an rmtty mdev: a vfio-pci device.

use crate::{
    pci::{
        ConfigSpace,
        CONFIG_SIZE,
        IO_BAR_SIZE, //
    },
    pool::Reservation,
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
    uaccess::{
        UserPtr,
        UserSliceReader,
        UserSliceWriter, //
    },
    uapi,
    vfio::{
        self,
        pci::region_offset,
        DeviceInfo,
        RegionCaps,
        RegionInfo, //
    },
};

const BAR0: u32 = uapi::VFIO_PCI_BAR0_REGION_INDEX;
const BAR2: u32 = uapi::VFIO_PCI_BAR2_REGION_INDEX;
const CONFIG: u32 = uapi::VFIO_PCI_CONFIG_REGION_INDEX;
/// The v1 migration region: reported with size 0 until the migration protocols implement it.
const MIGRATION: u32 = uapi::VFIO_PCI_NUM_REGIONS;
const NUM_REGIONS: u32 = MIGRATION + 1;
const READ_WRITE: u32 = uapi::VFIO_REGION_INFO_FLAG_READ | uapi::VFIO_REGION_INFO_FLAG_WRITE;
const MIB: u32 = 1 << 20;

/// A device's state, shared by its mdev attributes and its VFIO device.
pub(crate) struct DeviceState {
    /// The device's units: its type's units times `aggregation`.
    pub(crate) reservation: Reservation,
    pub(crate) aggregation: u32,
    /// Whether a VFIO user has the device open. The aggregation, and BAR2 with it, cannot
    /// change then: the aggregation attribute's store takes this lock too.
    pub(crate) open: bool,
}

/// The VFIO device of an rmtty mdev.
///
/// Locking: `state` before `config`; user memory is never accessed with a lock held.
#[pin_data]
pub(crate) struct RmttyVfio {
    state: Arc<Mutex<DeviceState>>,
    unit_mib: u32,
    #[pin]
    config: Mutex<ConfigSpace>,
}

impl RmttyVfio {
    pub(crate) fn new(state: Arc<Mutex<DeviceState>>, unit_mib: u32) -> impl PinInit<Self, Error> {
        let bar2_size = bar2_size(state.lock().reservation.units(), unit_mib);
        try_pin_init!(Self {
            config <- new_mutex!(ConfigSpace::new(bar2_size)),
            state,
            unit_mib,
        })
    }

    /// Back to power-on state.
    fn reset(&self, state: &DeviceState) {
        let bar2_size = bar2_size(state.reservation.units(), self.unit_mib);
        *self.config.lock() = ConfigSpace::new(bar2_size);
    }
}

/// BAR2's size for `units`: their memory, rounded up to a power of two.
fn bar2_size(units: u32, unit_mib: u32) -> u32 {
    // At most 1 GiB: the module parameters bound the pool.
    (units * unit_mib * MIB).next_power_of_two()
}

/// Checks that `len` bytes at `offset` lie in a region of `size` bytes; returns the offset.
fn in_region(offset: u64, len: usize, size: usize) -> Result<usize> {
    let offset = usize::try_from(offset).map_err(|_| EINVAL)?;
    match offset.checked_add(len) {
        Some(end) if len > 0 && end <= size => Ok(offset),
        _ => Err(EINVAL),
    }
}

#[vtable]
impl vfio::Driver for RmttyVfio {
    const NAME: &'static CStr = c"rmtty";

    fn open(&self) -> Result {
        let mut state = self.state.lock();
        state.open = true;
        self.reset(&state);
        Ok(())
    }

    fn close(&self) {
        self.state.lock().open = false;
    }

    fn read(&self, buf: &mut UserSliceWriter, pos: u64) -> Result<usize> {
        let len = buf.len();
        let (index, offset) = vfio::pci::split(pos);
        if index != u64::from(CONFIG) {
            return Err(EINVAL);
        }
        let offset = in_region(offset, len, CONFIG_SIZE)?;
        let mut bytes = [0; CONFIG_SIZE];
        bytes[..len].copy_from_slice(self.config.lock().read(offset, len));
        buf.write_slice(&bytes[..len])?;
        Ok(len)
    }

    fn write(&self, buf: &mut UserSliceReader, pos: u64) -> Result<usize> {
        let len = buf.len();
        let (index, offset) = vfio::pci::split(pos);
        if index != u64::from(CONFIG) {
            return Err(EINVAL);
        }
        let offset = in_region(offset, len, CONFIG_SIZE)?;
        let mut bytes = [0; CONFIG_SIZE];
        buf.read_slice(&mut bytes[..len])?;
        self.config.lock().write(offset, &bytes[..len]);
        Ok(len)
    }

    fn ioctl(&self, cmd: u32, arg: UserPtr) -> Result<isize> {
        match cmd {
            vfio::ioctl::DEVICE_GET_INFO => DeviceInfo {
                flags: uapi::VFIO_DEVICE_FLAGS_PCI | uapi::VFIO_DEVICE_FLAGS_RESET,
                num_regions: NUM_REGIONS,
                num_irqs: uapi::VFIO_PCI_NUM_IRQS,
            }
            .write_to(arg),
            vfio::ioctl::DEVICE_RESET => {
                self.reset(&self.state.lock());
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }

    fn region_info(&self, info: &mut RegionInfo<'_>, _caps: &mut RegionCaps<'_>) -> Result {
        let index = info.index();
        let (size, flags) = match index {
            BAR0 => (IO_BAR_SIZE, READ_WRITE),
            BAR2 => {
                let units = self.state.lock().reservation.units();
                (bar2_size(units, self.unit_mib), READ_WRITE)
            }
            // CAST: 256 fits.
            CONFIG => (CONFIG_SIZE as u32, READ_WRITE),
            _ if index < NUM_REGIONS => (0, 0),
            _ => return Err(EINVAL),
        };
        info.set(region_offset(index), size.into(), flags);
        Ok(())
    }
}
