// SPDX-License-Identifier: GPL-2.0

//! `rmtty-migrate`: drives an rmtty device's migration from userspace, without QEMU: saves a
//! device's state to a file, loads it into another device, and reports bytes, passes and time.
//!
//! The protocol is behind [`transport::Transport`]: the v2 protocol (`v2.rs`, the default) or
//! the v1 migration region (`v1.rs`, `--v1`). The sessions (`session.rs`) only speak through the
//! trait.

mod cli;
mod device;
mod report;
mod session;
mod stream;
mod transport;
mod v1;
mod v2;
mod workload;

#[cfg(test)]
mod tests;

use clap::Parser;
use cli::{Cli, Command, InspectArgs, LoadArgs, SaveArgs};
use report::{Operation, Report};
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::Instant;
use transport::{Error, Transport};
use vfio_bindings::bindings::vfio::VFIO_PCI_BAR2_REGION_INDEX;
use vfio_ioctls::VfioDevice;

/// The migration protocols the tool speaks, on the same open device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// The v2 data file.
    V2,
    /// The v1 migration region, its data section mapped if `mmap` (and it can be).
    V1 { mmap: bool },
}

impl Protocol {
    fn of(args: &cli::ProtocolArgs) -> Self {
        if args.v1 {
            Protocol::V1 {
                mmap: !args.no_mmap,
            }
        } else {
            Protocol::V2
        }
    }

    fn name(self) -> &'static str {
        match self {
            Protocol::V2 => "v2",
            Protocol::V1 { .. } => "v1",
        }
    }
}

/// `protocol` on `device`; a v1 one notes its region in `report`.
fn transport(
    protocol: Protocol,
    device: VfioDevice,
    report: &mut Report,
) -> Result<Box<dyn Transport>, Error> {
    match protocol {
        Protocol::V2 => Ok(Box::new(v2::V2::new(device))),
        Protocol::V1 { mmap } => {
            let t = v1::fd::open(device, mmap)?;
            report.v1 = Some(t.layout().clone());
            Ok(Box::new(t))
        }
    }
}

/// An open device with its protocol set up.
struct Opened {
    transport: Box<dyn Transport>,
    /// The device's descriptor and BAR2's offset in it, for a workload.
    fd: RawFd,
    bar2_offset: u64,
}

/// Opens the device of `args` and sets up `protocol` on it, noting the time in `report`.
fn open(args: &cli::DeviceArgs, protocol: Protocol, report: &mut Report) -> Result<Opened, Error> {
    let path = device::sysfs_path(&args.device);
    let start = Instant::now();
    let device = device::open(&path, args.front_door());
    report.phase("open", start.elapsed());
    let device = device?;
    let fd = device.as_raw_fd();
    let bar2_offset = device.get_region_offset(VFIO_PCI_BAR2_REGION_INDEX);
    let start = Instant::now();
    let transport = transport(protocol, device, report);
    if matches!(protocol, Protocol::V1 { .. }) {
        report.phase("v1 region setup", start.elapsed());
    }
    Ok(Opened {
        fd,
        bar2_offset,
        transport: transport?,
    })
}

/// Closes the device (dropping its transport), timed.
fn close(t: Box<dyn Transport>, report: &mut Report) {
    let start = Instant::now();
    drop(t);
    report.phase("close", start.elapsed());
}

fn new_report(operation: Operation, args: &cli::DeviceArgs, protocol: Protocol) -> Report {
    let path = device::sysfs_path(&args.device);
    Report::new(
        operation,
        path.display().to_string(),
        args.front_door().name(),
        protocol.name(),
    )
}

/// Prints `report` (JSON to stdout if `json_stdout`, else to stderr) and gives the exit code.
fn emit(report: &Report, json: bool, json_stdout: bool) -> ExitCode {
    // A closed stdout or stderr leaves the exit code to tell.
    let _ = if json {
        let text = report.json().to_string();
        if json_stdout {
            writeln!(io::stdout(), "{text}")
        } else {
            writeln!(io::stderr(), "{text}")
        }
    } else {
        write!(io::stderr(), "{}", report.human())
    };
    if report.error.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("rmtty-migrate: {msg}");
    ExitCode::from(2)
}

fn save(args: SaveArgs) -> ExitCode {
    if let Err(msg) = args.validate() {
        return usage_error(&msg);
    }
    let to_stdout = args.stream_to_stdout();
    if to_stdout && io::stdout().is_terminal() {
        return usage_error("the stream is binary: give -o FILE or redirect stdout");
    }
    let json_stdout = cli::json_to_stdout(to_stdout);
    let start = Instant::now();
    let protocol = Protocol::of(&args.protocol);
    let mut report = new_report(Operation::Save, &args.device, protocol);
    let fail = |mut report: Report, e: Error| {
        report.error = Some(e);
        report.total = start.elapsed();
        emit(&report, args.json, json_stdout)
    };

    // Made (and emptied) first, so that a bad FILE fails before the device is touched.
    let mut file = None;
    if !to_stdout {
        match File::create(&args.output) {
            Ok(f) => file = Some(f),
            Err(e) => return fail(report, Error::io(format!("creating {}", args.output), &e)),
        }
    }
    let opened = match open(&args.device, protocol, &mut report) {
        Ok(opened) => opened,
        Err(e) => return fail(report, e),
    };
    let mut t = opened.transport;
    let workload = args.workload.as_ref().map(|command| workload::Workload {
        command: command.clone(),
        device: device::sysfs_path(&args.device.device),
        device_fd: opened.fd,
        bar2_offset: opened.bar2_offset,
    });
    let mut run = |pass| workload.as_ref().map_or(Ok(()), |w| w.run(pass));
    let run: Option<session::Workload<'_>> = workload.is_some().then_some(&mut run);
    let opts = session::SaveOptions {
        precopy_passes: args.precopy_passes,
    };
    let mut stream = Vec::new();
    // The report keeps the session's error.
    let _ = session::save(&mut *t, &opts, run, &mut report, &mut stream);
    close(t, &mut report);

    if report.stream_complete() {
        let start = Instant::now();
        let written = match file.as_mut() {
            Some(f) => f.write_all(&stream).and_then(|()| f.flush()),
            None => {
                let mut out = io::stdout().lock();
                out.write_all(&stream).and_then(|()| out.flush())
            }
        };
        report.phase("output", start.elapsed());
        if let Err(e) = written {
            let e = Error::io(format!("writing the stream to {}", args.output), &e);
            report.error.get_or_insert(e);
        }
    }
    report.total = start.elapsed();
    emit(&report, args.json, json_stdout)
}

/// All of `input` (a file, or stdin for `-`).
fn read_input(input: &str) -> io::Result<Vec<u8>> {
    if input == "-" {
        let mut data = Vec::new();
        io::stdin().lock().read_to_end(&mut data)?;
        Ok(data)
    } else {
        std::fs::read(input)
    }
}

fn load(args: LoadArgs) -> ExitCode {
    let start = Instant::now();
    let protocol = Protocol::of(&args.protocol);
    let mut report = new_report(Operation::Load, &args.device, protocol);
    let input_start = Instant::now();
    let stream = read_input(&args.input);
    report.phase("input", input_start.elapsed());
    match stream {
        Ok(stream) => match open(&args.device, protocol, &mut report) {
            Ok(opened) => {
                let mut t = opened.transport;
                // The report keeps the session's error.
                let _ = session::load(&mut *t, &stream, &mut report);
                close(t, &mut report);
            }
            Err(e) => {
                report.stream = Some(stream::Summary::of(&stream));
                report.error = Some(e);
            }
        },
        Err(e) => report.error = Some(Error::io(format!("reading {}", args.input), &e)),
    }
    report.total = start.elapsed();
    emit(&report, args.json, true)
}

fn inspect(args: InspectArgs) -> ExitCode {
    let stream = match read_input(&args.input) {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("rmtty-migrate: {}: {e}", args.input);
            return ExitCode::from(1);
        }
    };
    let summary = stream::Summary::of(&stream);
    let complete = summary.as_ref().is_ok_and(stream::Summary::complete);
    match (&summary, args.json) {
        (Ok(s), true) => println!("{}", s.json()),
        (Ok(s), false) => println!(
            "{}: {} bytes: {s}; {}",
            args.input,
            stream.len(),
            if complete { "complete" } else { "NOT complete" }
        ),
        (Err(e), true) => println!("{}", serde_json::json!({ "error": e.to_string() })),
        (Err(e), false) => println!("{}: not an rmtty stream: {e}", args.input),
    }
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Save(args) => save(args),
        Command::Load(args) => load(args),
        Command::Inspect(args) => inspect(args),
    }
}
