// SPDX-License-Identifier: GPL-2.0

//! The uAPI the tool relies on, checked against Linux 7.2's `<linux/vfio.h>`.
//!
//! The structs and constants come from `vfio-bindings` (through `vfio-ioctls`, which issues the
//! ioctls); nothing of the VFIO or iommufd uAPI is copied by hand. These tests pin the layouts
//! and numbers the tool depends on to the values of the 7.2 header (sizes and offsets as
//! `reference/vfio-migration.md` 3.1 gives them, verified there by compiling against the
//! header), and, where the kernel tree is on this machine, read the header itself.

use crate::transport::MigState;
use crate::v2::features_of;
use std::collections::HashMap;
use std::mem::{align_of, offset_of, size_of};
use vfio_bindings::bindings::vfio::*;

#[test]
fn struct_layouts_are_the_7_2_uapi_ones() {
    // struct vfio_device_feature { __u32 argsz; __u32 flags; __u8 data[]; }
    assert_eq!(size_of::<vfio_device_feature>(), 8);
    assert_eq!(offset_of!(vfio_device_feature, argsz), 0);
    assert_eq!(offset_of!(vfio_device_feature, flags), 4);
    assert_eq!(offset_of!(vfio_device_feature, data), 8);
    // struct vfio_device_feature_migration { __aligned_u64 flags; }
    assert_eq!(size_of::<vfio_device_feature_migration>(), 8);
    assert_eq!(align_of::<vfio_device_feature_migration>(), 8);
    // struct vfio_device_feature_mig_state { __u32 device_state; __s32 data_fd; }
    assert_eq!(size_of::<vfio_device_feature_mig_state>(), 8);
    assert_eq!(offset_of!(vfio_device_feature_mig_state, device_state), 0);
    assert_eq!(offset_of!(vfio_device_feature_mig_state, data_fd), 4);
    // struct vfio_device_feature_mig_data_size { __aligned_u64 stop_copy_length; }
    assert_eq!(size_of::<vfio_device_feature_mig_data_size>(), 8);
    // struct vfio_precopy_info { __u32 argsz; __u32 flags; __aligned_u64 initial_bytes;
    // __aligned_u64 dirty_bytes; }
    assert_eq!(size_of::<vfio_precopy_info>(), 24);
    assert_eq!(offset_of!(vfio_precopy_info, argsz), 0);
    assert_eq!(offset_of!(vfio_precopy_info, flags), 4);
    assert_eq!(offset_of!(vfio_precopy_info, initial_bytes), 8);
    assert_eq!(offset_of!(vfio_precopy_info, dirty_bytes), 16);
    // struct vfio_group_status { __u32 argsz; __u32 flags; }
    assert_eq!(size_of::<vfio_group_status>(), 8);
    // struct vfio_device_bind_iommufd { argsz; flags; __s32 iommufd; __u32 out_devid;
    // __aligned_u64 token_uuid_ptr; }
    assert_eq!(size_of::<vfio_device_bind_iommufd>(), 24);
    assert_eq!(offset_of!(vfio_device_bind_iommufd, iommufd), 8);
    assert_eq!(offset_of!(vfio_device_bind_iommufd, out_devid), 12);
    // struct vfio_device_attach_iommufd_pt { argsz; flags; __u32 pt_id; __u32 pasid; }
    assert_eq!(size_of::<vfio_device_attach_iommufd_pt>(), 16);
    assert_eq!(offset_of!(vfio_device_attach_iommufd_pt, pt_id), 8);
}

#[test]
fn constants_are_the_7_2_uapi_ones() {
    assert_eq!(VFIO_DEVICE_FEATURE_GET, 1 << 16);
    assert_eq!(VFIO_DEVICE_FEATURE_SET, 1 << 17);
    assert_eq!(VFIO_DEVICE_FEATURE_PROBE, 1 << 18);
    assert_eq!(VFIO_DEVICE_FEATURE_MIGRATION, 1);
    assert_eq!(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, 2);
    assert_eq!(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, 9);
    assert_eq!(
        (
            VFIO_MIGRATION_STOP_COPY,
            VFIO_MIGRATION_P2P,
            VFIO_MIGRATION_PRE_COPY
        ),
        (1, 2, 4)
    );
    assert_eq!(VFIO_TYPE1v2_IOMMU, 3);
    // The ioctl numbers vfio-ioctls builds from VFIO_TYPE and VFIO_BASE:
    // VFIO_DEVICE_FEATURE = _IO(';', 117) = 0x3b75, VFIO_MIG_GET_PRECOPY_INFO = _IO(';', 121).
    let io = |nr: u32| (u32::from(VFIO_TYPE) << 8) | (VFIO_BASE + nr);
    assert_eq!(io(17), 0x3b75);
    assert_eq!(io(21), 0x3b79);
}

#[test]
fn states_have_their_uapi_numbers() {
    let uapi = [
        (
            MigState::Error,
            vfio_device_mig_state_VFIO_DEVICE_STATE_ERROR,
        ),
        (MigState::Stop, vfio_device_mig_state_VFIO_DEVICE_STATE_STOP),
        (
            MigState::Running,
            vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING,
        ),
        (
            MigState::StopCopy,
            vfio_device_mig_state_VFIO_DEVICE_STATE_STOP_COPY,
        ),
        (
            MigState::Resuming,
            vfio_device_mig_state_VFIO_DEVICE_STATE_RESUMING,
        ),
        (
            MigState::RunningP2p,
            vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING_P2P,
        ),
        (
            MigState::PreCopy,
            vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY,
        ),
        (
            MigState::PreCopyP2p,
            vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY_P2P,
        ),
    ];
    for (i, (state, number)) in uapi.into_iter().enumerate() {
        assert_eq!(state.v2(), number);
        assert_eq!(number as usize, i);
        assert_eq!(MigState::from_v2(number), Some(state));
    }
    assert_eq!(MigState::from_v2(8), None);
    assert_eq!(MigState::PreCopyP2p.to_string(), "PRE_COPY_P2P");
}

#[test]
fn migration_flags_decode() {
    let f = features_of(7);
    assert!(f.stop_copy && f.p2p && f.pre_copy);
    assert_eq!(f.names(), ["STOP_COPY", "P2P", "PRE_COPY"]);
    let f = features_of(1);
    assert!(f.stop_copy && !f.p2p && !f.pre_copy);
    assert_eq!(features_of(0).names(), Vec::<&str>::new());
}

/// The value of a `#define` or enumerator of the header, as far as the forms it uses go:
/// `N`, `(1 << N)`, `(0xN)`, `_IO(VFIO_TYPE, VFIO_BASE + N)`.
fn value(text: &str) -> Option<u64> {
    let text = text.split("/*").next()?.trim();
    let text = text.trim_start_matches('(').trim_end_matches(')').trim();
    if let Some(nr) = text.strip_prefix("_IO(VFIO_TYPE, VFIO_BASE + ") {
        return Some((u64::from(b';') << 8) | (100 + nr.parse::<u64>().ok()?));
    }
    if let Some((a, b)) = text.split_once("<<") {
        return Some(value(a)? << value(b)?);
    }
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The defines and enumerators of the 7.2 `<linux/vfio.h>` in the kernel tree the build uses,
/// if it is on this machine.
fn header_values() -> Option<HashMap<String, u64>> {
    let cache = std::path::Path::new(&std::env::var_os("HOME")?).join(".cache/rmtty");
    let tree = std::fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("src/include/uapi/linux/vfio.h"))
        .find(|p| p.is_file())?;
    let text = std::fs::read_to_string(tree).ok()?;
    let mut values = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        let pair = match line.strip_prefix("#define ") {
            Some(def) => def.split_once(char::is_whitespace),
            None => line
                .split_once(" = ")
                .map(|(name, rest)| (name, rest.trim_end_matches(','))),
        };
        let Some((name, rest)) = pair else {
            continue;
        };
        if let Some(v) = value(rest) {
            values.insert(name.trim().to_string(), v);
        }
    }
    Some(values)
}

#[test]
fn the_header_parser_reads_the_header_forms() {
    assert_eq!(
        value("(1 << 16) /* Get feature into data[] */"),
        Some(1 << 16)
    );
    assert_eq!(value("(0xffff) /* 16-bit feature index */"), Some(0xffff));
    assert_eq!(value("9"), Some(9));
    assert_eq!(value("_IO(VFIO_TYPE, VFIO_BASE + 21)"), Some(0x3b79));
    assert_eq!(value("(';')"), None);
}

#[test]
fn the_kernel_header_agrees_where_it_is_here() {
    let Some(h) = header_values() else {
        eprintln!("no 7.2 kernel tree under ~/.cache/rmtty: checked against the values above only");
        return;
    };
    let expect = [
        (
            "VFIO_DEVICE_FEATURE_GET",
            u64::from(VFIO_DEVICE_FEATURE_GET),
        ),
        (
            "VFIO_DEVICE_FEATURE_SET",
            u64::from(VFIO_DEVICE_FEATURE_SET),
        ),
        (
            "VFIO_DEVICE_FEATURE_MIGRATION",
            u64::from(VFIO_DEVICE_FEATURE_MIGRATION),
        ),
        (
            "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE",
            u64::from(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE),
        ),
        (
            "VFIO_DEVICE_FEATURE_MIG_DATA_SIZE",
            u64::from(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE),
        ),
        (
            "VFIO_MIGRATION_STOP_COPY",
            u64::from(VFIO_MIGRATION_STOP_COPY),
        ),
        ("VFIO_MIGRATION_P2P", u64::from(VFIO_MIGRATION_P2P)),
        (
            "VFIO_MIGRATION_PRE_COPY",
            u64::from(VFIO_MIGRATION_PRE_COPY),
        ),
        ("VFIO_TYPE1v2_IOMMU", u64::from(VFIO_TYPE1v2_IOMMU)),
        ("VFIO_BASE", u64::from(VFIO_BASE)),
        ("VFIO_DEVICE_FEATURE", 0x3b75),
        ("VFIO_MIG_GET_PRECOPY_INFO", 0x3b79),
    ];
    for (name, v) in expect {
        assert_eq!(h.get(name), Some(&v), "{name}");
    }
    for state in MigState::ALL {
        let name = format!("VFIO_DEVICE_STATE_{}", state.name());
        assert_eq!(h.get(&name), Some(&u64::from(state.v2())), "{name}");
    }
}
