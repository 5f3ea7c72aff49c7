// SPDX-License-Identifier: GPL-2.0

//! The device's PCI configuration space.

/// Size of the configuration space.
pub(crate) const CONFIG_SIZE: usize = 256;

/// Size of BAR0, the UART's I/O ports.
pub(crate) const IO_BAR_SIZE: u32 = 8;

/// The PCI configuration space of an rmtty device: mtty's identity (a 16550-compatible serial
/// controller that Linux's `8250_pci` drives), BAR0 as 8 bytes of I/O space and BAR2 as 32-bit
/// non-prefetchable memory.
///
/// Writes change only writable bits. A BAR's writable bits are its address bits, so writing all
/// ones and reading back gives the size mask, as on hardware.
pub(crate) struct ConfigSpace {
    bytes: [u8; CONFIG_SIZE],
    writable: [u8; CONFIG_SIZE],
}

impl ConfigSpace {
    /// The power-on configuration space of a device whose BAR2 is `bar2_size` bytes, a power of
    /// two.
    pub(crate) fn new(bar2_size: u32) -> Self {
        let mut this = Self {
            bytes: [0; CONFIG_SIZE],
            writable: [0; CONFIG_SIZE],
        };
        this.set32(0x00, 0x3253_4348); // vendor 0x4348, device 0x3253
        this.set16(0x04, 0x0001); // command: I/O decoding
        this.set16(0x06, 0x0200); // status
        this.bytes[0x08] = 0x10; // revision
        this.bytes[0x09] = 0x02; // programming interface: 16550-compatible
        this.bytes[0x0b] = 0x07; // class: simple communication controller
        this.set32(0x10, 0x1); // BAR0: I/O space
        this.set32(0x18, 0x0); // BAR2: 32-bit non-prefetchable memory
        this.set32(0x2c, 0x3253_4348); // subsystem
        this.bytes[0x3d] = 0x01; // interrupt pin INTA#

        // Command: I/O, memory, bus master, INTx disable.
        this.writable[0x04..0x06].copy_from_slice(&0x0407u16.to_le_bytes());
        this.writable[0x10..0x14].copy_from_slice(&(!(IO_BAR_SIZE - 1) & !0x3).to_le_bytes());
        this.writable[0x18..0x1c].copy_from_slice(&(!(bar2_size - 1) & !0xf).to_le_bytes());
        this.writable[0x3c] = 0xff; // interrupt line
        this
    }

    fn set16(&mut self, offset: usize, value: u16) {
        self.bytes[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
    }

    fn set32(&mut self, offset: usize, value: u32) {
        self.bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// The bytes at `offset..offset + len`; the caller has checked the range.
    pub(crate) fn read(&self, offset: usize, len: usize) -> &[u8] {
        &self.bytes[offset..offset + len]
    }

    /// The whole configuration space, as the config record of `migration-stream.md` holds it.
    pub(crate) fn save(&self) -> [u8; CONFIG_SIZE] {
        self.bytes
    }

    /// The configuration space of a device whose BAR2 is `bar2_size` bytes, with the content
    /// `saved`; fails with the offset of the first byte whose read-only bits differ from this
    /// device's.
    pub(crate) fn load(bar2_size: u32, saved: &[u8; CONFIG_SIZE]) -> Result<Self, usize> {
        let mut this = Self::new(bar2_size);
        let read_only_differ = |(i, (&new, (&old, &mask))): (usize, (&u8, (&u8, &u8)))| {
            ((new ^ old) & !mask != 0).then_some(i)
        };
        if let Some(offset) = saved
            .iter()
            .zip(this.bytes.iter().zip(&this.writable))
            .enumerate()
            .find_map(read_only_differ)
        {
            return Err(offset);
        }
        this.bytes = *saved;
        Ok(this)
    }

    /// Writes `data` at `offset`, changing only writable bits; the caller has checked the range.
    pub(crate) fn write(&mut self, offset: usize, data: &[u8]) {
        let bytes = &mut self.bytes[offset..offset + data.len()];
        let writable = &self.writable[offset..offset + data.len()];
        for ((byte, &mask), &new) in bytes.iter_mut().zip(writable).zip(data) {
            *byte = (*byte & !mask) | (new & mask);
        }
    }
}
