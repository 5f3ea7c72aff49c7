// SPDX-License-Identifier: GPL-2.0

//! Predicts the verdicts of rmtty's `migration_version` attributes from the strings alone, and
//! plans where a compatible migration target can be created.
//!
//! The format and the rules are those of `samples/rmtty/migration-version.md`: a string names the
//! driver, the stream version and the device's shape (ports and total memory); a device node
//! accepts a source of its own shape, a type node one that some aggregation of the type has.
//!
//! Both take no newer stream minor version than their own. A device's version is its
//! `stream_version` attribute (1.1, or 1.0 to migrate to an older driver); when a source is newer
//! than a 1.0 target, [`Refusal::hint`] says to write 1.0 to the source's `stream_version`.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

/// The longest string a node accepts, newline included.
pub const MAX_LEN: usize = 1024;

/// What a migration stream needs of the device that loads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Serial ports.
    pub ports: u32,
    /// Total device memory in MiB.
    pub memory_mib: u32,
}

/// A parsed `migration_version` string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Stream format major version.
    pub major: u32,
    /// Stream format minor version.
    pub minor: u32,
    /// The device's shape; for a type node, that of a device of aggregation 1.
    pub shape: Shape,
    /// The parent's unit size in MiB.
    pub unit_mib: u32,
    /// For a type node: the largest aggregation of the type.
    pub max_aggregation: Option<u32>,
}

/// Why a target refuses a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Longer than [`MAX_LEN`].
    TooLong(usize),
    /// Not printable ASCII.
    NotAscii,
    /// Not in the format; says what is wrong.
    Malformed(&'static str),
    /// Another driver's string.
    Driver,
    /// Another stream major version than the target's.
    Major { source: u32, target: u32 },
    /// A newer stream minor version than the target's.
    NewerMinor { source: u32, target: u32 },
    /// A device target of another shape.
    Shape { source: Shape, target: Shape },
    /// A type target none of whose aggregations has the source's shape.
    NoAggregation {
        source: Shape,
        target: Shape,
        max: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong(len) => write!(f, "{len} bytes, more than {MAX_LEN}"),
            Self::NotAscii => write!(f, "not printable ASCII"),
            Self::Malformed(what) => write!(f, "malformed: {what}"),
            Self::Driver => write!(f, "not an rmtty device"),
            Self::Major { source, target } => {
                write!(
                    f,
                    "stream major version {source}, the target reads {target}"
                )
            }
            Self::NewerMinor { source, target } => {
                write!(
                    f,
                    "stream minor version {source} is newer than the target's {target}"
                )
            }
            Self::Shape { source, target } => write!(
                f,
                "shape ports={} memory_mib={} differs from the target's ports={} memory_mib={}",
                source.ports, source.memory_mib, target.ports, target.memory_mib
            ),
            Self::NoAggregation {
                source,
                target,
                max,
            } => write!(
                f,
                "no aggregation 1..={max} of ports={} memory_mib={} gives ports={} memory_mib={}",
                target.ports, target.memory_mib, source.ports, source.memory_mib
            ),
        }
    }
}

impl Refusal {
    /// What would make the target accept the source, when the source can do it: a source newer
    /// than a 1.0 target can be made to write 1.0 streams.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::NewerMinor { target: 0, .. } => Some(STREAM_VERSION_HINT),
            _ => None,
        }
    }
}

/// What a source whose stream is newer than a 1.0 target's can do.
pub const STREAM_VERSION_HINT: &str = "write 1.0 to the source's stream_version";

/// A verdict the target would give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The write succeeds; for a type node, with the aggregation a compatible device needs.
    Compatible { aggregation: Option<u32> },
    /// The write fails with `EINVAL`.
    Incompatible(Refusal),
}

impl Version {
    /// Parses a string as a node would parse a write to it.
    pub fn parse(input: &[u8]) -> Result<Self, Refusal> {
        if input.len() > MAX_LEN {
            return Err(Refusal::TooLong(input.len()));
        }
        let line = input.strip_suffix(b"\n").unwrap_or(input);
        if !line.iter().all(|c| (0x20..=0x7e).contains(c)) {
            return Err(Refusal::NotAscii);
        }
        // Printable ASCII is valid UTF-8.
        let line = std::str::from_utf8(line).map_err(|_| Refusal::NotAscii)?;

        let mut fields = line.split(' ');
        if fields.next() != Some("rmtty") {
            return Err(Refusal::Driver);
        }
        let (major, minor) = fields
            .next()
            .and_then(|v| v.split_once('.'))
            .and_then(|(major, minor)| Some((number(major)?, number(minor)?)))
            .ok_or(Refusal::Malformed("version is not <major>.<minor>"))?;

        let (mut ports, mut memory_mib, mut unit_mib, mut max_aggregation) =
            (None, None, None, None);
        for field in fields {
            let (key, value) = field
                .split_once('=')
                .ok_or(Refusal::Malformed("expected key=value"))?;
            let slot = match key {
                "ports" => &mut ports,
                "memory_mib" => &mut memory_mib,
                "unit_mib" => &mut unit_mib,
                "max_aggregation" => &mut max_aggregation,
                _ => return Err(Refusal::Malformed("unknown key")),
            };
            if slot.is_some() {
                return Err(Refusal::Malformed("repeated key"));
            }
            *slot = Some(number(value).filter(|&n| n > 0).ok_or(Refusal::Malformed(
                "value is not a number from 1 to 999999999",
            ))?);
        }
        match (ports, memory_mib, unit_mib) {
            (Some(ports), Some(memory_mib), Some(unit_mib)) => Ok(Self {
                major,
                minor,
                shape: Shape { ports, memory_mib },
                unit_mib,
                max_aggregation,
            }),
            _ => Err(Refusal::Malformed(
                "ports, memory_mib and unit_mib are required",
            )),
        }
    }

    /// This string with stream minor version `minor`: what the device would read if it wrote that
    /// version.
    pub fn with_minor(&self, minor: u32) -> Self {
        Self {
            minor,
            ..self.clone()
        }
    }

    /// Whether this is a type node's string.
    pub fn is_type(&self) -> bool {
        self.max_aggregation.is_some()
    }

    /// The verdict of writing `source` to the node whose string this is.
    pub fn verdict(&self, source: &[u8]) -> Verdict {
        match self.accepts(source) {
            Ok(aggregation) => Verdict::Compatible { aggregation },
            Err(refusal) => Verdict::Incompatible(refusal),
        }
    }

    fn accepts(&self, source: &[u8]) -> Result<Option<u32>, Refusal> {
        let source = Self::parse(source)?;
        if source.major != self.major {
            return Err(Refusal::Major {
                source: source.major,
                target: self.major,
            });
        }
        if source.minor > self.minor {
            return Err(Refusal::NewerMinor {
                source: source.minor,
                target: self.minor,
            });
        }
        let (have, want) = (self.shape, source.shape);
        let Some(max) = self.max_aggregation else {
            return if want == have {
                Ok(None)
            } else {
                Err(Refusal::Shape {
                    source: want,
                    target: have,
                })
            };
        };
        let aggregation = want.memory_mib / have.memory_mib;
        if want.ports == have.ports
            && want.memory_mib % have.memory_mib == 0
            && (1..=max).contains(&aggregation)
        {
            Ok(Some(aggregation))
        } else {
            Err(Refusal::NoAggregation {
                source: want,
                target: have,
                max,
            })
        }
    }
}

/// The string as a node reads it, without the newline.
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rmtty {}.{} ports={} memory_mib={} unit_mib={}",
            self.major, self.minor, self.shape.ports, self.shape.memory_mib, self.unit_mib
        )?;
        if let Some(max) = self.max_aggregation {
            write!(f, " max_aggregation={max}")?;
        }
        Ok(())
    }
}

/// A decimal number of 1 to 9 digits, without sign.
fn number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A type of a parent that can host a compatible target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The type's sysfs name, e.g. `rmtty-1`.
    pub mdev_type: String,
    /// The aggregation the target device needs.
    pub aggregation: u32,
    /// Whether the parent has the free units for it now.
    pub available: bool,
}

impl Candidate {
    /// The mdevctl JSON that creates the target (`mdevctl start -p PARENT --jsonfile F`).
    pub fn mdevctl_json(&self) -> String {
        let mut attrs = Vec::new();
        if self.aggregation != 1 {
            attrs.push(serde_json::json!({
                "mdev/aggregated_instances": self.aggregation.to_string()
            }));
        }
        serde_json::json!({
            "mdev_type": self.mdev_type,
            "start": "manual",
            "attrs": attrs,
        })
        .to_string()
    }
}

/// The types of the parent at `parent` (laid out like `/sys/class/mdev_bus/<parent>`) that can
/// host a target compatible with `source`, best first: those with free units, then by smallest
/// aggregation, then by name.
pub fn plan(source: &[u8], parent: &Path) -> io::Result<Vec<Candidate>> {
    let mut candidates = Vec::new();
    for entry in fs::read_dir(parent.join("mdev_supported_types"))? {
        let dir = entry?.path();
        let Ok(string) = fs::read(dir.join("migration_version")) else {
            continue; // a type without the attribute does not migrate
        };
        let Ok(target) = Version::parse(&string) else {
            continue;
        };
        let Verdict::Compatible {
            aggregation: Some(aggregation),
        } = target.verdict(source)
        else {
            continue;
        };
        let free = fs::read_to_string(dir.join("available_instances"))?
            .trim()
            .parse::<u32>()
            .unwrap_or(0);
        candidates.push(Candidate {
            mdev_type: dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            aggregation,
            // A device of aggregation a takes a instances' worth of units.
            available: free >= aggregation,
        });
    }
    candidates.sort_by(|a, b| {
        (!a.available, a.aggregation, &a.mdev_type).cmp(&(
            !b.available,
            b.aggregation,
            &b.mdev_type,
        ))
    });
    Ok(candidates)
}

/// For a source that no type of the parent at `parent` can host: the types that could if the
/// source wrote stream version 1.0 (`stream_version`), as [`plan`] lists them. Empty if the
/// source writes 1.0 already, or if 1.0 would not help.
pub fn plan_as_1_0(source: &[u8], parent: &Path) -> io::Result<Vec<Candidate>> {
    match Version::parse(source) {
        Ok(v) if v.major == 1 && v.minor > 0 => {
            plan(v.with_minor(0).to_string().as_bytes(), parent)
        }
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests;
