// SPDX-License-Identifier: GPL-2.0

//! The pool of units that all devices of the parent share.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
};

/// The parent's units: `total` of them, `free` not reserved by any device.
#[pin_data]
pub(crate) struct Pool {
    total: u32,
    #[pin]
    free: Mutex<u32>,
}

impl Pool {
    /// A pool of `total` free units.
    pub(crate) fn new(total: u32) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                free <- new_mutex!(total),
                total,
            }),
            GFP_KERNEL,
        )
    }

    /// The size of the pool.
    pub(crate) fn total(&self) -> u32 {
        self.total
    }

    /// How many units are not reserved.
    pub(crate) fn free(&self) -> u32 {
        *self.free.lock()
    }

    /// Reserves `units`, or fails with `ENOSPC` if fewer are free.
    pub(crate) fn reserve(self: &Arc<Self>, units: u32) -> Result<Reservation> {
        let mut free = self.free.lock();
        *free = free.checked_sub(units).ok_or(ENOSPC)?;
        Ok(Reservation {
            pool: self.clone(),
            units,
        })
    }
}

/// Units reserved from a [`Pool`], returned to it on drop.
pub(crate) struct Reservation {
    pool: Arc<Pool>,
    units: u32,
}

impl Reservation {
    /// How many units are reserved.
    pub(crate) fn units(&self) -> u32 {
        self.units
    }

    /// Grows or shrinks the reservation to `units`; fails with `ENOSPC`, changing nothing, if
    /// the pool has too few free units to grow it.
    pub(crate) fn resize(&mut self, units: u32) -> Result {
        let mut free = self.pool.free.lock();
        if units > self.units {
            *free = free.checked_sub(units - self.units).ok_or(ENOSPC)?;
        } else {
            *free += self.units - units;
        }
        self.units = units;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        *self.pool.free.lock() += self.units;
    }
}
