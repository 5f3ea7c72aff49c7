// SPDX-License-Identifier: GPL-2.0

//! What carries a device's migration stream: the [`Transport`] a protocol implements, and the
//! states, chunks and errors the sessions in `session.rs` see through it.
//!
//! The sessions speak in the v2 protocol's terms (its states, `PRE_COPY`'s "nothing ready for
//! now", `STOP_COPY`'s end of stream). The v2 transport (`v2.rs`) maps them one to one; the v1
//! migration region (the device's other front end, `samples/rmtty/migration-stream.md`) maps
//! them onto its `device_state` bits, `pending_bytes` and data section, so that a second
//! transport needs no change to the sessions.

use std::fmt;
use std::io;

/// The device's migration states, as the v2 protocol numbers them
/// (`enum vfio_device_mig_state` in `<linux/vfio.h>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigState {
    Error,
    Stop,
    Running,
    StopCopy,
    Resuming,
    RunningP2p,
    PreCopy,
    PreCopyP2p,
}

impl MigState {
    /// Every state, in the order of their v2 numbers.
    pub const ALL: [MigState; 8] = [
        MigState::Error,
        MigState::Stop,
        MigState::Running,
        MigState::StopCopy,
        MigState::Resuming,
        MigState::RunningP2p,
        MigState::PreCopy,
        MigState::PreCopyP2p,
    ];

    /// The state of v2 number `value`, if there is one.
    pub fn from_v2(value: u32) -> Option<Self> {
        Self::ALL.get(usize::try_from(value).ok()?).copied()
    }

    /// The state's v2 number.
    pub fn v2(self) -> u32 {
        // CAST: the discriminants are 0..8, in the order of the v2 numbers.
        self as u32
    }

    /// The uAPI's name of the state, without the `VFIO_DEVICE_STATE_` prefix.
    pub fn name(self) -> &'static str {
        match self {
            MigState::Error => "ERROR",
            MigState::Stop => "STOP",
            MigState::Running => "RUNNING",
            MigState::StopCopy => "STOP_COPY",
            MigState::Resuming => "RESUMING",
            MigState::RunningP2p => "RUNNING_P2P",
            MigState::PreCopy => "PRE_COPY",
            MigState::PreCopyP2p => "PRE_COPY_P2P",
        }
    }
}

impl fmt::Display for MigState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a device's migration offers (`VFIO_DEVICE_FEATURE_MIGRATION`'s flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    pub stop_copy: bool,
    pub p2p: bool,
    pub pre_copy: bool,
}

impl Features {
    /// The flags' uAPI names, without the `VFIO_MIGRATION_` prefix.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.stop_copy, "STOP_COPY"),
            (self.p2p, "P2P"),
            (self.pre_copy, "PRE_COPY"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }
}

/// What a saving device says it still has to send, in `PRE_COPY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// v2's `VFIO_MIG_GET_PRECOPY_INFO`: the first pass's bytes not yet read (`initial`), and
    /// the bytes made dirty since they were read (`dirty`).
    Split { initial: u64, dirty: u64 },
    /// v1's `pending_bytes`: the bytes ready to be read, of either kind.
    Total(u64),
}

impl Pending {
    /// All the bytes pending.
    pub fn total(self) -> u64 {
        match self {
            Pending::Split { initial, dirty } => initial.saturating_add(dirty),
            Pending::Total(bytes) => bytes,
        }
    }
}

/// What one read of the stream got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// This many bytes (more than 0).
    Data(usize),
    /// Nothing for now, more may come: v2's `ENOMSG` in `PRE_COPY`.
    NotReady,
    /// The end of the stream: v2's `read() == 0`.
    End,
}

/// A migration step that failed: what was being done, and the errno if the kernel gave one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What failed, e.g. "RUNNING -> STOP_COPY" or "write of stream bytes 0..1048576".
    pub what: String,
    /// The errno, if the failure came with one.
    pub errno: Option<i32>,
    /// More words on the failure (a library's message), if any.
    pub detail: Option<String>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// `what` failed with `errno`.
    pub fn errno(what: impl Into<String>, errno: i32) -> Self {
        Self {
            what: what.into(),
            errno: Some(errno),
            detail: None,
        }
    }

    /// `what` failed for the reason `detail`, with no errno.
    pub fn other(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            errno: None,
            detail: Some(detail.into()),
        }
    }

    /// `what` failed with the I/O error `err`.
    pub fn io(what: impl Into<String>, err: &io::Error) -> Self {
        match err.raw_os_error() {
            Some(errno) => Self::errno(what, errno),
            None => Self::other(what, err.to_string()),
        }
    }

    /// `what` failed with a library's error `err`: the errno is the first one found down the
    /// chain of its sources, and its message is kept as the detail.
    pub fn caused_by(what: impl Into<String>, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut errno = None;
        let mut cause = Some(err);
        while let (None, Some(e)) = (errno, cause) {
            errno = if let Some(e) = e.downcast_ref::<vmm_sys_util::errno::Error>() {
                Some(e.errno())
            } else {
                e.downcast_ref::<io::Error>()
                    .and_then(io::Error::raw_os_error)
            };
            cause = e.source();
        }
        Self {
            what: what.into(),
            errno,
            detail: Some(err.to_string()),
        }
    }

    /// The same failure, as part of `step`.
    pub fn context(mut self, step: impl fmt::Display) -> Self {
        self.what = format!("{step}: {}", self.what);
        self
    }

    /// The errno's symbolic name, e.g. `EINVAL`.
    pub fn errno_name(&self) -> Option<String> {
        self.errno.map(errno_name)
    }
}

/// The symbolic name of `errno`, e.g. `EINVAL`, or `errno N` for one that has none.
pub fn errno_name(errno: i32) -> String {
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::UnknownErrno => format!("errno {errno}"),
        e => format!("{e:?}"),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.what)?;
        match (self.errno, &self.detail) {
            (Some(errno), Some(detail)) => write!(f, ": {}: {detail}", errno_name(errno)),
            (Some(errno), None) => write!(
                f,
                ": {} ({})",
                errno_name(errno),
                nix::errno::Errno::from_raw(errno).desc()
            ),
            (None, Some(detail)) => write!(f, ": {detail}"),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for Error {}

/// A migration protocol of an open device: how the sessions move it between states and move the
/// stream's bytes.
///
/// Implemented by the v2 protocol (`v2.rs`) and the v1 migration region (`v1.rs`): there
/// `set_state` writes `device_state` (`PRE_COPY` is `SAVING | RUNNING`, `STOP_COPY` is
/// `SAVING`), `pending` reads `pending_bytes` ([`Pending::Total`]), `read` returns
/// [`Chunk::NotReady`] or [`Chunk::End`] when `pending_bytes` is 0 in `PRE_COPY` or `STOP_COPY`,
/// and `data_size` gives `None`: v1 has nothing that says what stop-and-copy will produce
/// before it starts.
pub trait Transport {
    /// What the device's migration offers.
    fn features(&mut self) -> Result<Features>;

    /// The state the device is in.
    fn state(&mut self) -> Result<MigState>;

    /// Moves the device to `state`; the kernel walks the arcs in between.
    fn set_state(&mut self, state: MigState) -> Result<()>;

    /// The bytes a stop-and-copy from now on would produce (`MIG_DATA_SIZE`), if the protocol
    /// can tell.
    fn data_size(&mut self) -> Result<Option<u64>>;

    /// What the device still has to send, in `PRE_COPY`.
    fn pending(&mut self) -> Result<Pending>;

    /// Reads the next bytes of the stream being saved into `buf`.
    fn read(&mut self, buf: &mut [u8]) -> Result<Chunk>;

    /// Writes all of `buf` to the stream being loaded.
    fn write_all(&mut self, buf: &[u8]) -> Result<()>;

    /// The size of the pieces a load hands to [`Transport::write_all`]: the most the protocol
    /// takes at once.
    fn write_size(&self) -> usize;

    /// Puts the device back to running after a session failed, as QEMU does when a migration
    /// is cancelled. Gives the state it was put in, or `None` if the protocol leaves that to
    /// the device's close (v2: closing the device returns it to `RUNNING`).
    fn cancel(&mut self) -> Result<Option<MigState>> {
        Ok(None)
    }
}
