//! Catalog RT-09: the runtime's writes to `/proc` (sysctls) cannot be
//! redirected by a mount over the target in the container's mount
//! namespace. libcontainer's init writes each sysctl through pathrs's
//! unmasked procfs handle (`ProcfsHandleBuilder::new().unmasked()`), a
//! procfs of its own rather than the `/proc` the container could have
//! mounted over; this proves that handle ignores such a mount, as root
//! against the real kernel, with a read (a write would set the host's).

use std::io::Read;

use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandleBuilder};

#[test]
fn sysctl_writes_go_to_procfs_whatever_is_mounted_over_the_target() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts over /proc in a namespace of its own: run it as root"
    );
    let target = "/proc/sys/kernel/shmmni";
    let real = std::fs::read_to_string(target).unwrap();
    let decoy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(decoy.path(), "decoy\n").unwrap();
    // A thread of its own, in a mount namespace of its own: what an
    // attacker's bind over the target looks like to the runtime.
    let decoy_path = decoy.path().to_path_buf();
    std::thread::spawn(move || {
        use rustix::mount::{MountPropagationFlags, mount_bind, mount_change};
        use rustix::thread::{UnshareFlags, unshare_unsafe};
        // SAFETY: this thread shares nothing the new namespaces could
        // surprise: it only mounts and reads below.
        unsafe { unshare_unsafe(UnshareFlags::FS | UnshareFlags::NEWNS) }.unwrap();
        mount_change(
            "/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )
        .unwrap();
        let procfs = ProcfsHandleBuilder::new().unmasked().build().unwrap();
        let read = |procfs: &pathrs::procfs::ProcfsHandle| {
            procfs
                .open(
                    ProcfsBase::ProcRoot,
                    "sys/kernel/shmmni",
                    OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
                )
                .map(|mut f| {
                    let mut got = String::new();
                    f.read_to_string(&mut got).unwrap();
                    got
                })
        };
        // The handle works before the bind (else the refusal below would
        // prove nothing).
        assert_eq!(read(&procfs).unwrap(), real);
        mount_bind(&decoy_path, target).unwrap();
        assert_eq!(
            std::fs::read_to_string(target).unwrap(),
            "decoy\n",
            "the bind hides the target from a path"
        );
        // Either the handle refuses the overmounted file, or it reaches
        // the kernel's own.
        let fresh = ProcfsHandleBuilder::new().unmasked().build().unwrap();
        if let Ok(got) = read(&fresh) {
            assert_eq!(got, real, "the handle read the decoy");
        }
    })
    .join()
    .unwrap();
}
