// SPDX-License-Identifier: GPL-2.0

//! Unit tests: what runs on the host, without a device. The sessions run against [`mock::Mock`],
//! a transport that plays a device's part from a script.

mod cli;
mod mock;
mod report;
mod session;
mod stream;
mod uapi;
mod workload;
