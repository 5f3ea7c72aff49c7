// SPDX-License-Identifier: GPL-2.0

//! `migration_version`: what a device's migration stream needs of its target.
//!
//! The string (`samples/rmtty/migration-version.md` has the full rules) is one line of ASCII:
//!
//! ```text
//! rmtty 1.1 ports=1 memory_mib=4 unit_mib=1
//! rmtty 1.1 ports=1 memory_mib=2 unit_mib=1 max_aggregation=8      (type node)
//! ```
//!
//! the driver, the stream format version, the device's shape (ports and total device memory) and
//! the parent's unit size; a type node adds the largest aggregation of the type. A target accepts
//! a source of the same driver and stream major version, no newer minor version than the one it
//! reads, and the same shape; a type node accepts it if some aggregation of the type has that
//! shape. The unit size is information for management tools: shapes are compared in MiB.
//!
//! A device writes and reads the stream version of its `stream_version` attribute ([`Stream`]):
//! 1.1 unless it was asked for 1.0, so that an older driver can take its stream. A type node
//! states what a new device writes and reads, 1.1.

use crate::decimal;
use core::fmt::{self, Write};
use kernel::str::Formatter;

const DRIVER: &[u8] = b"rmtty";

/// A stream format version this driver writes and reads; a device has one (its
/// `stream_version` attribute) and writes and accepts that version.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stream {
    /// The first version: no summary record.
    V1_0,
    /// A summary record before the end record; what a device writes unless asked for 1.0.
    V1_1,
}

impl Stream {
    /// The stream's major version, the same for every version here.
    pub(crate) const MAJOR: u32 = 1;
    /// What a new device writes and reads.
    pub(crate) const LATEST: Self = Self::V1_1;

    /// The minor version.
    pub(crate) fn minor(self) -> u32 {
        match self {
            Self::V1_0 => 0,
            Self::V1_1 => 1,
        }
    }

    /// The version `input` names, `1.0` or `1.1` with an optional trailing newline.
    pub(crate) fn parse(input: &[u8]) -> Option<Self> {
        match input.strip_suffix(b"\n").unwrap_or(input) {
            b"1.0" => Some(Self::V1_0),
            b"1.1" => Some(Self::V1_1),
            _ => None,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", Self::MAJOR, self.minor())
    }
}

/// The longest string a write may carry, newline included.
pub(crate) const MAX_LEN: usize = 1024;

/// What a migration stream needs of the device that loads it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) ports: u32,
    pub(crate) memory_mib: u32,
}

/// Why a written string was refused; its [`kernel::fmt::Display`] is the log line's reason.
pub(crate) enum Refusal {
    TooLong(usize),
    NotAscii,
    Malformed(&'static str),
    Driver,
    Major(u32),
    /// A source's minor version, newer than the target's version.
    NewerMinor(u32, Stream),
    Shape(Shape, Shape),
    NoAggregation {
        source: Shape,
        type_shape: Shape,
        max: u32,
    },
}

impl kernel::fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let major = Stream::MAJOR;
        match self {
            Self::TooLong(len) => write!(f, "{len} bytes, more than {MAX_LEN}"),
            Self::NotAscii => write!(f, "not printable ASCII"),
            Self::Malformed(what) => write!(f, "malformed: {what}"),
            Self::Driver => write!(f, "not an rmtty device"),
            Self::Major(m) => write!(f, "stream major version {m}, this driver reads {major}"),
            Self::NewerMinor(m, target) => {
                write!(f, "stream minor version {m} is newer than {target}")
            }
            Self::Shape(source, target) => write!(
                f,
                "shape ports={} memory_mib={} differs from this device's ports={} memory_mib={}",
                source.ports, source.memory_mib, target.ports, target.memory_mib
            ),
            Self::NoAggregation {
                source,
                type_shape,
                max,
            } => write!(
                f,
                "no aggregation 1..={max} of ports={} memory_mib={} gives ports={} memory_mib={}",
                type_shape.ports, type_shape.memory_mib, source.ports, source.memory_mib
            ),
        }
    }
}

/// Writes the string of a device of `shape` that writes `stream`, on a parent with units of
/// `unit_mib` MiB.
pub(crate) fn write_device(
    f: &mut Formatter<'_>,
    shape: Shape,
    stream: Stream,
    unit_mib: u32,
) -> fmt::Result {
    writeln!(
        f,
        "rmtty {stream} ports={} memory_mib={} unit_mib={unit_mib}",
        shape.ports, shape.memory_mib
    )
}

/// Writes the string of a type whose devices have `shape` at aggregation 1 and can be
/// aggregated up to `max` times: the version is what a new device writes and reads.
pub(crate) fn write_type(
    f: &mut Formatter<'_>,
    shape: Shape,
    unit_mib: u32,
    max: u32,
) -> fmt::Result {
    writeln!(
        f,
        "rmtty {} ports={} memory_mib={} unit_mib={unit_mib} max_aggregation={max}",
        Stream::LATEST,
        shape.ports,
        shape.memory_mib
    )
}

/// Whether a device of `target` shape that reads `stream` accepts the stream of the device
/// `input` describes.
pub(crate) fn check_device(input: &[u8], target: Shape, stream: Stream) -> Result<(), Refusal> {
    let source = parse(input, stream)?;
    if source == target {
        Ok(())
    } else {
        Err(Refusal::Shape(source, target))
    }
}

/// Whether some aggregation `1..=max` of a type with `type_shape` at aggregation 1 accepts the
/// stream of the device `input` describes, read as a new device reads it.
pub(crate) fn check_type(input: &[u8], type_shape: Shape, max: u32) -> Result<(), Refusal> {
    let source = parse(input, Stream::LATEST)?;
    let memory = type_shape.memory_mib;
    let aggregation = source.memory_mib.checked_div(memory).unwrap_or(0);
    if source.ports == type_shape.ports
        && source.memory_mib.checked_rem(memory) == Some(0)
        && (1..=max).contains(&aggregation)
    {
        Ok(())
    } else {
        Err(Refusal::NoAggregation {
            source,
            type_shape,
            max,
        })
    }
}

/// Parses a written string into the shape of its device, checking driver and version against a
/// reader of `stream`.
fn parse(input: &[u8], stream: Stream) -> Result<Shape, Refusal> {
    if input.len() > MAX_LEN {
        return Err(Refusal::TooLong(input.len()));
    }
    let line = input.strip_suffix(b"\n").unwrap_or(input);
    if !line.iter().all(|c| (b' '..=b'~').contains(c)) {
        return Err(Refusal::NotAscii);
    }

    let mut tokens = line.split(|&c| c == b' ');
    if tokens.next() != Some(DRIVER) {
        return Err(Refusal::Driver);
    }
    let (major, minor) = tokens
        .next()
        .and_then(|v| {
            let dot = v.iter().position(|&c| c == b'.')?;
            Some((decimal(&v[..dot])?, decimal(&v[dot + 1..])?))
        })
        .ok_or(Refusal::Malformed("version is not <major>.<minor>"))?;
    if major != Stream::MAJOR {
        return Err(Refusal::Major(major));
    }
    if minor > stream.minor() {
        return Err(Refusal::NewerMinor(minor, stream));
    }

    // ports, memory_mib, unit_mib, max_aggregation; each at most once.
    let mut fields: [Option<u32>; 4] = [None; 4];
    for token in tokens {
        let eq = token
            .iter()
            .position(|&c| c == b'=')
            .ok_or(Refusal::Malformed("expected key=value"))?;
        let slot = match &token[..eq] {
            b"ports" => 0,
            b"memory_mib" => 1,
            b"unit_mib" => 2,
            b"max_aggregation" => 3,
            _ => return Err(Refusal::Malformed("unknown key")),
        };
        if fields[slot].is_some() {
            return Err(Refusal::Malformed("repeated key"));
        }
        match decimal(&token[eq + 1..]) {
            Some(value) if value > 0 => fields[slot] = Some(value),
            _ => {
                return Err(Refusal::Malformed(
                    "value is not a number from 1 to 999999999",
                ))
            }
        }
    }
    match fields {
        [Some(ports), Some(memory_mib), Some(_), _] => Ok(Shape { ports, memory_mib }),
        _ => Err(Refusal::Malformed(
            "ports, memory_mib and unit_mib are required",
        )),
    }
}
