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

/// How the device signals its interrupt, as userspace set it up: the vfio-pci semantics.
pub(crate) enum Interrupts {
    /// Not at all.
    None,
    /// Through INTx, a level-triggered line: the device masks it when it signals it, until
    /// userspace unmasks it. Enabled even without an eventfd to signal.
    Intx {
        trigger: Option<EventFd>,
        masked: bool,
    },
    /// Through the MSI vector.
    Msi { trigger: Option<EventFd> },
}

impl Interrupts {
    /// Signals the device's interrupt, unless INTx is masked; masks INTx.
    pub(crate) fn signal(&mut self) {
        match self {
            Self::None | Self::Intx { masked: true, .. } => {}
            Self::Intx { trigger, masked } => {
                *masked = true;
                if let Some(trigger) = trigger {
                    trigger.signal();
                }
            }
            Self::Msi { trigger } => {
                if let Some(trigger) = trigger {
                    trigger.signal();
                }
            }
        }
    }

    fn index(&self) -> Option<u32> {
        match self {
            Self::None => None,
            Self::Intx { .. } => Some(INTX),
            Self::Msi { .. } => Some(MSI),
        }
    }

    /// Signals the eventfd of the set-up index whatever its mask: a loopback trigger.
    fn fire(&self) {
        if let Self::Intx {
            trigger: Some(trigger),
            ..
        }
        | Self::Msi {
            trigger: Some(trigger),
        } = self
        {
            trigger.signal();
        }
    }

    /// Applies `irqs`, a request [`info`] has checked: of INTx or MSI, one vector or none.
    ///
    /// One of the two can be set up at a time; tearing it down takes a trigger of no vectors
    /// without data. `pending` tells whether the device has an interrupt pending: enabling or
    /// unmasking INTx then signals it, as a level-triggered line would. A request that does
    /// not fit fails with `EINVAL` and changes nothing.
    pub(crate) fn set(&mut self, irqs: IrqSet, pending: impl FnOnce() -> bool) -> Result {
        let index = irqs.index();
        let active = self.index() == Some(index);
        if !active && self.index().is_some() {
            return Err(EINVAL);
        }
        let applies = match irqs.data() {
            IrqData::Bool(flags) => flags.first() == Some(&true),
            IrqData::None | IrqData::EventFd(_) => true,
        };
        match irqs.action() {
            IrqAction::Trigger if irqs.vectors().is_empty() => {
                if !active || !matches!(irqs.data(), IrqData::None) {
                    return Err(EINVAL);
                }
                *self = Self::None;
            }
            IrqAction::Trigger => match irqs.into_data() {
                IrqData::EventFd(mut eventfds) => {
                    let new = eventfds.pop().flatten();
                    match self {
                        Self::Intx { trigger, .. } | Self::Msi { trigger } => *trigger = new,
                        Self::None if index == INTX => {
                            *self = Self::Intx {
                                trigger: new,
                                masked: false,
                            };
                            if pending() {
                                self.signal();
                            }
                        }
                        Self::None => *self = Self::Msi { trigger: new },
                    }
                }
                _ if !active => return Err(EINVAL),
                _ if applies => self.fire(),
                _ => {}
            },
            // Only INTx is maskable (the abstraction refuses the others), and only while set up.
            action @ (IrqAction::Mask | IrqAction::Unmask) => {
                let Self::Intx { masked, .. } = self else {
                    return Err(EINVAL);
                };
                if irqs.vectors() != (0..1) {
                    return Err(EINVAL);
                }
                if applies {
                    *masked = action == IrqAction::Mask;
                    if !*masked && pending() {
                        self.signal();
                    }
                }
            }
        }
        Ok(())
    }
}
