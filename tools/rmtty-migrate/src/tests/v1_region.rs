// SPDX-License-Identifier: GPL-2.0

//! Finding the v1 migration region: the capability chain of a region info, and which part of
//! the region to map.

use crate::v1::region::{
    parse_caps, Area, Cap, RegionInfo, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_REGION_INFO,
};
use vfio_bindings::bindings::vfio::*;

/// A region info of `size` bytes whose capabilities are `caps` (each an id and its body after
/// the 8-byte header), chained in order from byte 32; gives the bytes and `cap_offset`.
fn info_with(caps: &[(u16, Vec<u8>)]) -> (Vec<u8>, u32) {
    let mut bytes = vec![0u8; 32];
    let first = if caps.is_empty() { 0 } else { 32 };
    for (i, (id, body)) in caps.iter().enumerate() {
        let at = bytes.len();
        let next = if i + 1 == caps.len() {
            0
        } else {
            at + 8 + body.len()
        };
        bytes.extend_from_slice(&id.to_ne_bytes());
        bytes.extend_from_slice(&1u16.to_ne_bytes());
        bytes.extend_from_slice(&(next as u32).to_ne_bytes());
        bytes.extend_from_slice(body);
    }
    (bytes, first)
}

fn type_body(kind: u32, subtype: u32) -> Vec<u8> {
    [kind.to_ne_bytes(), subtype.to_ne_bytes()].concat()
}

fn sparse_body(areas: &[(u64, u64)]) -> Vec<u8> {
    let mut b = (areas.len() as u32).to_ne_bytes().to_vec();
    b.extend_from_slice(&[0; 4]);
    for (offset, size) in areas {
        b.extend_from_slice(&offset.to_ne_bytes());
        b.extend_from_slice(&size.to_ne_bytes());
    }
    b
}

const TYPE: u16 = VFIO_REGION_INFO_CAP_TYPE as u16;
const SPARSE: u16 = VFIO_REGION_INFO_CAP_SPARSE_MMAP as u16;

#[test]
fn the_ioctls_have_their_7_2_numbers() {
    assert_eq!(VFIO_DEVICE_GET_INFO, 0x3b6b);
    assert_eq!(VFIO_DEVICE_GET_REGION_INFO, 0x3b6c);
    assert_eq!(std::mem::size_of::<vfio_region_info>(), 32);
    assert_eq!(std::mem::size_of::<vfio_region_info_cap_type>(), 16);
    assert_eq!(std::mem::size_of::<vfio_region_info_cap_sparse_mmap>(), 16);
    assert_eq!(std::mem::size_of::<vfio_region_sparse_mmap_area>(), 16);
    assert_eq!((TYPE, SPARSE), (2, 1));
}

#[test]
fn the_chain_is_walked_to_its_end() {
    let (bytes, first) = info_with(&[
        (TYPE, type_body(3, 1)),
        (7, vec![0; 8]),
        (SPARSE, sparse_body(&[(4096, 1 << 20), (0, 0)])),
    ]);
    let caps = parse_caps(&bytes, first).unwrap();
    assert_eq!(
        caps,
        [
            Cap::Type {
                kind: 3,
                subtype: 1
            },
            Cap::Other(7),
            Cap::SparseMmap(vec![
                Area {
                    offset: 4096,
                    size: 1 << 20
                },
                Area { offset: 0, size: 0 }
            ]),
        ]
    );
    assert_eq!(parse_caps(&bytes, 0).unwrap(), []);
}

#[test]
fn a_bad_chain_is_an_error_not_a_loop_or_a_panic() {
    let (mut bytes, first) = info_with(&[(TYPE, type_body(3, 1)), (7, vec![0; 8])]);
    // The second capability points back at the first.
    bytes[48 + 4..48 + 8].copy_from_slice(&32u32.to_ne_bytes());
    let e = parse_caps(&bytes, first).unwrap_err();
    assert!(e.contains("byte 32"), "{e}");
    // Inside the struct vfio_region_info.
    assert!(parse_caps(&bytes, 8).is_err());
    // Past the end.
    assert!(parse_caps(&bytes, 1000).is_err());
    // A type capability cut short.
    let (bytes, first) = info_with(&[(TYPE, type_body(3, 1))]);
    assert!(parse_caps(&bytes[..44], first)
        .unwrap_err()
        .contains("cut short"));
    // Areas that are not there.
    let (mut bytes, first) = info_with(&[(SPARSE, sparse_body(&[(4096, 4096)]))]);
    bytes[40..44].copy_from_slice(&u32::MAX.to_ne_bytes());
    assert!(parse_caps(&bytes, first).unwrap_err().contains("cut short"));
}

fn region(flags: u32, caps: Vec<Cap>) -> RegionInfo {
    RegionInfo {
        index: 9,
        flags,
        size: 4096 + (1 << 20),
        offset: 9 << 40,
        caps,
    }
}

const RW: u32 = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
const RWM: u32 = RW | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;

#[test]
fn the_migration_region_is_known_by_its_type() {
    let mig = Cap::Type {
        kind: 3,
        subtype: 1,
    };
    assert!(region(RW, vec![Cap::Other(3), mig]).is_migration());
    assert!(!region(
        RW,
        vec![Cap::Type {
            kind: 3,
            subtype: 2
        }]
    )
    .is_migration());
    assert!(!region(RW, vec![]).is_migration());
}

#[test]
fn the_data_section_is_mapped_only_through_a_sparse_area_that_holds_it() {
    let sparse = |areas: &[(u64, u64)]| {
        Cap::SparseMmap(
            areas
                .iter()
                .map(|&(offset, size)| Area { offset, size })
                .collect(),
        )
    };
    let mib = 1 << 20;
    let r = region(RWM, vec![sparse(&[(4096, mib)])]);
    assert_eq!(
        r.mmap_area(4096, mib),
        Ok(Area {
            offset: 4096,
            size: mib
        })
    );
    // An area holding more than the section is mapped whole.
    let r = region(RWM, vec![sparse(&[(0, 0), (0, 4096 + mib)])]);
    assert_eq!(r.mmap_area(4096, mib).unwrap().offset, 0);
    let r = region(RWM, vec![sparse(&[(4096, mib / 2)])]);
    assert!(r
        .mmap_area(4096, mib)
        .unwrap_err()
        .contains("no sparse-mmap area"));
    let r = region(
        RW | VFIO_REGION_INFO_FLAG_CAPS,
        vec![sparse(&[(4096, mib)])],
    );
    assert!(r.mmap_area(4096, mib).unwrap_err().contains("FLAG_MMAP"));
    let r = region(RWM, vec![]);
    assert!(r
        .mmap_area(4096, mib)
        .unwrap_err()
        .contains("no sparse-mmap"));
}
