// SPDX-License-Identifier: GPL-2.0

use crate::cli::{json_to_stdout, Cli, Command};
use crate::device::{sysfs_path, FrontDoor};
use clap::{CommandFactory, Parser};
use std::path::Path;

const UUID: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";

fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    Cli::try_parse_from(std::iter::once("rmtty-migrate").chain(args.iter().copied()))
        .map(|cli| cli.command)
}

#[test]
fn the_command_line_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn save_defaults_to_the_group_stdout_and_no_pre_copy() {
    let Command::Save(a) = parse(&["save", UUID]).unwrap() else {
        panic!("not save")
    };
    assert_eq!(a.device.device, UUID);
    assert_eq!(a.device.front_door(), FrontDoor::Group);
    assert_eq!(a.output, "-");
    assert!(a.stream_to_stdout());
    assert_eq!(a.precopy_passes, 0);
    assert_eq!(a.workload, None);
    assert!(!a.json);
    assert_eq!(a.validate(), Ok(()));
}

#[test]
fn save_with_everything() {
    let Command::Save(a) = parse(&[
        "save",
        "/sys/bus/mdev/devices/x",
        "-o",
        "/tmp/s",
        "--cdev",
        "--precopy-passes",
        "3",
        "--workload",
        "echo hi >/dev/null",
        "--json",
    ])
    .unwrap() else {
        panic!("not save")
    };
    assert_eq!(a.device.front_door(), FrontDoor::Cdev);
    assert_eq!(a.output, "/tmp/s");
    assert!(!a.stream_to_stdout());
    assert_eq!(a.precopy_passes, 3);
    assert_eq!(a.workload.as_deref(), Some("echo hi >/dev/null"));
    assert!(a.json);
    assert_eq!(a.validate(), Ok(()));
    let Command::Save(a) = parse(&["save", UUID, "--output=-", "--group"]).unwrap() else {
        panic!("not save")
    };
    assert!(a.stream_to_stdout());
    assert_eq!(a.device.front_door(), FrontDoor::Group);
}

#[test]
fn a_workload_needs_pre_copy_passes() {
    let Command::Save(a) = parse(&["save", UUID, "--workload", "true"]).unwrap() else {
        panic!("not save")
    };
    assert!(a.validate().unwrap_err().contains("--precopy-passes"));
}

#[test]
fn load_takes_stdin_or_a_file() {
    let Command::Load(a) = parse(&["load", UUID]).unwrap() else {
        panic!("not load")
    };
    assert_eq!((a.input.as_str(), a.json), ("-", false));
    assert_eq!(a.device.front_door(), FrontDoor::Group);
    let Command::Load(a) = parse(&["load", UUID, "-i", "f", "--cdev", "--json"]).unwrap() else {
        panic!("not load")
    };
    assert_eq!((a.input.as_str(), a.json), ("f", true));
    assert_eq!(a.device.front_door(), FrontDoor::Cdev);
}

#[test]
fn v2_is_the_default_and_v1_maps_unless_told_not_to() {
    let Command::Save(a) = parse(&["save", UUID]).unwrap() else {
        panic!("not save")
    };
    assert!(!a.protocol.v1 && !a.protocol.no_mmap);
    let Command::Save(a) = parse(&["save", UUID, "--v1", "--precopy-passes", "2"]).unwrap() else {
        panic!("not save")
    };
    assert!(a.protocol.v1 && !a.protocol.no_mmap);
    let Command::Load(a) = parse(&["load", UUID, "--cdev", "--v1", "--no-mmap"]).unwrap() else {
        panic!("not load")
    };
    assert!(a.protocol.v1 && a.protocol.no_mmap);
    assert_eq!(a.device.front_door(), FrontDoor::Cdev);
}

#[test]
fn inspect_takes_a_file() {
    let Command::Inspect(a) = parse(&["inspect", "s.bin", "--json"]).unwrap() else {
        panic!("not inspect")
    };
    assert_eq!((a.input.as_str(), a.json), ("s.bin", true));
}

#[test]
fn bad_command_lines_are_refused() {
    use clap::error::ErrorKind;
    let kind = |args: &[&str]| parse(args).unwrap_err().kind();
    assert_eq!(
        kind(&["save", UUID, "--cdev", "--group"]),
        ErrorKind::ArgumentConflict
    );
    assert_eq!(kind(&["save"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(
        kind(&["save", UUID, "--precopy-passes", "-1"]),
        ErrorKind::UnknownArgument
    );
    assert_eq!(
        kind(&["save", UUID, "--precopy-passes", "x"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(kind(&["load", UUID, "-o", "f"]), ErrorKind::UnknownArgument);
    assert_eq!(
        kind(&["save", UUID, "--no-mmap"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(kind(&["load", UUID, "--v2"]), ErrorKind::UnknownArgument);
    assert_eq!(kind(&["migrate"]), ErrorKind::InvalidSubcommand);
    // Usage errors exit with 2.
    assert_eq!(parse(&["save"]).unwrap_err().exit_code(), 2);
}

#[test]
fn the_help_says_where_reports_go() {
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("one JSON object"), "{help}");
    assert!(help.contains("Exit status"));
    let mut cli = Cli::command();
    let save = cli.find_subcommand_mut("save").unwrap();
    let help = save.render_long_help().to_string();
    for var in [
        "RMTTY_MIGRATE_PASS",
        "RMTTY_MIGRATE_DEVICE",
        "RMTTY_MIGRATE_DEVICE_FD",
        "RMTTY_MIGRATE_BAR2_OFFSET",
    ] {
        assert!(help.contains(var), "{var}");
    }
    assert!(help.contains("pending_bytes"), "{help}");
    let load = cli.find_subcommand_mut("load").unwrap();
    let help = load.render_long_help().to_string();
    assert!(
        help.contains("--no-mmap") && help.contains("commits"),
        "{help}"
    );
}

#[test]
fn json_goes_to_stdout_unless_the_stream_does() {
    assert!(json_to_stdout(false));
    assert!(!json_to_stdout(true));
}

#[test]
fn devices_are_uuids_or_paths() {
    assert_eq!(
        sysfs_path(UUID),
        Path::new("/sys/bus/mdev/devices").join(UUID)
    );
    assert_eq!(
        sysfs_path("/sys/devices/virtual/x/y"),
        Path::new("/sys/devices/virtual/x/y")
    );
    assert_eq!(sysfs_path("./u"), Path::new("./u"));
}

#[test]
fn a_missing_device_fails_to_open() {
    let Err(e) = crate::device::open(Path::new("/nonexistent/u"), FrontDoor::Group) else {
        panic!("opened");
    };
    assert_eq!(
        e.to_string(),
        "opening /nonexistent/u through its group: no such device"
    );
}
