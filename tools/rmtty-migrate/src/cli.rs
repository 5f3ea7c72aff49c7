// SPDX-License-Identifier: GPL-2.0

//! The command line.

use crate::device::FrontDoor;
use clap::{Args, Parser, Subcommand};

const ABOUT: &str = "Saves an rmtty device's migration state to a file and loads it into another, \
without QEMU";

const AFTER_HELP: &str = "\
The device is an mdev's UUID (under /sys/bus/mdev/devices) or its sysfs path.
It is opened through its VFIO group and a type1 container (--group, the
default) or through its iommufd cdev /dev/vfio/devices/vfioN (--cdev), and
migrated with the VFIO v2 protocol (a data file), or with --v1 through its v1
migration region (the region with a VFIO_REGION_INFO_CAP_TYPE of type 3
subtype 1; its header fields are each one pread/pwrite of their width, its
data section is mapped unless --no-mmap is given or the region cannot be
mapped, else read and written one buffer per call). The stream is the same
either way: a stream saved with one protocol loads with the other.

When a migration fails, a v1 session puts the device back to RUNNING
(device_state 001), as QEMU does when a migration is cancelled; closing the
device at exit returns its migration state machine to RUNNING in any case.

Reports: a human-readable report always goes to stderr, unless --json is
given; then one JSON object is printed instead: to stdout, except for a save
whose stream goes to stdout, where it goes to stderr.

Exit status: 0 on success, 1 if the migration failed (the report says
which step, with its errno, and the state the device was left in), 2 on a
usage error.";

const SAVE_HELP: &str = "\
Without --precopy-passes: RUNNING -> STOP_COPY, read() until it returns 0,
STOP_COPY -> STOP. With --precopy-passes N: RUNNING -> PRE_COPY first, then N
passes, each reading until read() fails with ENOMSG (nothing ready for now),
with VFIO_MIG_GET_PRECOPY_INFO's initial and dirty bytes noted at the start
of each; then PRE_COPY -> STOP_COPY as above.

--workload CMD runs `sh -c CMD` after each pre-copy pass (so also between the
last pass and STOP_COPY) and is waited for; a workload that fails fails the
save. Its stdin is /dev/null and its stdout goes to stderr. As nothing else
can open the device meanwhile, it inherits a descriptor of the open device,
through which it can write the device's regions (e.g. pwrite() to BAR2 to
dirty its pages). Its environment has:
  RMTTY_MIGRATE_PASS         the pre-copy pass just done (1..N)
  RMTTY_MIGRATE_DEVICE       the device's sysfs directory
  RMTTY_MIGRATE_DEVICE_FD    the inherited descriptor of the open device
  RMTTY_MIGRATE_BAR2_OFFSET  BAR2's offset in it (region index 2)

MIG_DATA_SIZE is read just before STOP_COPY; STOP_COPY must then produce
exactly that many bytes, else the save fails (the stream is still written).
The stream is written to FILE (or stdout) once it is whole; a failed save
writes nothing (FILE is left empty) unless the stream was read to its end.

With --v1: device_state 001 -> 011 (pre-copy) and the passes, each reading
buffers until pending_bytes is 0 (a buffer: pending_bytes, data_offset,
data_size, then its data), then -> 010 (stop-and-copy) and buffers until
pending_bytes is 0, then -> 000. Without --precopy-passes, 001 -> 010 straight.
v1 has no MIG_DATA_SIZE, so there is nothing to check the size against.";

const LOAD_HELP: &str = "\
RUNNING -> RESUMING, the stream written to the data file in writes of 1 MiB,
RESUMING -> RUNNING. The input is read whole before the device is touched.

With --v1: device_state 001 -> 100, then for each piece of the stream (the
size of the data section, whatever the pieces of the save were): read
data_offset, the bytes written there, data_size written with their count;
then 100 -> 001, which commits the stream: a failure there is the device
refusing it.";

const INSPECT_HELP: &str = "\
Describes a saved stream without a device: its header (version, shape,
CRC) and its records. Exits 0 if the stream is complete and well formed, 1 if
not.";

#[derive(Debug, Parser)]
#[command(name = "rmtty-migrate", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Save a device's migration state to FILE or stdout
    #[command(after_help = SAVE_HELP)]
    Save(SaveArgs),
    /// Load a saved migration state into a device
    #[command(after_help = LOAD_HELP)]
    Load(LoadArgs),
    /// Describe a saved stream
    #[command(after_help = INSPECT_HELP)]
    Inspect(InspectArgs),
}

/// The device and the way in.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// The mdev's UUID, or its sysfs path
    #[arg(value_name = "UUID|PATH")]
    pub device: String,
    /// Open the device through its iommufd cdev (/dev/vfio/devices/vfioN)
    #[arg(long, conflicts_with = "group")]
    pub cdev: bool,
    /// Open the device through its VFIO group and a type1 container (the default)
    #[arg(long)]
    pub group: bool,
}

impl DeviceArgs {
    /// The front door the arguments choose.
    pub fn front_door(&self) -> FrontDoor {
        if self.cdev {
            FrontDoor::Cdev
        } else {
            FrontDoor::Group
        }
    }
}

/// The migration protocol.
#[derive(Debug, Args)]
pub struct ProtocolArgs {
    /// Migrate through the v1 migration region instead of the v2 data file
    #[arg(long)]
    pub v1: bool,
    /// With --v1: move the data by pread/pwrite, not through an mmap of the data section
    #[arg(long, requires = "v1")]
    pub no_mmap: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    /// Where the stream goes; - is stdout
    #[arg(short, long, value_name = "FILE|-", default_value = "-")]
    pub output: String,
    /// Pre-copy passes before stop-and-copy
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub precopy_passes: u32,
    /// A shell command to run after each pre-copy pass
    #[arg(long, value_name = "CMD")]
    pub workload: Option<String>,
    /// Report as one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    /// Where the stream comes from; - is stdin
    #[arg(short, long, value_name = "FILE|-", default_value = "-")]
    pub input: String,
    /// Report as one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The saved stream; - is stdin
    #[arg(value_name = "FILE|-", default_value = "-")]
    pub input: String,
    /// Describe it as one JSON object
    #[arg(long)]
    pub json: bool,
}

impl SaveArgs {
    /// Checks what clap cannot: a workload needs pre-copy passes to run after.
    pub fn validate(&self) -> Result<(), String> {
        if self.workload.is_some() && self.precopy_passes == 0 {
            return Err("--workload runs after pre-copy passes: give --precopy-passes N".into());
        }
        Ok(())
    }

    /// Whether the stream goes to stdout.
    pub fn stream_to_stdout(&self) -> bool {
        self.output == "-"
    }
}

/// Where a JSON report goes: stdout, unless the stream does.
pub fn json_to_stdout(stream_on_stdout: bool) -> bool {
    !stream_on_stdout
}
