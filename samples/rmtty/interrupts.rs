// SPDX-License-Identifier: GPL-2.0

//! The device's interrupts as userspace set them up: INTx or one MSI vector, each signalled
//! through an eventfd, as mtty's.

use kernel::{
    eventfd::EventFd,
    prelude::*,
    uapi,
    vfio::{
        IrqAction,
        IrqData,
        IrqInfo,
        IrqSet, //
    },
};

const INTX: u32 = uapi::VFIO_PCI_INTX_IRQ_INDEX;
const MSI: u32 = uapi::VFIO_PCI_MSI_IRQ_INDEX;

/// What the device has at interrupt index `index` of the vfio-pci API: INTx, level-triggered,
/// maskable and masked by the device when signalled; one MSI vector; nothing else.
pub(crate) fn info(index: u32) -> Result<IrqInfo> {
    match index {
        INTX => Ok(IrqInfo {
            flags: uapi::VFIO_IRQ_INFO_EVENTFD
                | uapi::VFIO_IRQ_INFO_MASKABLE
                | uapi::VFIO_IRQ_INFO_AUTOMASKED,
            count: 1,
        }),
        MSI => Ok(IrqInfo {
            flags: uapi::VFIO_IRQ_INFO_EVENTFD | uapi::VFIO_IRQ_INFO_NORESIZE,
            count: 1,
        }),
        _ if index < uapi::VFIO_PCI_NUM_IRQS => Ok(IrqInfo::NONE),
        _ => Err(EINVAL),
    }
}

/// How the device signals its interrupt.
pub(crate) enum Interrupts {
    /// Not at all.
    None,
    /// Through INTx, which the device masks when it signals it, until userspace unmasks it.
    Intx { eventfd: EventFd, masked: bool },
    /// Through the MSI vector.
    Msi { eventfd: EventFd },
}

impl Interrupts {
    /// Signals the interrupt, unless INTx is masked.
    pub(crate) fn signal(&mut self) {
        match self {
            Self::None | Self::Intx { masked: true, .. } => {}
            Self::Intx { eventfd, masked } => {
                eventfd.signal();
                *masked = true;
            }
            Self::Msi { eventfd } => eventfd.signal(),
        }
    }

    fn index(&self) -> Option<u32> {
        match self {
            Self::None => None,
            Self::Intx { .. } => Some(INTX),
            Self::Msi { .. } => Some(MSI),
        }
    }

    /// Applies `set`, a request [`info`] has checked: one vector of INTx or MSI, or none.
    ///
    /// Only one of the two can be set up at a time. `pending` tells whether the device has an
    /// interrupt pending, which unmasking INTx signals again, as a level-triggered line would.
    /// A request that cannot apply fails with `EINVAL` and changes nothing.
    pub(crate) fn set(&mut self, set: IrqSet, pending: impl FnOnce() -> bool) -> Result {
        let active = self.index() == Some(set.index);
        // The vector, if the request names it: always for data, for no data if `count` is 1.
        let applies = match &set.data {
            IrqData::None => set.count == 1,
            IrqData::Bool(flags) => flags.first() == Some(&true),
            IrqData::EventFd(_) => true,
        };
        match (set.action, set.data) {
            // Tearing down the index, which needs no vector.
            (IrqAction::Trigger, IrqData::None) if set.count == 0 => {
                if active {
                    *self = Self::None;
                }
            }
            (IrqAction::Trigger, IrqData::EventFd(mut eventfds)) => {
                if self.index().is_some() && !active {
                    return Err(EINVAL);
                }
                *self = match (set.index, eventfds.pop().flatten()) {
                    (_, None) => Self::None,
                    (INTX, Some(eventfd)) => Self::Intx {
                        eventfd,
                        masked: false,
                    },
                    (_, Some(eventfd)) => Self::Msi { eventfd },
                };
            }
            // A loopback trigger, as if the device had raised the interrupt.
            (IrqAction::Trigger, _) if active => {
                if applies {
                    self.signal();
                }
            }
            (IrqAction::Mask | IrqAction::Unmask, IrqData::EventFd(_)) => return Err(EINVAL),
            // Only INTx is maskable, and only while it is set up.
            (action @ (IrqAction::Mask | IrqAction::Unmask), _) => {
                let Self::Intx { masked, .. } = self else {
                    return Err(EINVAL);
                };
                if set.index != INTX || set.count != 1 {
                    return Err(EINVAL);
                }
                if applies {
                    *masked = action == IrqAction::Mask;
                    if !*masked && pending() {
                        self.signal();
                    }
                }
            }
            _ => return Err(EINVAL),
        }
        Ok(())
    }
}
