// SPDX-License-Identifier: GPL-2.0

//! Region memory that userspace may map: a buffer of whole pages that the driver fills and reads by
//! copying, and that [`DeviceOps::mmap`](super::DeviceOps::mmap) can insert into a mapping of the
//! device.

use crate::{
    bindings,
    mm::virt::{
        flags,
        VmaNew, //
    },
    page::{
        Page,
        PAGE_SIZE, //
    },
    prelude::*,
    uaccess::{
        UserSliceReader,
        UserSliceWriter, //
    },
};

/// A buffer of pages that userspace may map through a region of its device.
///
/// Userspace may read and write a mapped buffer at any time, so no reference to its contents is
/// ever created in Rust: every access is a copy through a pointer into the page's kernel mapping
/// (`memcpy`, or the user-copy routines), and bytes that userspace changes during a copy arrive
/// changed or not, as with any memory shared with userspace. A mapping holds its own references to the pages,
/// so dropping the buffer while it is mapped is sound: the pages go with the last of them.
///
/// # Examples
///
/// ```
/// use kernel::{prelude::*, vfio::MappableBuffer};
///
/// let buffer = MappableBuffer::new(2)?;
/// buffer.write(4090, b"across")?;
/// let mut back = [0; 6];
/// buffer.read(4090, &mut back)?;
/// assert_eq!(&back, b"across");
/// assert_eq!(buffer.read(8190, &mut back), Err(EINVAL));
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// `pages` are order-0 pages owned by the buffer (and by the mappings they were inserted into).
pub struct MappableBuffer {
    pages: KVec<Page>,
}

impl MappableBuffer {
    /// A zeroed buffer of `pages` pages.
    pub fn new(pages: usize) -> Result<Self> {
        let mut all = KVec::with_capacity(pages, GFP_KERNEL)?;
        for _ in 0..pages {
            all.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
        }
        // INVARIANT: `alloc_page` gives order-0 pages.
        Ok(Self { pages: all })
    }

    /// The size of the buffer in bytes.
    pub fn len(&self) -> usize {
        self.pages.len() * PAGE_SIZE
    }

    /// Whether the buffer has no pages.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Calls `copy` with the kernel address, and the offset from `offset`, of each piece of the
    /// `len` bytes at `offset` that lies in one page, in order; fails with `EINVAL`, before any
    /// call, if the bytes do not lie in the buffer.
    fn for_each_piece(
        &self,
        offset: usize,
        len: usize,
        mut copy: impl FnMut(*mut u8, usize, usize) -> Result,
    ) -> Result {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => {}
            _ => return Err(EINVAL),
        }
        let mut done = 0;
        while done < len {
            let at = offset + done;
            let in_page = at % PAGE_SIZE;
            let piece = (PAGE_SIZE - in_page).min(len - done);
            let page = &self.pages[at / PAGE_SIZE];
            // SAFETY: `page` is a valid page; the mapping is undone below, on this thread.
            let base = unsafe { bindings::kmap_local_page(page.as_ptr()) }.cast::<u8>();
            // SAFETY: `in_page + piece <= PAGE_SIZE`, so the address lies in the mapped page.
            let result = copy(unsafe { base.add(in_page) }, done, piece);
            // SAFETY: `base` is the address `kmap_local_page` returned above, the last local
            // mapping made on this thread.
            unsafe { bindings::kunmap_local(base.cast()) };
            result?;
            done += piece;
        }
        Ok(())
    }

    /// Copies `src` into the buffer at `offset`; fails with `EINVAL`, copying nothing, if it does
    /// not fit.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result {
        self.for_each_piece(offset, src.len(), |dst, from, len| {
            // SAFETY: `dst` is valid for `len` bytes of a page of the buffer, and `src` for
            // `from + len`. The page is not a Rust object: userspace racing with this copy only
            // changes which bytes the page ends up with.
            unsafe { core::ptr::copy_nonoverlapping(src.as_ptr().add(from), dst, len) };
            Ok(())
        })
    }

    /// Fills `dst` with the bytes of the buffer at `offset`; fails with `EINVAL`, copying nothing,
    /// if they do not lie in the buffer.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result {
        self.for_each_piece(offset, dst.len(), |src, from, len| {
            // SAFETY: `src` is valid for `len` bytes of a page of the buffer, and `dst` for
            // `from + len`; they do not overlap. Bytes userspace changes meanwhile are read as
            // either value.
            unsafe { core::ptr::copy_nonoverlapping(src, dst.as_mut_ptr().add(from), len) };
            Ok(())
        })
    }

    /// Copies the `out.len()` bytes at `offset` to userspace; fails with `EINVAL` if they do not
    /// lie in the buffer, or `EFAULT` (some bytes copied) at a bad user address.
    pub fn read_to_user(&self, offset: usize, out: &mut UserSliceWriter) -> Result {
        self.for_each_piece(offset, out.len(), |src, _, len| {
            // SAFETY: `src` is valid for reads of `len` bytes of a page of the buffer.
            unsafe { out.write_raw(src, len) }
        })
    }

    /// Copies `src.len()` bytes from userspace into the buffer at `offset`; fails with `EINVAL`
    /// if they do not fit, or `EFAULT` (some bytes copied) at a bad user address.
    pub fn write_from_user(&self, offset: usize, src: &mut UserSliceReader) -> Result {
        self.for_each_piece(offset, src.len(), |dst, _, len| {
            // SAFETY: `dst` is valid for writes of `len` bytes of a page of the buffer.
            unsafe { src.read_to_ptr(dst, len) }
        })
    }

    /// Maps the pages of the buffer from `offset` on into `vma`, which is being set up by an
    /// `mmap()` of its device: the whole of `vma`, which must end inside the buffer. Fails with
    /// `EINVAL` if `offset` is not page aligned, the buffer is too short or the mapping is not
    /// shared (`MAP_PRIVATE` writes would go to copies the device never sees) or executable.
    pub fn map(&self, vma: &VmaNew, offset: usize) -> Result {
        let size = vma.end() - vma.start();
        if offset % PAGE_SIZE != 0 || offset.checked_add(size).is_none_or(|end| end > self.len()) {
            return Err(EINVAL);
        }
        if vma.flags() & flags::SHARED == 0 {
            return Err(EINVAL);
        }
        // Data, never code.
        vma.try_clear_mayexec()?;
        // Like any device memory: neither grown by mremap() nor dumped with the process.
        vma.set_dontexpand();
        vma.set_dontdump();
        let mixed = vma.set_mixedmap();
        let first = offset / PAGE_SIZE;
        for (i, page) in self.pages[first..first + size / PAGE_SIZE]
            .iter()
            .enumerate()
        {
            mixed.vm_insert_page(vma.start() + i * PAGE_SIZE, page)?;
        }
        Ok(())
    }
}
