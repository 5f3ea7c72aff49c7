// SPDX-License-Identifier: GPL-2.0

//! Mediated devices (mdev).
//!
//! C header: [`include/linux/mdev.h`](srctree/include/linux/mdev.h)
