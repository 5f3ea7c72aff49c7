// SPDX-License-Identifier: GPL-2.0

//! The UART at BAR0: one 16550A-compatible port whose line is looped back, as mtty's.
//!
//! There is no outside line: what is transmitted is received, as if a loopback plug were on the
//! connector (TX to RX, RTS to CTS, DTR to DSR and DCD). The line is infinitely fast: a byte
//! written to `THR` is in the receive FIFO at once and the transmitter is always empty, so a
//! driver never waits to transmit (mtty instead holds `THRE` until the byte is read back, which
//! stalls the 8250 driver's polled console writes). A byte received into a full FIFO is lost;
//! without the FIFO it replaces the unread one. Either way it flags an overrun. With
//! `MCR[LOOP]` set, the modem outputs loop back inside the chip instead, as on a 16550 (RTS to
//! CTS, DTR to DSR, OUT1 to RI, OUT2 to DCD), which is what the 8250 driver's loopback probe
//! looks for.
//!
//! Interrupts are level conditions, each enabled by its `IER` bit; [`Uart::pending`] gives them.
//! The device signals an interrupt when an access makes a condition pending that was not: data
//! received (the FIFO reaching its trigger level, or below it the character timeout, which on
//! this line has always elapsed), an overrun, the transmitter becoming empty (after each byte,
//! or when its interrupt is enabled), a modem input changing. Those are the events mtty
//! signals.

/// Depth of the FIFO.
const FIFO_SIZE: usize = 16;

// Registers, by offset in BAR0.
const RBR_THR: usize = 0; // with LCR[DLAB]: divisor latch, low byte
const IER: usize = 1; // with LCR[DLAB]: divisor latch, high byte
const IIR_FCR: usize = 2;
const LCR: usize = 3;
const MCR: usize = 4;
const LSR: usize = 5;
const MSR: usize = 6;
const SCR: usize = 7;

// Interrupt enables, also the bits of `Uart::pending()`.
const IER_RDI: u8 = 0x01;
const IER_THRI: u8 = 0x02;
const IER_RLSI: u8 = 0x04;
const IER_MSI: u8 = 0x08;
const IER_MASK: u8 = 0x0f;

const IIR_NO_INT: u8 = 0x01;
const IIR_MSI: u8 = 0x00;
const IIR_THRI: u8 = 0x02;
const IIR_RDI: u8 = 0x04;
const IIR_RLSI: u8 = 0x06;
const IIR_RX_TIMEOUT: u8 = 0x0c;
const IIR_FIFOS_ENABLED: u8 = 0xc0;

const FCR_ENABLE_FIFO: u8 = 0x01;
const FCR_CLEAR_RCVR: u8 = 0x02;
const FCR_TRIGGER_SHIFT: u8 = 6;
/// Receive FIFO trigger levels, by `FCR[7:6]`.
const TRIGGER_LEVELS: [usize; 4] = [1, 4, 8, 14];

const LCR_DLAB: u8 = 0x80;

const MCR_DTR: u8 = 0x01;
const MCR_RTS: u8 = 0x02;
const MCR_OUT1: u8 = 0x04;
const MCR_OUT2: u8 = 0x08;
const MCR_LOOP: u8 = 0x10;
const MCR_MASK: u8 = 0x1f;

const LSR_DR: u8 = 0x01;
const LSR_OE: u8 = 0x02;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;

const MSR_DCTS: u8 = 0x01;
const MSR_DDSR: u8 = 0x02;
const MSR_TERI: u8 = 0x04;
const MSR_DDCD: u8 = 0x08;
const MSR_DELTAS: u8 = 0x0f;
const MSR_CTS: u8 = 0x10;
const MSR_DSR: u8 = 0x20;
const MSR_RI: u8 = 0x40;
const MSR_DCD: u8 = 0x80;

/// The state of the port: registers, divisor latch and FIFO.
///
/// # Invariants
///
/// `len <= self.capacity()` and `head < FIFO_SIZE`; `ier`, `mcr` and `fcr` hold only their
/// defined bits.
#[derive(Clone)]
pub(crate) struct Uart {
    fifo: [u8; FIFO_SIZE],
    /// Index of the oldest byte in `fifo`.
    head: usize,
    /// Number of bytes in `fifo`.
    len: usize,
    /// A byte was lost since `LSR` was last read.
    overrun: bool,
    /// The transmitter-empty interrupt: set when the transmitter empties, cleared when `IIR`
    /// reports it.
    thre_interrupt: bool,
    divisor: u16,
    ier: u8,
    /// `FCR` as written: FIFO enable and trigger level; the clear bits self-clear.
    fcr: u8,
    lcr: u8,
    mcr: u8,
    /// Modem status: the inputs, and what changed since `MSR` was last read.
    msr: u8,
    scr: u8,
}

impl Uart {
    /// The port at power-on: FIFO off and empty, interrupts disabled, modem outputs low.
    pub(crate) const fn new() -> Self {
        // INVARIANT: Empty FIFO, all registers zero.
        Self {
            fifo: [0; FIFO_SIZE],
            head: 0,
            len: 0,
            overrun: false,
            thre_interrupt: false,
            divisor: 0,
            ier: 0,
            fcr: 0,
            lcr: 0,
            mcr: 0,
            msr: 0,
            scr: 0,
        }
    }

    fn fifo_enabled(&self) -> bool {
        self.fcr & FCR_ENABLE_FIFO != 0
    }

    /// 16 bytes with the FIFO enabled, one (a 16450's holding register) without.
    fn capacity(&self) -> usize {
        if self.fifo_enabled() {
            FIFO_SIZE
        } else {
            1
        }
    }

    fn trigger_level(&self) -> usize {
        if self.fifo_enabled() {
            TRIGGER_LEVELS[usize::from(self.fcr >> FCR_TRIGGER_SHIFT)]
        } else {
            1
        }
    }

    fn dlab(&self) -> bool {
        self.lcr & LCR_DLAB != 0
    }

    /// The interrupt conditions that are enabled and true, as `IER` bits.
    pub(crate) fn pending(&self) -> u8 {
        let mut conditions = 0;
        if self.overrun {
            conditions |= IER_RLSI;
        }
        if self.len > 0 {
            conditions |= IER_RDI;
        }
        if self.thre_interrupt {
            conditions |= IER_THRI;
        }
        if self.msr & MSR_DELTAS != 0 {
            conditions |= IER_MSI;
        }
        conditions & self.ier
    }

    /// `IIR`: the pending interrupt of highest priority, and whether the FIFOs are enabled.
    /// Reporting the transmitter-empty interrupt clears it.
    fn iir(&mut self) -> u8 {
        let pending = self.pending();
        let id = if pending & IER_RLSI != 0 {
            IIR_RLSI
        } else if pending & IER_RDI != 0 && self.len >= self.trigger_level() {
            IIR_RDI
        } else if pending & IER_RDI != 0 {
            IIR_RX_TIMEOUT
        } else if pending & IER_THRI != 0 {
            self.thre_interrupt = false;
            IIR_THRI
        } else if pending & IER_MSI != 0 {
            IIR_MSI
        } else {
            IIR_NO_INT
        };
        if self.fifo_enabled() {
            id | IIR_FIFOS_ENABLED
        } else {
            id
        }
    }

    fn lsr(&self) -> u8 {
        let mut lsr = LSR_THRE | LSR_TEMT;
        if self.len > 0 {
            lsr |= LSR_DR;
        }
        if self.overrun {
            lsr |= LSR_OE;
        }
        lsr
    }

    /// Sends `byte`, which the loopback receives at once.
    fn transmit(&mut self, byte: u8) {
        if self.len < self.capacity() {
            self.fifo[(self.head + self.len) % FIFO_SIZE] = byte;
            self.len += 1;
        } else if self.fifo_enabled() {
            self.overrun = true;
        } else {
            self.fifo[self.head] = byte;
            self.overrun = true;
        }
        self.thre_interrupt = true;
    }

    fn receive(&mut self) -> u8 {
        if self.len == 0 {
            return 0;
        }
        let byte = self.fifo[self.head];
        self.head = (self.head + 1) % FIFO_SIZE;
        self.len -= 1;
        byte
    }

    fn clear_fifo(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    fn write_fcr(&mut self, value: u8) {
        let fcr = value & (FCR_ENABLE_FIFO | 3 << FCR_TRIGGER_SHIFT);
        // Switching the FIFO on or off empties it. The transmit FIFO is always empty, so
        // clearing it changes nothing.
        if (fcr ^ self.fcr) & FCR_ENABLE_FIFO != 0 || value & FCR_CLEAR_RCVR != 0 {
            self.clear_fifo();
        }
        self.fcr = fcr;
    }

    fn write_mcr(&mut self, value: u8) {
        self.mcr = value & MCR_MASK;
        let old = self.msr;
        let new = modem_inputs(self.mcr);
        let changed = old ^ new;
        let mut deltas = old & MSR_DELTAS;
        if changed & MSR_CTS != 0 {
            deltas |= MSR_DCTS;
        }
        if changed & MSR_DSR != 0 {
            deltas |= MSR_DDSR;
        }
        // Ring is signalled on its trailing edge only.
        if old & MSR_RI != 0 && new & MSR_RI == 0 {
            deltas |= MSR_TERI;
        }
        if changed & MSR_DCD != 0 {
            deltas |= MSR_DDCD;
        }
        self.msr = new | deltas;
    }

    /// Reads register `reg`, with its side effects: a read of `RBR` takes a byte from the FIFO,
    /// of `LSR` clears the overrun, of `MSR` clears the deltas.
    pub(crate) fn read(&mut self, reg: usize) -> u8 {
        match reg {
            RBR_THR if self.dlab() => self.divisor.to_le_bytes()[0],
            RBR_THR => self.receive(),
            IER if self.dlab() => self.divisor.to_le_bytes()[1],
            IER => self.ier,
            IIR_FCR => self.iir(),
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => {
                let lsr = self.lsr();
                self.overrun = false;
                lsr
            }
            MSR => {
                let msr = self.msr;
                self.msr &= !MSR_DELTAS;
                msr
            }
            SCR => self.scr,
            _ => 0xff,
        }
    }

    /// Writes `value` to register `reg`. `LSR` and `MSR` are read-only.
    pub(crate) fn write(&mut self, reg: usize, value: u8) {
        match reg {
            RBR_THR if self.dlab() => self.divisor = self.divisor & 0xff00 | u16::from(value),
            RBR_THR => self.transmit(value),
            IER if self.dlab() => self.divisor = self.divisor & 0x00ff | u16::from(value) << 8,
            IER => {
                // Enabling the transmitter interrupt raises it: the transmitter is empty.
                if value & !self.ier & IER_THRI != 0 {
                    self.thre_interrupt = true;
                }
                self.ier = value & IER_MASK;
            }
            IIR_FCR => self.write_fcr(value),
            LCR => self.lcr = value,
            MCR => self.write_mcr(value),
            SCR => self.scr = value,
            _ => {}
        }
    }
}

/// Size of a port's saved state ([`Uart::save`]).
pub(crate) const SAVED_SIZE: usize = 28;

/// Why a saved state cannot be loaded; the log line's reason.
pub(crate) enum LoadRefusal {
    Fifo(u8),
    FifoTail,
    ModemInputs(u8),
    Flag(&'static str, u8),
    Register(&'static str, u8),
}

// `core`'s `Display`: the stream's refusal, which the log line shows, includes this one.
impl core::fmt::Display for LoadRefusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Fifo(len) => write!(f, "{len} bytes in the FIFO, more than it holds"),
            Self::FifoTail => write!(f, "bytes past the FIFO's count are not 0"),
            Self::ModemInputs(msr) => write!(f, "MSR {msr:#04x} does not follow MCR's outputs"),
            Self::Flag(name, value) => write!(f, "{name} is {value}, not 0 or 1"),
            Self::Register(name, value) => write!(f, "{name} {value:#04x} has undefined bits"),
        }
    }
}

impl Uart {
    /// The port's state, everything a reader of its registers can observe: the FIFO's bytes
    /// from the oldest on, the pending conditions, the registers and the divisor latch. The
    /// layout is the UART record's of `migration-stream.md`.
    pub(crate) fn save(&self) -> [u8; SAVED_SIZE] {
        let mut saved = [0; SAVED_SIZE];
        // CAST: At most `FIFO_SIZE` bytes, by the type invariant.
        saved[0] = self.len as u8;
        for (i, byte) in saved[1..=FIFO_SIZE].iter_mut().take(self.len).enumerate() {
            *byte = self.fifo[(self.head + i) % FIFO_SIZE];
        }
        saved[17] = u8::from(self.overrun);
        saved[18] = u8::from(self.thre_interrupt);
        saved[19] = self.ier;
        saved[20] = self.fcr;
        saved[21] = self.lcr;
        saved[22] = self.mcr;
        saved[23] = self.msr;
        saved[24] = self.scr;
        saved[26..28].copy_from_slice(&self.divisor.to_le_bytes());
        saved
    }

    /// The port [`Uart::save`] saved as `saved`, if it is one a port can be in.
    pub(crate) fn load(saved: &[u8; SAVED_SIZE]) -> Result<Self, LoadRefusal> {
        let flag = |name, value: u8| match value {
            0 | 1 => Ok(value == 1),
            _ => Err(LoadRefusal::Flag(name, value)),
        };
        let register = |name, value: u8, mask: u8| {
            if value & !mask == 0 {
                Ok(value)
            } else {
                Err(LoadRefusal::Register(name, value))
            }
        };
        let mut uart = Self {
            overrun: flag("overrun", saved[17])?,
            thre_interrupt: flag("transmitter interrupt", saved[18])?,
            ier: register("IER", saved[19], IER_MASK)?,
            fcr: register("FCR", saved[20], FCR_ENABLE_FIFO | 3 << FCR_TRIGGER_SHIFT)?,
            lcr: saved[21],
            mcr: register("MCR", saved[22], MCR_MASK)?,
            msr: saved[23],
            scr: saved[24],
            divisor: u16::from_le_bytes([saved[26], saved[27]]),
            ..Self::new()
        };
        register("reserved byte", saved[25], 0)?;
        let len = usize::from(saved[0]);
        if len > uart.capacity() {
            return Err(LoadRefusal::Fifo(saved[0]));
        }
        if saved[1 + len..=FIFO_SIZE].iter().any(|&byte| byte != 0) {
            return Err(LoadRefusal::FifoTail);
        }
        // The inputs are wired to the outputs; only the deltas are state of their own.
        if uart.msr & !MSR_DELTAS != modem_inputs(uart.mcr) {
            return Err(LoadRefusal::ModemInputs(uart.msr));
        }
        // INVARIANT: `len` fits the capacity of the loaded FCR, `head` is 0, and the registers
        // hold only their defined bits.
        uart.fifo[..len].copy_from_slice(&saved[1..=len]);
        uart.len = len;
        Ok(uart)
    }
}

/// The modem inputs (`MSR[7:4]`) that the modem outputs `mcr` produce.
fn modem_inputs(mcr: u8) -> u8 {
    let mut inputs = 0;
    if mcr & MCR_RTS != 0 {
        inputs |= MSR_CTS;
    }
    if mcr & MCR_DTR != 0 {
        inputs |= MSR_DSR;
    }
    if mcr & MCR_LOOP != 0 {
        if mcr & MCR_OUT1 != 0 {
            inputs |= MSR_RI;
        }
        if mcr & MCR_OUT2 != 0 {
            inputs |= MSR_DCD;
        }
    } else if mcr & MCR_DTR != 0 {
        // The loopback plug wires DTR to both DSR and DCD.
        inputs |= MSR_DCD;
    }
    inputs
}
