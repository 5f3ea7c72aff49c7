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

#[test]
fn devices_set_to_1_0() {
    let dev11 = b"rmtty 1.1 ports=1 memory_mib=4 unit_mib=1\n";
    let older = device(4); // a device whose stream_version is 1.0
    let newer = Version::parse(dev11).unwrap();

    // 1.1 into 1.0: refused for the version, with the hint; 1.0 into 1.1 and 1.1 into 1.1: fine.
    let refusal = refused(&older, dev11);
    assert_eq!(
        refusal,
        Refusal::NewerMinor {
            source: 1,
            target: 0
        }
    );
    assert_eq!(refusal.hint(), Some(STREAM_VERSION_HINT));
    assert_eq!(
        refusal.to_string(),
        "stream minor version 1 is newer than the target's 0"
    );
    assert_eq!(
        newer.verdict(DEV4),
        Verdict::Compatible { aggregation: None }
    );
    assert_eq!(
        newer.verdict(dev11),
        Verdict::Compatible { aggregation: None }
    );
    // The version comes before the shape, as in the driver.
    assert!(matches!(
        refused(&older, b"rmtty 1.1 ports=1 memory_mib=2 unit_mib=1"),
        Refusal::NewerMinor { .. }
    ));

    // Newer than a 1.1 target: 1.0 would not be needed, nor is it known to exist.
    let refusal = refused(&newer, b"rmtty 1.2 ports=1 memory_mib=4 unit_mib=1");
    assert_eq!(
        refusal,
        Refusal::NewerMinor {
            source: 2,
            target: 1
        }
    );
    assert_eq!(refusal.hint(), None);
    assert_eq!(
        refused(&older, b"rmtty 2.0 ports=1 memory_mib=4 unit_mib=1").hint(),
        None
    );
    assert_eq!(refused(&device(2), DEV4).hint(), None);

    // A type node of a 1.1 driver takes both.
    let t = Version::parse(b"rmtty 1.1 ports=1 memory_mib=2 unit_mib=1 max_aggregation=8").unwrap();
    for source in [DEV4, dev11] {
        assert_eq!(
            t.verdict(source),
            Verdict::Compatible {
                aggregation: Some(2)
            }
        );
    }
}

#[test]
fn strings_print_as_nodes_write_them() {
    for s in [
        "rmtty 1.1 ports=1 memory_mib=4 unit_mib=1",
        "rmtty 1.0 ports=1 memory_mib=2 unit_mib=2 max_aggregation=8",
    ] {
        assert_eq!(Version::parse(s.as_bytes()).unwrap().to_string(), s);
    }
    let v = Version::parse(b"rmtty 1.1 ports=1 memory_mib=4 unit_mib=1\n").unwrap();
    assert_eq!(
        v.with_minor(0).to_string(),
        "rmtty 1.0 ports=1 memory_mib=4 unit_mib=1"
    );
}

#[test]
fn plans_for_a_source_newer_than_the_parent() {
    let parent = std::env::temp_dir().join(format!("rmtty-compat-older-{}", std::process::id()));
    for (name, memory, max) in [("rmtty-1", 1, 16), ("rmtty-4", 4, 4)] {
        let dir = parent.join("mdev_supported_types").join(name);
        fs::create_dir_all(&dir).unwrap();
        let s = format!("rmtty 1.0 ports=1 memory_mib={memory} unit_mib=1 max_aggregation={max}\n");
        fs::write(dir.join("migration_version"), s).unwrap();
        fs::write(dir.join("available_instances"), "1\n").unwrap();
    }
    let dev11 = b"rmtty 1.1 ports=1 memory_mib=4 unit_mib=1\n";
    let none = plan(dev11, &parent).unwrap();
    let older = plan_as_1_0(dev11, &parent).unwrap();
    let already = plan_as_1_0(DEV4, &parent).unwrap();
    let too_big = plan_as_1_0(b"rmtty 1.1 ports=1 memory_mib=64 unit_mib=1", &parent).unwrap();
    fs::remove_dir_all(&parent).unwrap();

    assert!(none.is_empty());
    let got: Vec<_> = older
        .iter()
        .map(|c| (c.mdev_type.as_str(), c.aggregation, c.available))
        .collect();
    assert_eq!(got, [("rmtty-4", 1, true), ("rmtty-1", 4, false)]);
    // Already 1.0, or another shape: 1.0 does not help.
    assert!(already.is_empty());
    assert!(too_big.is_empty());
}
