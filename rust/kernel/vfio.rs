// SPDX-License-Identifier: GPL-2.0

//! VFIO devices.
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h)
