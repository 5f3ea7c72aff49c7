// SPDX-License-Identifier: GPL-2.0

use super::*;

const DEV4: &[u8] = b"rmtty 1.0 ports=1 memory_mib=4 unit_mib=1\n";

fn device(memory_mib: u32) -> Version {
    Version::parse(format!("rmtty 1.0 ports=1 memory_mib={memory_mib} unit_mib=1").as_bytes())
        .unwrap()
}

fn type_node(memory_mib: u32, max: u32) -> Version {
    Version::parse(
        format!("rmtty 1.0 ports=1 memory_mib={memory_mib} unit_mib=1 max_aggregation={max}\n")
            .as_bytes(),
    )
    .unwrap()
}

fn refused(target: &Version, source: &[u8]) -> Refusal {
    match target.verdict(source) {
        Verdict::Incompatible(refusal) => refusal,
        v => panic!("{} accepted: {v:?}", String::from_utf8_lossy(source)),
    }
}

#[test]
fn parses_device_and_type_strings() {
    let v = Version::parse(DEV4).unwrap();
    assert_eq!(
        (v.major, v.minor, v.unit_mib, v.max_aggregation),
        (1, 0, 1, None)
    );
    assert_eq!(
        v.shape,
        Shape {
            ports: 1,
            memory_mib: 4
        }
    );
    assert!(!v.is_type());
    assert_eq!(type_node(2, 8).max_aggregation, Some(8));
    assert!(type_node(2, 8).is_type());
}

#[test]
fn device_node_compares_shapes_only() {
    let target = device(4);
    assert_eq!(
        target.verdict(DEV4),
        Verdict::Compatible { aggregation: None }
    );
    // Without newline, from a parent with another unit size, from a type node.
    for source in [
        &b"rmtty 1.0 ports=1 memory_mib=4 unit_mib=1"[..],
        b"rmtty 1.0 ports=1 memory_mib=4 unit_mib=4",
        b"rmtty 1.0 ports=1 memory_mib=4 unit_mib=1 max_aggregation=1",
    ] {
        assert!(matches!(target.verdict(source), Verdict::Compatible { .. }));
    }
    assert!(matches!(refused(&device(2), DEV4), Refusal::Shape { .. }));
    assert!(matches!(
        refused(&target, b"rmtty 1.0 ports=2 memory_mib=4 unit_mib=1"),
        Refusal::Shape { .. }
    ));
}

#[test]
fn type_node_finds_the_aggregation() {
    assert_eq!(
        type_node(1, 16).verdict(DEV4),
        Verdict::Compatible {
            aggregation: Some(4)
        }
    );
    assert_eq!(
        type_node(2, 8).verdict(DEV4),
        Verdict::Compatible {
            aggregation: Some(2)
        }
    );
    assert_eq!(
        type_node(4, 4).verdict(DEV4),
        Verdict::Compatible {
            aggregation: Some(1)
        }
    );
    // Not a multiple, too big, too small.
    assert!(matches!(
        refused(&type_node(3, 5), DEV4),
        Refusal::NoAggregation { .. }
    ));
    assert!(matches!(
        refused(&type_node(1, 3), DEV4),
        Refusal::NoAggregation { .. }
    ));
    assert!(matches!(
        refused(&type_node(8, 2), DEV4),
        Refusal::NoAggregation { .. }
    ));
}

#[test]
fn versions() {
    let target = device(4);
    let newer = b"rmtty 1.1 ports=1 memory_mib=4 unit_mib=1";
    assert!(matches!(
        refused(&target, newer),
        Refusal::NewerMinor {
            source: 1,
            target: 0
        }
    ));
    let major = b"rmtty 2.0 ports=1 memory_mib=4 unit_mib=1";
    assert!(matches!(
        refused(&target, major),
        Refusal::Major {
            source: 2,
            target: 1
        }
    ));
    // A newer target reads an older stream.
    let newer_target = Version::parse(newer).unwrap();
    assert!(matches!(
        newer_target.verdict(DEV4),
        Verdict::Compatible { .. }
    ));
}

#[test]
fn malformed_strings() {
    let target = device(4);
    type Case = (&'static [u8], fn(&Refusal) -> bool);
    let cases: &[Case] = &[
        (b"", |r| matches!(r, Refusal::Driver)),
        (b"\n", |r| matches!(r, Refusal::Driver)),
        (b"mtty 1.0 ports=1 memory_mib=4 unit_mib=1", |r| {
            matches!(r, Refusal::Driver)
        }),
        (b" rmtty 1.0 ports=1 memory_mib=4 unit_mib=1", |r| {
            matches!(r, Refusal::Driver)
        }),
        (b"rmtty 1 ports=1 memory_mib=4 unit_mib=1", |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        (b"rmtty +1.0 ports=1 memory_mib=4 unit_mib=1", |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        (b"rmtty 1.0 ports=1 memory_mib=4x unit_mib=1", |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        (b"rmtty 1.0 ports=1 memory_mib=0 unit_mib=1", |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        (b"rmtty 1.0 ports=1 memory_mib=1234567890 unit_mib=1", |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        (b"rmtty 1.0 ports=1 memory_mib=4", |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        (b"rmtty 1.0 ports=1 ports=1 memory_mib=4 unit_mib=1", |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        (b"rmtty 1.0 ports=1 memory_mib=4 unit_mib=1 x=1", |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        (b"rmtty 1.0  ports=1 memory_mib=4 unit_mib=1", |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        (b"rmtty 1.0 ports=1 memory_mib=4 unit_mib=1\n\n", |r| {
            matches!(r, Refusal::NotAscii)
        }),
        (b"rmtty 1.0 ports=1 memory_mib=\xc3\xa9 unit_mib=1", |r| {
            matches!(r, Refusal::NotAscii)
        }),
        (b"rmtty 1.0 ports=1 memory_mib=4 unit_mib=1\t", |r| {
            matches!(r, Refusal::NotAscii)
        }),
    ];
    for (source, expected) in cases {
        let refusal = refused(&target, source);
        assert!(
            expected(&refusal),
            "{}: {refusal:?}",
            String::from_utf8_lossy(source)
        );
    }
    let mut overlong = DEV4.strip_suffix(b"\n").unwrap().to_vec();
    overlong.resize(MAX_LEN + 1, b' ');
    assert_eq!(refused(&target, &overlong), Refusal::TooLong(MAX_LEN + 1));
    // Exactly MAX_LEN is long enough to reach the field checks.
    overlong.truncate(MAX_LEN);
    assert!(matches!(refused(&target, &overlong), Refusal::Malformed(_)));
}

#[test]
fn plans_over_a_parent_directory() {
    let parent = std::env::temp_dir().join(format!("rmtty-compat-test-{}", std::process::id()));
    for (name, memory, max, available) in [
        ("rmtty-1", 1, 16, 3),
        ("rmtty-2", 2, 8, 1),
        ("rmtty-4", 4, 4, 1),
    ] {
        let dir = parent.join("mdev_supported_types").join(name);
        fs::create_dir_all(&dir).unwrap();
        let s = format!("rmtty 1.0 ports=1 memory_mib={memory} unit_mib=1 max_aggregation={max}\n");
        fs::write(dir.join("migration_version"), s).unwrap();
        fs::write(dir.join("available_instances"), format!("{available}\n")).unwrap();
    }
    let plan = plan(DEV4, &parent).unwrap();
    fs::remove_dir_all(&parent).unwrap();

    let got: Vec<_> = plan
        .iter()
        .map(|c| (c.mdev_type.as_str(), c.aggregation, c.available))
        .collect();
    assert_eq!(
        got,
        [
            ("rmtty-4", 1, true),
            ("rmtty-2", 2, false),
            ("rmtty-1", 4, false)
        ]
    );
    assert_eq!(
        plan[0].mdevctl_json(),
        r#"{"attrs":[],"mdev_type":"rmtty-4","start":"manual"}"#
    );
    assert_eq!(
        plan[2].mdevctl_json(),
        r#"{"attrs":[{"mdev/aggregated_instances":"4"}],"mdev_type":"rmtty-1","start":"manual"}"#
    );
}
