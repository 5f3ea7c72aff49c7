// SPDX-License-Identifier: GPL-2.0

//! The VFIO device of an rmtty mdev: a vfio-pci device.

use crate::{
    interrupts::{self, Interrupts},
    migration::{
        runs,
        Machine,
        DATA_SECTION,
        REGION_SIZE, //
    },
    pci::{
        ConfigSpace,
        CONFIG_SIZE,
        IO_BAR_SIZE, //
    },
    pool::Reservation,
    uart::Uart,
    version::Shape,
};
use kernel::{
    alloc::kvec::VVec,
    device, fmt,
    mm::virt::VmaNew,
    new_mutex,
    prelude::*,
    ratelimit::RateLimit,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
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
        DeviceInfo,
        IrqInfo,
        IrqSet,
        MappableBuffer,
        RegionCaps,
        RegionInfo,
        SparseMmapArea, //
    },
};

const BAR0: u32 = uapi::VFIO_PCI_BAR0_REGION_INDEX;
const BAR2: u32 = uapi::VFIO_PCI_BAR2_REGION_INDEX;
const CONFIG: u32 = uapi::VFIO_PCI_CONFIG_REGION_INDEX;
/// The v1 migration region: the first index after the vfio-pci ones, where QEMU looks.
const MIGRATION: u32 = uapi::VFIO_PCI_NUM_REGIONS;
const NUM_REGIONS: u32 = MIGRATION + 1;
const READ_WRITE: u32 = uapi::VFIO_REGION_INFO_FLAG_READ | uapi::VFIO_REGION_INFO_FLAG_WRITE;
const MIB: u32 = 1 << 20;
const ALL_ONES: [u8; 256] = [0xff; 256];

/// Device memory is a vector of blocks of this many bytes, not of bytes: `VVec::from_elem()` and
/// `VVec::resize()` write a vector's new elements one at a time, and zeroing a byte at a time made
/// up a third of a device's creation. A block is one copy; a small one keeps the value
/// `from_elem()` takes and copies from off most of the stack.
pub(crate) const BLOCK_SIZE: usize = 256;

/// A block of device memory.
pub(crate) type Block = [u8; BLOCK_SIZE];

/// `len` bytes (a multiple of [`BLOCK_SIZE`]) of zeroed memory, allocated with `flags`.
pub(crate) fn zeroed(len: usize, flags: kernel::alloc::Flags) -> Result<VVec<Block>> {
    Ok(VVec::from_elem([0; BLOCK_SIZE], len / BLOCK_SIZE, flags)?)
}

/// The largest part of a region write that is copied from the user at once.
const WRITE_PART: usize = 64 << 10;

/// Copies a region write from `buf` in parts of at most [`WRITE_PART`] bytes, each first into a
/// kernel buffer and then whole to `store`, with its offset in the write: a fault in the user's
/// buffer changes nothing of a part. Returns the length of the parts stored, which is all of
/// `buf` unless a part failed; the first part's error if that part failed.
pub(crate) fn write_in_parts(
    buf: &mut UserSliceReader,
    mut store: impl FnMut(usize, &[u8]) -> Result<(), vfio::Refusal>,
) -> Result<usize, vfio::Refusal> {
    let len = buf.len();
    let mut small = [0; CONFIG_SIZE];
    let mut large;
    let bounce = if len <= small.len() {
        &mut small[..len]
    } else {
        let blocks = len.min(WRITE_PART).div_ceil(BLOCK_SIZE);
        large = KVVec::from_elem([0; BLOCK_SIZE], blocks, GFP_KERNEL)?;
        large.as_flattened_mut()
    };
    let mut done = 0;
    while done < len {
        let part = &mut bounce[..(len - done).min(WRITE_PART)];
        let stored = buf
            .read_slice(part)
            .map_err(vfio::Refusal::from)
            .and_then(|()| store(done, part));
        match stored {
            Ok(()) => done += part.len(),
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// Logs `why` `dev` refused a request with `err`, if `refusals` allows a line now; returns the
/// refusal, which the VFIO abstraction then logs no more about.
pub(crate) fn refuse(
    dev: &device::Device,
    refusals: &RateLimit,
    err: Error,
    why: fmt::Arguments<'_>,
) -> vfio::Refusal {
    if refusals.allow() {
        dev_warn!(dev, "{why}\n");
    }
    vfio::Refusal::logged(err)
}

/// A device's memory, BAR2's backing: its units' worth, zeroed when allocated.
pub(crate) struct Memory(VVec<Block>);

impl Memory {
    /// Memory for `units` of `unit_mib` MiB.
    pub(crate) fn new(units: u32, unit_mib: u32) -> Result<Self> {
        Ok(Self(zeroed(bytes(units, unit_mib), GFP_KERNEL)?))
    }

    /// Grows (zero-filled) or shrinks the memory to `units` of `unit_mib` MiB, keeping what
    /// both sizes share; on failure nothing changes.
    pub(crate) fn resize(&mut self, units: u32, unit_mib: u32) -> Result {
        let blocks = bytes(units, unit_mib) / BLOCK_SIZE;
        if blocks > self.0.len() {
            self.0.resize(blocks, [0; BLOCK_SIZE], GFP_KERNEL)?;
        } else {
            // Give the memory back, not only the units.
            let mut smaller = VVec::with_capacity(blocks, GFP_KERNEL)?;
            smaller.extend_from_slice(&self.0[..blocks], GFP_KERNEL)?;
            self.0 = smaller;
        }
        Ok(())
    }

    /// The memory's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.as_flattened()
    }

    /// The memory's bytes, to change.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        self.0.as_flattened_mut()
    }

    /// Replaces the memory with `memory`, of the same size.
    pub(crate) fn replace(&mut self, memory: VVec<Block>) {
        self.0 = memory;
    }
}

fn bytes(units: u32, unit_mib: u32) -> usize {
    // At most 1 GiB: the module parameters bound the pool.
    (units * unit_mib * MIB) as usize
}

/// A device's state, shared by its mdev attributes and its VFIO device.
pub(crate) struct DeviceState {
    /// The device's units: its type's units times `aggregation`.
    pub(crate) reservation: Reservation,
    pub(crate) memory: Memory,
    pub(crate) aggregation: u32,
    /// Whether a VFIO user has the device open. The aggregation, and BAR2 with it, cannot
    /// change then: the aggregation attribute's store takes this lock too.
    pub(crate) open: bool,
    /// The migration state machine.
    pub(crate) migration: Machine,
}

/// The VFIO device of an rmtty mdev.
///
/// Locking: `state`, then `config` or `uart`, then `interrupts`; `uart` is never taken with
/// `config` held or the other way round. BAR2 reads copy to user memory with `state` held, since
/// the device memory lives under it; nothing takes `state` with mm locks held. Writes, and BAR0
/// and config reads, copy user memory outside the device's locks.
///
/// # Invariants
///
/// `running` is whether the migration state in `state` is one in which the device runs; it is
/// written with `state` and `uart` held.
#[pin_data]
pub(crate) struct RmttyVfio {
    state: Arc<Mutex<DeviceState>>,
    unit_mib: u32,
    /// The mdev, for log lines.
    dev: ARef<device::Device>,
    #[pin]
    config: Mutex<ConfigSpace>,
    #[pin]
    uart: Mutex<Uart>,
    /// How the UART's interrupt reaches userspace.
    #[pin]
    interrupts: Mutex<Interrupts>,
    /// The data section of the migration region, once used; dropped when the device is closed.
    /// Never held while another lock is taken: `mmap()` takes it with the mm locked.
    #[pin]
    migration_data: Mutex<Option<Arc<MappableBuffer>>>,
    /// Whether the device runs: its BARs work (see [`runs`]). Read under the UART's lock.
    running: Atomic<bool>,
    /// The rate limit of the refusals the driver logs itself: userspace can repeat them at will.
    refusals: Arc<RateLimit>,
}

impl RmttyVfio {
    pub(crate) fn new(
        state: Arc<Mutex<DeviceState>>,
        unit_mib: u32,
        dev: ARef<device::Device>,
    ) -> impl PinInit<Self, Error> {
        let bar2_size = bar2_size(state.lock().reservation.units(), unit_mib);
        try_pin_init!(Self {
            config <- new_mutex!(ConfigSpace::new(bar2_size)),
            uart <- new_mutex!(Uart::new()),
            interrupts <- new_mutex!(Interrupts::None),
            migration_data <- new_mutex!(None),
            // INVARIANT: A new device runs.
            running: Atomic::new(true),
            refusals: Arc::pin_init(RateLimit::new(c"rmtty"), GFP_KERNEL)?,
            state,
            unit_mib,
            dev,
        })
    }

    /// The device's state, shared with its mdev.
    pub(crate) fn device_state(&self) -> &Arc<Mutex<DeviceState>> {
        &self.state
    }

    pub(crate) fn config(&self) -> &Mutex<ConfigSpace> {
        &self.config
    }

    pub(crate) fn uart(&self) -> &Mutex<Uart> {
        &self.uart
    }

    pub(crate) fn migration_data(&self) -> &Mutex<Option<Arc<MappableBuffer>>> {
        &self.migration_data
    }

    /// The mdev, for log lines.
    pub(crate) fn dev(&self) -> &device::Device {
        &self.dev
    }

    /// The rate limit of the lines userspace can cause the device to log.
    pub(crate) fn refusals(&self) -> &Arc<RateLimit> {
        &self.refusals
    }

    /// Makes the device run or stop, for a migration state, whose lock the caller holds.
    ///
    /// A device that runs again signals what its UART has pending: a stopped device signals
    /// nothing, and a level that was pending meanwhile is due now.
    pub(crate) fn set_running(&self, running: bool) {
        let uart = self.uart.lock();
        let was = self.running.load(Relaxed);
        // INVARIANT: `state` is held by the caller, `uart` here.
        self.running.store(running, Relaxed);
        if running && !was && uart.pending() != 0 {
            self.interrupts.lock().signal();
        }
    }

    /// The refusal of an access of BAR `bar` that would change a stopped device.
    fn stopped(&self, bar: u32) -> vfio::Refusal {
        self.refused(
            EBUSY,
            fmt!("BAR{bar} write refused: the device is stopped for migration"),
        )
    }

    /// Logs `why` the device refused a request with `err`, rate limited; returns the refusal,
    /// which the VFIO abstraction then logs no more about.
    pub(crate) fn refused(&self, err: Error, why: fmt::Arguments<'_>) -> vfio::Refusal {
        refuse(self.dev(), &self.refusals, err, why)
    }

    /// The device's shape: what its migration stream needs of a target.
    pub(crate) fn shape(&self, state: &DeviceState) -> Shape {
        Shape {
            ports: 1,
            memory_mib: state.reservation.units() * self.unit_mib,
        }
    }

    /// The size of BAR2.
    pub(crate) fn bar2_size(&self, state: &DeviceState) -> u32 {
        bar2_size(state.reservation.units(), self.unit_mib)
    }

    /// Checks a BAR2 access of `len` bytes at `offset`; returns the offset and where the backed
    /// part of the access ends (the offset itself if none of it is backed).
    fn bar2_range(&self, state: &DeviceState, offset: u64, len: usize) -> Result<(usize, usize)> {
        let size = bar2_size(state.reservation.units(), self.unit_mib) as usize;
        let offset = in_region(offset, len, size)?;
        Ok((
            offset,
            state.memory.bytes().len().clamp(offset, offset + len),
        ))
    }

    /// Back to power-on state, and to `RUNNING` with no migration transfer; the device memory
    /// and the interrupt set-up are kept.
    fn reset(&self, state: &mut DeviceState) {
        state.migration.reset();
        self.set_running(true);
        let bar2_size = bar2_size(state.reservation.units(), self.unit_mib);
        *self.config.lock() = ConfigSpace::new(bar2_size);
        *self.uart.lock() = Uart::new();
    }

    /// Runs `access` on the UART and signals the interrupt if the access made a condition
    /// pending that was not. A stopped device refuses a write and runs a read on a copy of the
    /// UART: the read sees the registers, and nothing changes.
    fn uart_access(
        &self,
        write: bool,
        access: impl FnOnce(&mut Uart),
    ) -> Result<(), vfio::Refusal> {
        let mut uart = self.uart.lock();
        if !self.running.load(Relaxed) {
            if write {
                return Err(self.stopped(BAR0));
            }
            access(&mut uart.clone());
            return Ok(());
        }
        let before = uart.pending();
        access(&mut uart);
        if uart.pending() & !before != 0 {
            self.interrupts.lock().signal();
        }
        Ok(())
    }

    /// Writes `bytes` at `offset` of BAR2, which the caller checked is inside it; past the backed
    /// part they are ignored. A stopped device refuses the write.
    fn bar2_write(&self, offset: usize, bytes: &[u8]) -> Result<(), vfio::Refusal> {
        let mut state = self.state.lock();
        if !runs(state.migration.state()) {
            return Err(self.stopped(BAR2));
        }
        let backed = state
            .memory
            .bytes()
            .len()
            .clamp(offset, offset + bytes.len());
        if let Some(memory) = state.memory.bytes_mut().get_mut(offset..backed) {
            memory.copy_from_slice(&bytes[..backed - offset]);
            state.migration.memory_written(offset, backed - offset);
        }
        Ok(())
    }
}

/// Runs `f` on a zeroed buffer of `len` bytes (at most [`CONFIG_SIZE`]) on the stack, through
/// which a config access copies user memory outside the config lock: 8 bytes for the accesses a
/// guest makes, the whole space only for larger ones (zeroing 256 bytes was a tenth of a 4-byte
/// read).
fn with_bounce<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    const SMALL: usize = 8;
    if len <= SMALL {
        f(&mut [0; SMALL][..len])
    } else {
        f(&mut [0; CONFIG_SIZE][..len])
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
impl vfio::DeviceOps for RmttyVfio {
    const NAME: &'static CStr = c"rmtty";

    fn open(&self) -> Result<(), vfio::Refusal> {
        let mut state = self.state.lock();
        state.open = true;
        self.reset(&mut state);
        Ok(())
    }

    fn close(&self) {
        let mut state = self.state.lock();
        // Drops the eventfds: userspace may close them now.
        *self.interrupts.lock() = Interrupts::None;
        state.migration.reset();
        self.set_running(true);
        state.open = false;
        *self.migration_data.lock() = None;
    }

    fn read(&self, buf: &mut UserSliceWriter, pos: u64) -> Result<usize, vfio::Refusal> {
        let len = buf.len();
        let (index, offset) = vfio::region::split(pos);
        if index == u64::from(MIGRATION) {
            let offset = in_region(offset, len, REGION_SIZE)?;
            return Ok(self.migration_region_read(buf, offset)?);
        }
        if index == u64::from(BAR2) {
            let state = self.state.lock();
            let (offset, backed) = self.bar2_range(&state, offset, len)?;
            let memory = state.memory.bytes().get(offset..backed).unwrap_or(&[]);
            buf.write_slice(memory)?;
            // Past the backed part, up to the BAR's power-of-two size, reads all-ones.
            let mut ones = len - memory.len();
            while ones > 0 {
                let chunk = ones.min(ALL_ONES.len());
                buf.write_slice(&ALL_ONES[..chunk])?;
                ones -= chunk;
            }
            return Ok(len);
        }
        if index == u64::from(BAR0) {
            let offset = in_region(offset, len, IO_BAR_SIZE as usize)?;
            let mut bytes = [0; IO_BAR_SIZE as usize];
            // Wider accesses read consecutive registers, one byte lane each.
            self.uart_access(false, |uart| {
                for (reg, byte) in (offset..).zip(&mut bytes[..len]) {
                    *byte = uart.read(reg);
                }
            })?;
            buf.write_slice(&bytes[..len])?;
            return Ok(len);
        }
        if index != u64::from(CONFIG) {
            return Err(EINVAL.into());
        }
        let offset = in_region(offset, len, CONFIG_SIZE)?;
        with_bounce(len, |bytes| {
            bytes.copy_from_slice(self.config.lock().read(offset, len));
            buf.write_slice(bytes)
        })?;
        Ok(len)
    }

    fn write(&self, buf: &mut UserSliceReader, pos: u64) -> Result<usize, vfio::Refusal> {
        let len = buf.len();
        let (index, offset) = vfio::region::split(pos);
        if index == u64::from(MIGRATION) {
            let offset = in_region(offset, len, REGION_SIZE)?;
            return self.migration_region_write(buf, offset);
        }
        if index == u64::from(BAR2) {
            // All or nothing in each part: no byte of device memory changes unless the part it
            // is in arrived whole and is marked dirty with it.
            let (offset, _) = self.bar2_range(&self.state.lock(), offset, len)?;
            return write_in_parts(buf, |at, bytes| self.bar2_write(offset + at, bytes));
        }
        if index == u64::from(BAR0) {
            let offset = in_region(offset, len, IO_BAR_SIZE as usize)?;
            let mut bytes = [0; IO_BAR_SIZE as usize];
            buf.read_slice(&mut bytes[..len])?;
            self.uart_access(true, |uart| {
                for (reg, &byte) in (offset..).zip(&bytes[..len]) {
                    uart.write(reg, byte);
                }
            })?;
            return Ok(len);
        }
        if index != u64::from(CONFIG) {
            return Err(EINVAL.into());
        }
        let offset = in_region(offset, len, CONFIG_SIZE)?;
        with_bounce(len, |bytes| -> Result {
            buf.read_slice(bytes)?;
            self.config.lock().write(offset, bytes);
            Ok(())
        })?;
        Ok(len)
    }

    fn mmap(&self, vma: &VmaNew, pos: u64) -> Result<(), vfio::Refusal> {
        // Only the migration region's data section can be mapped.
        let (index, offset) = vfio::region::split(pos);
        let offset = usize::try_from(offset).map_err(|_| EINVAL)?;
        if index != u64::from(MIGRATION) || offset < DATA_SECTION {
            return Err(EINVAL.into());
        }
        Ok(self.data_section()?.map(vma, offset - DATA_SECTION)?)
    }

    fn ioctl(&self, cmd: u32, arg: UserPtr) -> Result<isize, vfio::Refusal> {
        match cmd {
            vfio::ioctl::DEVICE_GET_INFO => Ok(DeviceInfo {
                flags: uapi::VFIO_DEVICE_FLAGS_PCI | uapi::VFIO_DEVICE_FLAGS_RESET,
                num_regions: NUM_REGIONS,
                num_irqs: uapi::VFIO_PCI_NUM_IRQS,
            }
            .write_to(arg)?),
            vfio::ioctl::DEVICE_RESET => {
                self.reset(&mut self.state.lock());
                Ok(0)
            }
            _ => Err(ENOTTY.into()),
        }
    }

    fn irq_info(&self, index: u32) -> Result<IrqInfo, vfio::Refusal> {
        Ok(interrupts::info(index)?)
    }

    fn set_irqs(&self, irqs: IrqSet) -> Result<(), vfio::Refusal> {
        let uart = self.uart.lock();
        // A stopped device signals nothing, even a level it has pending: see `set_running()`.
        let pending = || self.running.load(Relaxed) && uart.pending() != 0;
        Ok(self.interrupts.lock().set(irqs, pending)?)
    }

    fn region_info(
        &self,
        info: &mut RegionInfo<'_>,
        caps: &mut RegionCaps<'_>,
    ) -> Result<(), vfio::Refusal> {
        let index = info.index();
        let (size, flags) = match index {
            MIGRATION => {
                caps.add_type(
                    uapi::VFIO_REGION_TYPE_MIGRATION_DEPRECATED,
                    uapi::VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED,
                )?;
                // The header is trapped; the data section can be mapped.
                caps.add_sparse_mmap(&[SparseMmapArea {
                    offset: DATA_SECTION as u64,
                    size: (REGION_SIZE - DATA_SECTION) as u64,
                }])?;
                // CAST: A page and 1 MiB.
                (
                    REGION_SIZE as u32,
                    READ_WRITE | uapi::VFIO_REGION_INFO_FLAG_MMAP,
                )
            }
            BAR0 => (IO_BAR_SIZE, READ_WRITE),
            BAR2 => {
                let units = self.state.lock().reservation.units();
                (bar2_size(units, self.unit_mib), READ_WRITE)
            }
            // CAST: 256 fits.
            CONFIG => (CONFIG_SIZE as u32, READ_WRITE),
            _ if index < NUM_REGIONS => (0, 0),
            _ => return Err(EINVAL.into()),
        };
        info.set(vfio::region::offset(index), size.into(), flags);
        Ok(())
    }
}
