// SPDX-License-Identifier: GPL-2.0

//! Opening an mdev through either VFIO front door, as `selftests/rmtty/rmtty_vfio.c` does:
//!
//! - its group (`/dev/vfio/<group>`, the group of its `iommu_group` link) set on a new type1
//!   container (`/dev/vfio/vfio`, `VFIO_TYPE1v2_IOMMU`), then `VFIO_GROUP_GET_DEVICE_FD` with the
//!   mdev's UUID;
//! - its iommufd cdev (`/dev/vfio/devices/vfioN`, the one its `vfio-dev/` directory names),
//!   bound to a new `/dev/iommu` with `VFIO_DEVICE_BIND_IOMMUFD` and attached to a new IOAS.
//!
//! `vfio-ioctls` does both ([`VfioContainer`], [`VfioIommufd`]); its [`VfioDevice`] closes what it
//! opened when dropped, the device first.

use crate::transport::{Error, Result};
use iommufd_ioctls::IommuFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vfio_ioctls::{VfioContainer, VfioDevice, VfioIommufd};

/// Where the mdevs are.
pub const MDEV_DEVICES: &str = "/sys/bus/mdev/devices";

/// The VFIO front door a device is opened through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FrontDoor {
    /// The legacy group and a type1 container.
    #[default]
    Group,
    /// The iommufd cdev.
    Cdev,
}

impl FrontDoor {
    pub fn name(self) -> &'static str {
        match self {
            FrontDoor::Group => "group",
            FrontDoor::Cdev => "cdev",
        }
    }
}

/// The sysfs directory of the device `arg` names: a path if it has a `/`, else the UUID of an
/// mdev under [`MDEV_DEVICES`].
pub fn sysfs_path(arg: &str) -> PathBuf {
    if arg.contains('/') {
        PathBuf::from(arg)
    } else {
        Path::new(MDEV_DEVICES).join(arg)
    }
}

/// Opens the device at sysfs directory `path` through `door`.
pub fn open(path: &Path, door: FrontDoor) -> Result<VfioDevice> {
    let what = format!("opening {} through its {}", path.display(), door.name());
    if !path.is_dir() {
        return Err(Error::other(what, "no such device"));
    }
    if path.file_name().and_then(|name| name.to_str()).is_none() {
        return Err(Error::other(
            what,
            "the path does not end in the device's name",
        ));
    }
    let device = match door {
        FrontDoor::Group => {
            let container = VfioContainer::new(None).map_err(|e| Error::caused_by(&what, &e))?;
            VfioDevice::new(path, Arc::new(container), false)
        }
        FrontDoor::Cdev => {
            let iommufd = IommuFd::new().map_err(|e| Error::caused_by(&what, &e))?;
            let iommufd = VfioIommufd::new(Arc::new(iommufd), None, None)
                .map_err(|e| Error::caused_by(&what, &e))?;
            VfioDevice::new(path, Arc::new(iommufd), true)
        }
    };
    device.map_err(|e| Error::caused_by(what, &e))
}
