// SPDX-License-Identifier: GPL-2.0

//! `rmtty-compat`: predicts rmtty's `migration_version` verdicts and plans migration targets.

use rmtty_compat::{plan, plan_as_1_0, Verdict, Version, STREAM_VERSION_HINT};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: rmtty-compat check SOURCE TARGET
       rmtty-compat plan SOURCE --parent DIR [--mdevctl-json]

SOURCE and TARGET are migration_version strings, or @FILE to read one from a
file (e.g. @/sys/bus/mdev/devices/<uuid>/migration_version). A TARGET with
max_aggregation= is a type node's string.

check: prints the verdict the target would give to a write of SOURCE;
       exits 0 if compatible, 1 if not, 2 on usage errors. With SOURCE -,
       reads NUL-terminated sources from stdin and prints one verdict line
       for each; exits 0 unless there is a usage error. A source newer than
       a 1.0 target gets the hint to write 1.0 to its stream_version.
plan:  lists the types of the parent at DIR (e.g. /sys/class/mdev_bus/rmtty)
       that can host a compatible target, best first; --mdevctl-json prints
       the mdevctl JSON that creates it on the best one. Exits 1 if none,
       saying whether the source's stream_version set to 1.0 would help.";

fn read_arg(arg: &str) -> Result<Vec<u8>, String> {
    match arg.strip_prefix('@') {
        Some(path) => std::fs::read(path).map_err(|e| format!("{path}: {e}")),
        None => Ok(arg.as_bytes().to_vec()),
    }
}

/// Prints the verdict of `target` on `source`; returns whether it is compatible.
fn print_verdict(target: &Version, source: &[u8]) -> bool {
    match target.verdict(source) {
        Verdict::Compatible { aggregation: None } => println!("compatible"),
        Verdict::Compatible {
            aggregation: Some(a),
        } => println!("compatible with aggregation {a}"),
        Verdict::Incompatible(refusal) => {
            match refusal.hint() {
                Some(hint) => println!("incompatible: {refusal}; {hint}"),
                None => println!("incompatible: {refusal}"),
            }
            return false;
        }
    }
    true
}

fn check(source: &str, target: &str) -> Result<ExitCode, String> {
    let target = Version::parse(&read_arg(target)?).map_err(|e| format!("target: {e}"))?;
    if source == "-" {
        let mut sources = Vec::new();
        std::io::stdin()
            .read_to_end(&mut sources)
            .map_err(|e| format!("stdin: {e}"))?;
        for source in sources
            .strip_suffix(b"\0")
            .unwrap_or(&sources)
            .split(|&c| c == 0)
        {
            print_verdict(&target, source);
        }
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if print_verdict(&target, &read_arg(source)?) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn plan_cmd(args: &[String]) -> Result<ExitCode, String> {
    let (mut source, mut parent, mut json) = (None, None, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--parent" => parent = Some(PathBuf::from(args.next().ok_or(USAGE)?)),
            "--mdevctl-json" => json = true,
            _ if source.is_none() => source = Some(read_arg(arg)?),
            _ => return Err(USAGE.into()),
        }
    }
    let (source, parent) = (source.ok_or(USAGE)?, parent.ok_or(USAGE)?);
    let candidates = plan(&source, &parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let Some(best) = candidates.first() else {
        eprintln!(
            "no type of {} can host a compatible target",
            parent.display()
        );
        let older =
            plan_as_1_0(&source, &parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        if !older.is_empty() {
            let types: Vec<_> = older.iter().map(|c| c.mdev_type.as_str()).collect();
            eprintln!(
                "the source's stream is newer than these types read; {STREAM_VERSION_HINT} \
                 and {} can host it",
                types.join(", ")
            );
        }
        return Ok(ExitCode::from(1));
    };
    if json {
        println!("{}", best.mdevctl_json());
    } else {
        for c in &candidates {
            let free = if c.available {
                "free units now"
            } else {
                "not enough free units now"
            };
            println!("{} aggregation {} ({free})", c.mdev_type, c.aggregation);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("check") if args.len() == 3 => check(&args[1], &args[2]),
        Some("plan") => plan_cmd(&args[1..]),
        _ => Err(USAGE.into()),
    };
    result.unwrap_or_else(|e| {
        eprintln!("rmtty-compat: {e}");
        ExitCode::from(2)
    })
}
