// SPDX-License-Identifier: GPL-2.0

//! Cyclic redundancy checks.
//!
//! C header: [`include/linux/crc32.h`](srctree/include/linux/crc32.h)

use crate::bindings;

/// The CRC-32C (Castagnoli) of `data`, as storage and network protocols use it: initial value and
/// final XOR all ones, so that `crc32c(b"123456789") == 0xe306_9283`.
///
/// Uses the CPU's CRC instructions where it has them.
///
/// # Examples
///
/// ```
/// use kernel::crc::crc32c;
///
/// assert_eq!(crc32c(b"123456789"), 0xe306_9283);
/// assert_eq!(crc32c(b""), 0);
/// ```
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(!0, data)
}

/// Continues the raw CRC-32C `crc` (no initial value or final XOR applied) over `data`: a
/// checksum over several pieces is `!crc32c_update(crc32c_update(!0, a), b)`.
pub fn crc32c_update(crc: u32, data: &[u8]) -> u32 {
    // SAFETY: `data` is valid for reads of its length.
    unsafe { bindings::crc32c(crc, data.as_ptr().cast(), data.len()) }
}
