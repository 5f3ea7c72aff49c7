// SPDX-License-Identifier: GPL-2.0

//! Unit tests: what runs on the host, without a device. The sessions run against [`mock::Mock`],
//! a transport that plays a device's part from a script, and over the v1 transport on
//! [`v1sim::Sim`], a v1 migration region played in memory.

mod cli;
mod mock;
mod report;
mod session;
mod stream;
mod uapi;
mod v1;
mod v1_region;
mod v1sim;
mod workload;
