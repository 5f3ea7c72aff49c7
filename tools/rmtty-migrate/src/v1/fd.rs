// SPDX-License-Identifier: GPL-2.0

//! The migration region of an open device, reached through the device's descriptor: each header
//! field one `pread()`/`pwrite()` of its width, each piece of data one call (or a copy to or from
//! an mmap of the data section). `vfio-ioctls`' own region accessors are not used: they log a
//! failed access and return nothing, where the protocol needs the errno.

use super::region::{self, RegionInfo};
use super::{DataAccess, Field, Layout, RegionAccess, V1};
use crate::transport::{errno_name, Error, Result};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use vfio_bindings::bindings::vfio::{VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE};
use vfio_ioctls::VfioDevice;

/// A shared mapping of part of the region.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Where it begins in the region.
    offset: u64,
}

impl Mapping {
    /// Maps `len` bytes at `offset` in the region at `region_offset` of `fd`, with the access
    /// the region's `flags` allow.
    fn new(fd: RawFd, region_offset: u64, offset: u64, len: u64, flags: u32) -> io::Result<Self> {
        let mut prot = 0;
        if flags & VFIO_REGION_INFO_FLAG_READ != 0 {
            prot |= libc::PROT_READ;
        }
        if flags & VFIO_REGION_INFO_FLAG_WRITE != 0 {
            prot |= libc::PROT_WRITE;
        }
        let invalid = || io::Error::from_raw_os_error(libc::EINVAL);
        let len = usize::try_from(len).map_err(|_| invalid())?;
        let at = region_offset
            .checked_add(offset)
            .and_then(|at| libc::off_t::try_from(at).ok())
            .ok_or_else(invalid)?;
        // SAFETY: a new mapping, at an address the kernel picks; nothing else refers to it.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, at) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(invalid)?;
        Ok(Self { ptr, len, offset })
    }

    /// Where `len` bytes at `offset` in the region are in the mapping, if they are all in it.
    fn at(&self, offset: u64, len: usize) -> Option<usize> {
        let start = usize::try_from(offset.checked_sub(self.offset)?).ok()?;
        (start.checked_add(len)? <= self.len).then_some(start)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new(), which nothing uses any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Runs `call` (a `pread()` or `pwrite()`) until it does not fail with `EINTR`.
fn retry(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if let Ok(n) = usize::try_from(n) {
            return Ok(n);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

fn short(done: usize, len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("{done} of {len} bytes moved"),
    )
}

/// The migration region of an open device.
pub struct FdRegion {
    /// Dropped before the device: the device is only closed once nothing maps it.
    mapping: Option<Mapping>,
    fd: RawFd,
    /// The region's offset in the descriptor.
    region_offset: u64,
    /// Kept open while the region is used.
    _device: VfioDevice,
}

impl FdRegion {
    /// The descriptor's offset of `offset` in the region.
    fn position(&self, offset: u64) -> io::Result<libc::off_t> {
        self.region_offset
            .checked_add(offset)
            .and_then(|at| libc::off_t::try_from(at).ok())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// One `pread()` of `buf.len()` bytes at `offset` in the region; a short one fails.
    fn pread(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let at = self.position(offset)?;
        // SAFETY: the kernel writes at most buf.len() bytes into buf.
        let n = retry(|| unsafe { libc::pread(self.fd, buf.as_mut_ptr().cast(), buf.len(), at) })?;
        if n == buf.len() {
            Ok(())
        } else {
            Err(short(n, buf.len()))
        }
    }

    /// One `pwrite()` of `buf` at `offset` in the region; a short one fails.
    fn pwrite(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let at = self.position(offset)?;
        // SAFETY: the kernel reads at most buf.len() bytes from buf.
        let n = retry(|| unsafe { libc::pwrite(self.fd, buf.as_ptr().cast(), buf.len(), at) })?;
        if n == buf.len() {
            Ok(())
        } else {
            Err(short(n, buf.len()))
        }
    }
}

impl RegionAccess for FdRegion {
    fn read_field(&mut self, field: Field) -> io::Result<u64> {
        let mut bytes = [0; 8];
        let bytes = &mut bytes[..field.width()];
        self.pread(field.offset(), bytes)?;
        field
            .decode(bytes)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }

    fn write_field(&mut self, field: Field, value: u64) -> io::Result<()> {
        let bytes = field
            .encode(value)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ERANGE))?;
        self.pwrite(field.offset(), &bytes)
    }

    fn read_data(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if let Some(m) = &self.mapping {
            if let Some(at) = m.at(offset, buf.len()) {
                // SAFETY: at..at + buf.len() is inside the mapping (Mapping::at); the device
                // changes these bytes only when asked to (by a header access), not meanwhile.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        m.ptr.as_ptr().add(at),
                        buf.as_mut_ptr(),
                        buf.len(),
                    )
                };
                return Ok(());
            }
        }
        self.pread(offset, buf)
    }

    fn write_data(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        if let Some(m) = &self.mapping {
            if let Some(at) = m.at(offset, buf.len()) {
                // SAFETY: as in read_data(); the mapping is writable (the region's flags).
                unsafe {
                    std::ptr::copy_nonoverlapping(buf.as_ptr(), m.ptr.as_ptr().add(at), buf.len())
                };
                return Ok(());
            }
        }
        self.pwrite(offset, buf)
    }
}

/// The v1 protocol on `device`: finds its migration region, reads `data_offset` (which has no
/// effect while the device is not saving) to learn where the data section is, and maps the data
/// section if `mmap` is asked for and the region allows it (else, or if the mapping fails, the
/// data moves by `pread()`/`pwrite()`; the layout says which, and why).
pub fn open(device: VfioDevice, mmap: bool) -> Result<V1<FdRegion>> {
    let fd = device.as_raw_fd();
    let info: RegionInfo = region::find_migration_region(fd)?;
    let mut access = FdRegion {
        mapping: None,
        fd,
        region_offset: info.offset,
        _device: device,
    };
    let header_end = Field::DataSize.offset() + 8;
    if info.size < header_end {
        return Err(Error::other(
            format!("migration region {}", info.index),
            format!("{} bytes are too few for its header", info.size),
        ));
    }
    let data_offset = access
        .read_field(Field::DataOffset)
        .map_err(|e| Error::io("read data_offset", &e))?;
    if data_offset < header_end || data_offset >= info.size {
        return Err(Error::other(
            "read data_offset",
            format!(
                "{data_offset} is not in the data part of the {}-byte region",
                info.size
            ),
        ));
    }
    let data_section = info.size - data_offset;
    let mut no_mmap_reason = None;
    if !mmap {
        no_mmap_reason = Some("--no-mmap".to_string());
    } else {
        match info.mmap_area(data_offset, data_section) {
            Ok(area) => match Mapping::new(fd, info.offset, area.offset, area.size, info.flags) {
                Ok(m) => access.mapping = Some(m),
                Err(e) => {
                    let errno = e.raw_os_error().map_or_else(|| e.to_string(), errno_name);
                    no_mmap_reason = Some(format!(
                        "mmap of region bytes {}..{} failed: {errno}",
                        area.offset,
                        area.offset + area.size
                    ));
                }
            },
            Err(reason) => no_mmap_reason = Some(reason),
        }
    }
    let layout = Layout {
        index: info.index,
        size: info.size,
        data_offset,
        data_section,
        access: if access.mapping.is_some() {
            DataAccess::Mmap
        } else {
            DataAccess::Pread
        },
        no_mmap_reason,
    };
    Ok(V1::new(access, layout))
}
