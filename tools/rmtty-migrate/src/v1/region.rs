// SPDX-License-Identifier: GPL-2.0

//! Finding the migration region as QEMU 7.2 did: `VFIO_DEVICE_GET_INFO` for the number of
//! regions, then `VFIO_DEVICE_GET_REGION_INFO` of each (again with the larger `argsz` the
//! kernel asks for when the capabilities do not fit) until one has a `VFIO_REGION_INFO_CAP_TYPE`
//! capability of type 3 subtype 1. Its index is not assumed.
//!
//! The ioctls are issued here on the device's descriptor, with the structs of `vfio-bindings`:
//! `vfio-ioctls` reads the region infos when it opens a device but keeps an error to itself.

use crate::transport::{errno_name, Error, Result};
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::RawFd;
use vfio_bindings::bindings::vfio::{
    vfio_device_info, vfio_info_cap_header, vfio_region_info, vfio_region_info_cap_sparse_mmap,
    vfio_region_info_cap_type, vfio_region_sparse_mmap_area, VFIO_BASE,
    VFIO_REGION_INFO_CAP_SPARSE_MMAP, VFIO_REGION_INFO_CAP_TYPE, VFIO_REGION_INFO_FLAG_CAPS,
    VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
    VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED, VFIO_REGION_TYPE_MIGRATION_DEPRECATED, VFIO_TYPE,
};

/// `_IO(VFIO_TYPE, VFIO_BASE + nr)`, the form of every VFIO ioctl number.
const fn vfio_ioctl(nr: u32) -> libc::c_ulong {
    // CAST: widening.
    (((VFIO_TYPE as u32) << 8) | (VFIO_BASE + nr)) as libc::c_ulong
}

/// `VFIO_DEVICE_GET_INFO`.
pub const VFIO_DEVICE_GET_INFO: libc::c_ulong = vfio_ioctl(7);
/// `VFIO_DEVICE_GET_REGION_INFO`.
pub const VFIO_DEVICE_GET_REGION_INFO: libc::c_ulong = vfio_ioctl(8);

/// The most bytes of region info and capabilities the tool takes from the kernel.
const MAX_ARGSZ: u32 = 64 << 10;

/// A mappable part of a region, from a sparse-mmap capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Area {
    /// Where it begins in the region.
    pub offset: u64,
    /// Its length in bytes.
    pub size: u64,
}

/// A region info capability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cap {
    /// `VFIO_REGION_INFO_CAP_TYPE`: what the region is.
    Type { kind: u32, subtype: u32 },
    /// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`: the parts of the region that can be mapped.
    SparseMmap(Vec<Area>),
    /// Another capability, by its id (which this tool has no use for).
    Other(u16),
}

/// What `VFIO_DEVICE_GET_REGION_INFO` says of a region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// The region's index.
    pub index: u32,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Its length in bytes.
    pub size: u64,
    /// The region's offset in the device's descriptor.
    pub offset: u64,
    pub caps: Vec<Cap>,
}

impl RegionInfo {
    /// Whether it is typed as the v1 migration region.
    pub fn is_migration(&self) -> bool {
        self.caps.contains(&Cap::Type {
            kind: VFIO_REGION_TYPE_MIGRATION_DEPRECATED,
            subtype: VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED,
        })
    }

    /// The sparse-mmap areas, if it has the capability.
    pub fn sparse_areas(&self) -> Option<&[Area]> {
        self.caps.iter().find_map(|cap| match cap {
            Cap::SparseMmap(areas) => Some(areas.as_slice()),
            _ => None,
        })
    }

    /// The part of the region to map for a data section of `size` bytes at `offset` (its offset
    /// in the region and its length): the sparse-mmap area that holds it, if the region is
    /// mappable; else why not.
    pub fn mmap_area(&self, offset: u64, size: u64) -> std::result::Result<Area, String> {
        if self.flags & VFIO_REGION_INFO_FLAG_MMAP == 0 {
            return Err("the region is not mappable (no VFIO_REGION_INFO_FLAG_MMAP)".into());
        }
        let Some(areas) = self.sparse_areas() else {
            return Err("the region has no sparse-mmap capability".into());
        };
        let end = offset.saturating_add(size);
        areas
            .iter()
            .find(|a| a.offset <= offset && a.offset.saturating_add(a.size) >= end)
            .copied()
            .ok_or_else(|| format!("no sparse-mmap area holds the data section {offset}..{end}"))
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap_or_default())
}

/// The capabilities of a region info the kernel returned in `info`, its chain starting at
/// `first` (`cap_offset`; 0 for none). Each capability must lie inside `info`, past the
/// `struct vfio_region_info` and after the one before (the kernel builds the chain forwards),
/// so that a bad chain cannot loop.
pub fn parse_caps(info: &[u8], first: u32) -> std::result::Result<Vec<Cap>, String> {
    let header = size_of::<vfio_info_cap_header>();
    let mut caps = Vec::new();
    let mut at = first as usize;
    let mut min = size_of::<vfio_region_info>();
    while at != 0 {
        let fits = |len: usize| at.checked_add(len).is_some_and(|end| end <= info.len());
        if at < min || !fits(header) {
            return Err(format!(
                "a capability at byte {at} of the {} bytes returned",
                info.len()
            ));
        }
        let id = u16_at(info, at + offset_of!(vfio_info_cap_header, id));
        let next = u32_at(info, at + offset_of!(vfio_info_cap_header, next));
        let cap = match u32::from(id) {
            VFIO_REGION_INFO_CAP_TYPE => {
                if !fits(size_of::<vfio_region_info_cap_type>()) {
                    return Err(format!("a type capability cut short at byte {at}"));
                }
                Cap::Type {
                    kind: u32_at(info, at + offset_of!(vfio_region_info_cap_type, type_)),
                    subtype: u32_at(info, at + offset_of!(vfio_region_info_cap_type, subtype)),
                }
            }
            VFIO_REGION_INFO_CAP_SPARSE_MMAP => {
                let fixed = size_of::<vfio_region_info_cap_sparse_mmap>();
                let area_size = size_of::<vfio_region_sparse_mmap_area>();
                let nr_areas = if fits(fixed) {
                    u32_at(
                        info,
                        at + offset_of!(vfio_region_info_cap_sparse_mmap, nr_areas),
                    )
                } else {
                    u32::MAX
                };
                let len = (nr_areas as usize)
                    .checked_mul(area_size)
                    .and_then(|areas| areas.checked_add(fixed));
                if !len.is_some_and(fits) {
                    return Err(format!("a sparse-mmap capability cut short at byte {at}"));
                }
                let areas = (0..nr_areas as usize)
                    .map(|i| {
                        let a = at + fixed + i * area_size;
                        Area {
                            offset: u64_at(
                                info,
                                a + offset_of!(vfio_region_sparse_mmap_area, offset),
                            ),
                            size: u64_at(info, a + offset_of!(vfio_region_sparse_mmap_area, size)),
                        }
                    })
                    .collect();
                Cap::SparseMmap(areas)
            }
            _ => Cap::Other(id),
        };
        caps.push(cap);
        min = at + header;
        at = next as usize;
    }
    Ok(caps)
}

/// `ioctl(fd, request, arg)`, retried on `EINTR`.
fn ioctl<T>(fd: RawFd, request: libc::c_ulong, arg: *mut T) -> io::Result<()> {
    loop {
        // SAFETY: `arg` points to a buffer of the size its argsz field gives, which is all the
        // kernel writes.
        if unsafe { libc::ioctl(fd, request, arg) } >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// The number of regions of the device `fd` (`VFIO_DEVICE_GET_INFO`).
pub fn num_regions(fd: RawFd) -> Result<u32> {
    let mut info = vfio_device_info {
        // CAST: a 24-byte struct.
        argsz: size_of::<vfio_device_info>() as u32,
        ..Default::default()
    };
    ioctl(fd, VFIO_DEVICE_GET_INFO, &mut info)
        .map_err(|e| Error::io("VFIO_DEVICE_GET_INFO", &e))?;
    Ok(info.num_regions)
}

/// What `VFIO_DEVICE_GET_REGION_INFO` says of region `index` of the device `fd`, capabilities
/// included.
pub fn region_info(fd: RawFd, index: u32) -> Result<RegionInfo> {
    let what = format!("VFIO_DEVICE_GET_REGION_INFO of region {index}");
    // CAST: a 32-byte struct.
    let mut argsz = size_of::<vfio_region_info>() as u32;
    loop {
        // u64s, for the alignment of the struct and its capabilities.
        let mut buf = vec![0u64; (argsz as usize).div_ceil(8)];
        let info = buf.as_mut_ptr().cast::<vfio_region_info>();
        // SAFETY: `buf` has room for a `vfio_region_info` and is aligned for it.
        unsafe {
            info.write(vfio_region_info {
                argsz,
                index,
                ..Default::default()
            })
        };
        ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, info).map_err(|e| Error::io(&what, &e))?;
        // SAFETY: as above; the kernel filled it in.
        let got = unsafe { info.read() };
        if got.flags & VFIO_REGION_INFO_FLAG_CAPS != 0 && got.argsz > argsz {
            if got.argsz > MAX_ARGSZ {
                return Err(Error::other(
                    what,
                    format!("argsz {} is too big", got.argsz),
                ));
            }
            argsz = got.argsz;
            continue;
        }
        // SAFETY: u64s viewed as their bytes.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), buf.len() * 8) };
        let bytes = &bytes[..argsz as usize];
        let caps = if got.flags & VFIO_REGION_INFO_FLAG_CAPS != 0 {
            parse_caps(bytes, got.cap_offset).map_err(|e| Error::other(&what, e))?
        } else {
            Vec::new()
        };
        return Ok(RegionInfo {
            index,
            flags: got.flags,
            size: got.size,
            offset: got.offset,
            caps,
        });
    }
}

/// The device's v1 migration region: the first region typed as one (regions whose info cannot
/// be read are skipped, as QEMU does), which must have bytes and be readable and writable.
pub fn find_migration_region(fd: RawFd) -> Result<RegionInfo> {
    let what = "finding the v1 migration region";
    let count = num_regions(fd).map_err(|e| e.context(what))?;
    let mut skipped = Vec::new();
    for index in 0..count {
        let region = match region_info(fd, index) {
            Ok(region) => region,
            Err(e) => {
                skipped.push(format!(
                    "{index} ({})",
                    e.errno.map_or_else(|| e.to_string(), errno_name)
                ));
                continue;
            }
        };
        if !region.is_migration() {
            continue;
        }
        let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        let problem = if region.size == 0 {
            Some("has size 0: the device does not implement it".to_string())
        } else if region.flags & rw != rw {
            Some(format!(
                "is not readable and writable (flags {:#x})",
                region.flags
            ))
        } else {
            None
        };
        return match problem {
            Some(problem) => Err(Error::other(
                what,
                format!("region {index}, typed as the migration region, {problem}"),
            )),
            None => Ok(region),
        };
    }
    let mut detail = format!(
        "none of the device's {count} regions has a VFIO_REGION_INFO_CAP_TYPE capability of \
         type {VFIO_REGION_TYPE_MIGRATION_DEPRECATED} subtype \
         {VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED} (the v1 migration region)"
    );
    if !skipped.is_empty() {
        detail += &format!("; regions without info: {}", skipped.join(", "));
    }
    Err(Error::other(what, detail))
}
