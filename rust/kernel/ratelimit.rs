// SPDX-License-Identifier: GPL-2.0

//! Rate limits, for messages that userspace can trigger at will.
//!
//! C header: [`include/linux/ratelimit.h`](srctree/include/linux/ratelimit.h)

use crate::{
    bindings,
    prelude::*,
    types::Opaque, //
};

/// A rate limit with the kernel's defaults: at most 10 events in 5 seconds.
///
/// Once an interval is over, the next event that asks logs how many were refused in it, as
/// "`name`: N callbacks suppressed".
///
/// # Invariants
///
/// `state` was initialized by `ratelimit_default_init()`.
///
/// # Examples
///
/// ```
/// use kernel::{device::Device, ratelimit::RateLimit};
///
/// fn refused(dev: &Device, refusals: &RateLimit, err: Error) {
///     if refusals.allow() {
///         dev_warn!(dev, "request refused: {err:?}\n");
///     }
/// }
/// ```
#[pin_data]
pub struct RateLimit {
    #[pin]
    state: Opaque<bindings::ratelimit_state>,
    name: &'static CStr,
}

// SAFETY: The state is only used through `___ratelimit()`, which may be called from any thread.
unsafe impl Send for RateLimit {}

// SAFETY: `___ratelimit()` serializes concurrent callers with the state's lock and atomics.
unsafe impl Sync for RateLimit {}

impl RateLimit {
    /// A rate limit whose suppression reports are prefixed with `name`.
    #[inline]
    pub fn new(name: &'static CStr) -> impl PinInit<Self> {
        pin_init!(Self {
            // INVARIANT: Initialized here.
            // SAFETY: `slot` is valid for writes; the state needs no cleanup, since it owns no
            // resources and its lock is never held when it is dropped.
            state <- Opaque::ffi_init(|slot| unsafe { bindings::ratelimit_default_init(slot) }),
            name,
        })
    }

    /// Returns whether one more event is allowed now, counting it; an event that is not is
    /// counted as suppressed.
    #[inline]
    pub fn allow(&self) -> bool {
        // SAFETY: By the type invariant `state` is initialized; `name` is a static C string.
        unsafe { bindings::___ratelimit(self.state.get(), self.name.as_char_ptr()) != 0 }
    }
}
