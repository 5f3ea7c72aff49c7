// SPDX-License-Identifier: GPL-2.0

//! Eventfd contexts.
//!
//! An eventfd is a counter behind a file descriptor: userspace waits on it, the kernel signals it.
//! Drivers that notify userspace of events (a VFIO device's interrupts, for instance) take the
//! context of a descriptor userspace passed in and signal it.
//!
//! C header: [`include/linux/eventfd.h`](srctree/include/linux/eventfd.h)

use crate::{
    bindings,
    error::from_err_ptr,
    prelude::*, //
};
use core::{
    fmt,
    ptr::NonNull, //
};

/// A reference to the context of an eventfd.
///
/// The context stays valid while this reference lives, even if userspace closes the descriptor it
/// came from.
///
/// # Examples
///
/// A descriptor that userspace passed in a request: a reference to its context is taken, and the
/// kernel signals it later, from any context:
///
/// ```
/// use kernel::{eventfd::EventFd, prelude::*};
///
/// fn trigger_on(fd: i32) -> Result<EventFd> {
///     let trigger = EventFd::from_fd(fd)?;
///     trigger.signal();
///     Ok(trigger)
/// }
///
/// // Not a descriptor the current task has open.
/// assert_eq!(trigger_on(-1).err(), Some(EBADF));
/// ```
///
/// # Invariants
///
/// `self.0` points to a valid `struct eventfd_ctx`, of which this object owns one reference.
pub struct EventFd(NonNull<bindings::eventfd_ctx>);

// SAFETY: The reference may be put on any thread: the context's reference count is atomic.
unsafe impl Send for EventFd {}

// SAFETY: `&EventFd` only allows signalling, which the context's wait queue lock serializes.
unsafe impl Sync for EventFd {}

impl EventFd {
    /// Takes a reference to the context of the current task's file descriptor `fd`.
    ///
    /// Fails with `EBADF` if `fd` is not open and with `EINVAL` if it is not an eventfd.
    #[inline]
    pub fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: Any descriptor value may be passed; the function looks it up.
        let ctx = from_err_ptr(unsafe { bindings::eventfd_ctx_fdget(fd) })?;
        // INVARIANT: On success, `eventfd_ctx_fdget()` returns a context with a new reference.
        NonNull::new(ctx).map(Self).ok_or(EINVAL)
    }

    /// Adds one to the counter, waking up whoever waits on the eventfd.
    ///
    /// May be called in atomic context. A signal from within the wake-up of another eventfd
    /// (see `eventfd_signal_allowed()`) is dropped with a warning, since it could recurse.
    #[inline]
    pub fn signal(&self) {
        // SAFETY: By the type invariant the context is valid.
        unsafe { bindings::eventfd_signal_mask(self.0.as_ptr(), 0) }
    }
}

impl fmt::Debug for EventFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventFd { .. }")
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own a reference to the context; this releases it.
        unsafe { bindings::eventfd_ctx_put(self.0.as_ptr()) }
    }
}
