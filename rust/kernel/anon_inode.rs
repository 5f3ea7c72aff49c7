// SPDX-License-Identifier: GPL-2.0

//! Anonymous-inode files.
//!
//! A file that no path names: the kernel creates it for an object of its own and hands it to
//! userspace as a file descriptor, e.g. the data file of a VFIO device's migration. What the file
//! does is given by a `#[vtable]` implementation of [`Operations`], much like
//! [`MiscDevice`](crate::miscdevice::MiscDevice); the file owns a [`ForeignOwnable`] pointer to
//! the object, which it drops when it is released.
//!
//! The files are streams: they have no position, so `pread()`, `pwrite()` and `lseek()` fail with
//! `ESPIPE`.
//!
//! While such a file is open, the module whose code implements it cannot be unloaded. The file's
//! `file_operations` are the same for every implementation and live in the kernel image: they call
//! the implementation through a table of the implementing module, and drop the module reference
//! only after its `release` returned, so no module code runs after that.
//!
//! C header: [`include/linux/anon_inodes.h`](srctree/include/linux/anon_inodes.h)

use crate::{
    bindings,
    error::{
        from_err_ptr,
        from_result,
        VTABLE_DEFAULT_ERROR, //
    },
    fs::File,
    prelude::*,
    sync::aref::ARef,
    types::ForeignOwnable,
    uaccess::{
        UserPtr,
        UserSlice,
        UserSliceReader,
        UserSliceWriter, //
    },
    ThisModule,
};
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};

/// What an anonymous-inode file does.
///
/// # Examples
///
/// A file that reads as a counter's value and counts its ioctls:
///
/// ```
/// use kernel::{
///     anon_inode::{self, Access},
///     prelude::*,
///     sync::{atomic::{Atomic, Relaxed}, Arc, ArcBorrow},
///     uaccess::{UserPtr, UserSliceWriter},
/// };
///
/// struct Counter(Atomic<u64>);
///
/// #[vtable]
/// impl anon_inode::Operations for Counter {
///     type Ptr = Arc<Counter>;
///
///     fn read(this: ArcBorrow<'_, Counter>, buf: &mut UserSliceWriter) -> Result<usize> {
///         let value = this.0.load(Relaxed).to_le_bytes();
///         let len = buf.len().min(value.len());
///         buf.write_slice(&value[..len])?;
///         Ok(len)
///     }
///
///     fn ioctl(this: ArcBorrow<'_, Counter>, _cmd: u32, _arg: UserPtr) -> Result<isize> {
///         this.0.fetch_add(1, Relaxed);
///         Ok(0)
///     }
/// }
///
/// fn counter_file(module: &ThisModule) -> Result<kernel::sync::aref::ARef<kernel::fs::File>> {
///     let counter = Arc::new(Counter(Atomic::new(0)), GFP_KERNEL)?;
///     anon_inode::create::<Counter>(c"counter", module, counter, Access::ReadOnly)
/// }
/// ```
#[vtable]
pub trait Operations: Sized + 'static {
    /// The file's pointer to its object, dropped by [`Operations::release`].
    type Ptr: ForeignOwnable + Send + Sync;

    /// Reads from the file into `buf`; returns the number of bytes read, 0 at the end.
    fn read(
        this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        buf: &mut UserSliceWriter,
    ) -> Result<usize> {
        let _ = (this, buf);
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Writes `buf` to the file; returns the number of bytes written.
    fn write(
        this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        buf: &mut UserSliceReader,
    ) -> Result<usize> {
        let _ = (this, buf);
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Handles ioctl `cmd` with argument `arg`. Unknown commands should fail with `ENOTTY`.
    fn ioctl(
        this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        cmd: u32,
        arg: UserPtr,
    ) -> Result<isize> {
        let _ = (this, cmd, arg);
        Err(ENOTTY)
    }

    /// Called when the last reference to the file is gone.
    fn release(this: Self::Ptr) {
        drop(this);
    }
}

/// How userspace may use a file.
///
/// # Examples
///
/// ```
/// use kernel::anon_inode::Access;
///
/// // A file to read a saved state from.
/// let access = Access::ReadOnly;
/// assert_ne!(access, Access::WriteOnly);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `read()` only.
    ReadOnly,
    /// `write()` only.
    WriteOnly,
    /// `read()` and `write()`.
    ReadWrite,
}

impl Access {
    fn flags(self) -> u32 {
        match self {
            Self::ReadOnly => bindings::O_RDONLY,
            Self::WriteOnly => bindings::O_WRONLY,
            Self::ReadWrite => bindings::O_RDWR,
        }
    }
}

/// Creates an anonymous-inode file named `name` (userspace sees `anon_inode:<name>`) that
/// `T` implements on `data`, with `access`.
///
/// The file holds a reference to `module`, the module that implements `T`, until it is released.
pub fn create<T: Operations>(
    name: &'static CStr,
    module: &ThisModule,
    data: T::Ptr,
    access: Access,
) -> Result<ARef<File>> {
    let module = module.as_ptr();
    // SAFETY: `module` is a live module, or null for code built into the kernel image.
    if !unsafe { bindings::try_module_get(module) } {
        return Err(ENODEV);
    }
    let undo = |data: *mut c_void| {
        // SAFETY: `data` came from `into_foreign()` below and nothing else has it.
        drop(unsafe { T::Ptr::from_foreign(data) });
        // SAFETY: The reference taken above.
        unsafe { bindings::module_put(module) };
    };

    let data = data.into_foreign();
    let private = match KBox::new(
        Private {
            ops: &Vtable::<T>::OPS,
            module,
            data,
        },
        GFP_KERNEL,
    ) {
        Ok(private) => KBox::into_raw(private),
        Err(e) => {
            undo(data);
            return Err(e.into());
        }
    };

    // SAFETY: `name` is static; `FILE_OPERATIONS` is a static of the kernel image; `private` is a
    // valid `Private`, which the file owns from now on.
    let file = from_err_ptr(unsafe {
        bindings::anon_inode_getfile(
            name.as_char_ptr(),
            &FILE_OPERATIONS.0,
            private.cast(),
            access.flags() as c_int,
        )
    });
    let file = match file.map(NonNull::new) {
        Ok(Some(file)) => file,
        Ok(None) | Err(_) => {
            // SAFETY: The file was not created, so `private` is still ours.
            let private = unsafe { KBox::from_raw(private) };
            undo(private.data);
            return Err(file.err().unwrap_or(ENOMEM));
        }
    };
    // SAFETY: `file` is a new file that nobody else uses yet; this makes it a stream.
    unsafe { bindings::stream_open((*file.as_ptr()).f_inode, file.as_ptr()) };
    // SAFETY: `anon_inode_getfile()` returned a reference to the file, which is ours; `File` is a
    // transparent wrapper of `struct file`.
    Ok(unsafe { ARef::from_raw(file.cast::<File>()) })
}

/// The operations of one [`Operations`] implementation, called from [`FILE_OPERATIONS`].
struct Ops {
    read: Option<unsafe fn(*mut c_void, &mut UserSliceWriter) -> Result<usize>>,
    write: Option<unsafe fn(*mut c_void, &mut UserSliceReader) -> Result<usize>>,
    ioctl: unsafe fn(*mut c_void, u32, UserPtr) -> Result<isize>,
    release: unsafe fn(*mut c_void),
}

/// A file's private data.
///
/// # Invariants
///
/// `data` is the foreign pointer of a `T::Ptr` of the `T: Operations` whose table `ops` is, and
/// `module` holds a reference that the file took, until the file is released.
struct Private {
    ops: &'static Ops,
    module: *mut bindings::module,
    data: *mut c_void,
}

struct Vtable<T>(PhantomData<T>);

impl<T: Operations> Vtable<T> {
    const OPS: Ops = Ops {
        read: if T::HAS_READ { Some(Self::read) } else { None },
        write: if T::HAS_WRITE {
            Some(Self::write)
        } else {
            None
        },
        ioctl: Self::ioctl,
        release: Self::release,
    };

    /// # Safety
    ///
    /// `data` must be the `data` of a live [`Private`] of `T`.
    unsafe fn read(data: *mut c_void, buf: &mut UserSliceWriter) -> Result<usize> {
        // SAFETY: By the safety requirements `data` is a `T::Ptr` that is not released.
        T::read(unsafe { T::Ptr::borrow(data) }, buf)
    }

    /// # Safety
    ///
    /// `data` must be the `data` of a live [`Private`] of `T`.
    unsafe fn write(data: *mut c_void, buf: &mut UserSliceReader) -> Result<usize> {
        // SAFETY: By the safety requirements `data` is a `T::Ptr` that is not released.
        T::write(unsafe { T::Ptr::borrow(data) }, buf)
    }

    /// # Safety
    ///
    /// `data` must be the `data` of a live [`Private`] of `T`.
    unsafe fn ioctl(data: *mut c_void, cmd: u32, arg: UserPtr) -> Result<isize> {
        // SAFETY: By the safety requirements `data` is a `T::Ptr` that is not released.
        T::ioctl(unsafe { T::Ptr::borrow(data) }, cmd, arg)
    }

    /// # Safety
    ///
    /// `data` must be the `data` of a [`Private`] of `T` that is being released.
    unsafe fn release(data: *mut c_void) {
        // SAFETY: By the safety requirements nothing uses `data` any more.
        T::release(unsafe { T::Ptr::from_foreign(data) })
    }
}

/// The file operations of every anonymous-inode file, whatever module implements it.
///
/// A `static` of the kernel crate, not a `const`: a reference to a `const` in the generic
/// [`create`] would put a copy of the table in each module that instantiates it, and the VFS reads
/// the table again after the release (`fops_put()` in `__fput()`), when
/// [`release_callback`] has dropped the file's module reference and the module may be gone.
static FILE_OPERATIONS: FileOperations = FileOperations(bindings::file_operations {
    read: Some(read_callback),
    write: Some(write_callback),
    unlocked_ioctl: Some(ioctl_callback),
    #[cfg(CONFIG_COMPAT)]
    compat_ioctl: Some(bindings::compat_ptr_ioctl),
    release: Some(release_callback),
    ..pin_init::zeroed()
});

/// A `struct file_operations` that can be shared between threads.
///
/// # Invariants
///
/// The table is never written.
#[repr(transparent)]
struct FileOperations(bindings::file_operations);

// SAFETY: By the type invariant the table is read-only; its pointers are to functions of the kernel
// image, which any thread may call.
unsafe impl Sync for FileOperations {}

/// Returns the private data of `file`.
///
/// # Safety
///
/// `file` must be a file of [`FILE_OPERATIONS`] that is not released, and `'a` must end before
/// its release.
unsafe fn private<'a>(file: *mut bindings::file) -> &'a Private {
    // SAFETY: By the safety requirements the private data is the `Private` of `create()`, which
    // lives until the release.
    unsafe { &*(*file).private_data.cast::<Private>() }
}

/// Checks an implementation's claim to have moved `done` of the `count` bytes asked for.
fn at_most(done: usize, count: usize) -> Result<isize> {
    if done > count {
        pr_err!("anonymous-inode file claimed {done} bytes of a {count}-byte access\n");
        return Err(EIO);
    }
    isize::try_from(done).map_err(|_| EIO)
}

#[inline(never)]
extern "C" fn read_callback(
    file: *mut bindings::file,
    buf: *mut c_char,
    count: usize,
    _pos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: The VFS only reads from open files, which are not released.
    let private = unsafe { private(file) };
    let Some(read) = private.ops.read else {
        return EINVAL.to_errno() as isize;
    };
    let mut buf = UserSlice::new(UserPtr::from_ptr(buf.cast()), count).writer();
    // SAFETY: By the type invariant `data` belongs to the implementation of `read`.
    from_result(|| at_most(unsafe { read(private.data, &mut buf) }?, count))
}

#[inline(never)]
extern "C" fn write_callback(
    file: *mut bindings::file,
    buf: *const c_char,
    count: usize,
    _pos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: The VFS only writes to open files, which are not released.
    let private = unsafe { private(file) };
    let Some(write) = private.ops.write else {
        return EINVAL.to_errno() as isize;
    };
    let mut buf = UserSlice::new(UserPtr::from_ptr(buf.cast_mut().cast()), count).reader();
    // SAFETY: By the type invariant `data` belongs to the implementation of `write`.
    from_result(|| at_most(unsafe { write(private.data, &mut buf) }?, count))
}

#[inline(never)]
extern "C" fn ioctl_callback(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: The VFS only passes ioctls of open files, which are not released.
    let private = unsafe { private(file) };
    // SAFETY: By the type invariant `data` belongs to the implementation of `ioctl`.
    from_result(|| unsafe { (private.ops.ioctl)(private.data, cmd, UserPtr::from_addr(arg)) })
}

/// Drops the file's object, then the module reference: no code of the module runs after that.
#[inline(never)]
extern "C" fn release_callback(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: The VFS releases a file once, after every other callback returned; the private data
    // is the `Private` that `create()` leaked for the file.
    let private = unsafe { KBox::from_raw((*file).private_data.cast::<Private>()) };
    // SAFETY: By the type invariant `data` belongs to the implementation of `release`, and
    // nothing uses it any more.
    unsafe { (private.ops.release)(private.data) };
    let module = private.module;
    drop(private);
    // SAFETY: By the type invariant the file holds this reference.
    unsafe { bindings::module_put(module) };
    0
}
