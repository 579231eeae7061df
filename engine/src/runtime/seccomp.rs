//! berth's default seccomp profile: Docker's default, as moby maintains it
//! (an allowlist; everything else fails with EPERM), with the later
//! hardening moby added: `io_uring` blocked, `socket` refused for AF_ALG and
//! AF_VSOCK, and `socketcall` (the i386 multiplexer that would reach those
//! families with arguments a filter cannot see) refused. Syscalls that need
//! a capability are allowed only when the container has it, as Docker does.
//!
//! `libcontainer` ships no profile; this one goes into every container's
//! OCI spec unless `security_opt: seccomp=unconfined` or a profile file
//! replaces it.

use std::collections::HashSet;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator,
    LinuxSyscall,
};

use crate::{Error, Result};

/// Stamped into the spec's annotations so a container says which profile
/// it runs under.
pub const PROFILE_VERSION: &str =
    "berth-default-1 (moby default + io_uring, AF_ALG, AF_VSOCK, socketcall blocked)";

/// Files, directories, extended attributes and file descriptors.
const FILES: &[&str] = &[
    "access",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "close",
    "close_range",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futimesat",
    "getcwd",
    "getdents",
    "getdents64",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "name_to_handle_at",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pread64",
    "preadv",
    "preadv2",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "sendfile",
    "sendfile64",
    "setxattr",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "tee",
    "truncate",
    "truncate64",
    "umask",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vmsplice",
    "write",
    "writev",
];

/// Waiting on descriptors, asynchronous I/O (not io_uring), event and
/// timer descriptors.
const EVENTS: &[&str] = &[
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "_newselect",
    "pause",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "ppoll_time64",
    "pselect6",
    "pselect6_time64",
    "select",
    "signalfd",
    "signalfd4",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
];

/// Memory.
const MEMORY: &[&str] = &[
    "brk",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mremap",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "remap_file_pages",
];

/// Processes, threads, identities, limits and scheduling.
const PROCESSES: &[&str] = &[
    "capget",
    "capset",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "futex",
    "futex_time64",
    "futex_waitv",
    "getcpu",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "get_thread_area",
    "gettid",
    "getuid",
    "getuid32",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "prlimit64",
    "process_mrelease",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "restart_syscall",
    "rseq",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "sysinfo",
    "ugetrlimit",
    "uname",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
];

/// Signals.
const SIGNALS: &[&str] = &[
    "kill",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "sigprocmask",
    "sigreturn",
    "tgkill",
    "tkill",
];

/// Clocks and timers (reading them; setting the clock needs CAP_SYS_TIME).
const TIME: &[&str] = &[
    "adjtimex",
    "alarm",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "getitimer",
    "gettimeofday",
    "nanosleep",
    "setitimer",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "times",
];

/// System V and POSIX IPC.
const IPC: &[&str] = &[
    "ipc",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
];

/// Sockets, except `socket` itself (allowed per address family below).
const NETWORK: &[&str] = &[
    "accept",
    "accept4",
    "bind",
    "connect",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "send",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setsockopt",
    "shutdown",
    "socketpair",
];

/// x86 only.
const X86: &[&str] = &["arch_prctl", "modify_ldt"];

/// Syscalls a capability unlocks.
const BY_CAPABILITY: &[(Capability, &[&str])] = &[
    (Capability::DacReadSearch, &["open_by_handle_at"]),
    (
        Capability::SysAdmin,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysChroot, &["chroot"]),
    (
        Capability::SysModule,
        &["delete_module", "init_module", "finit_module"],
    ),
    (Capability::SysPacct, &["acct"]),
    (
        Capability::SysPtrace,
        &["kcmp", "pidfd_getfd", "process_madvise"],
    ),
    (Capability::SysRawio, &["iopl", "ioperm"]),
    (
        Capability::SysTime,
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    (Capability::SysTtyConfig, &["vhangup"]),
    (
        Capability::SysNice,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    (Capability::Syslog, &["syslog"]),
    (Capability::Bpf, &["bpf"]),
    (Capability::Perfmon, &["perf_event_open"]),
];

/// The namespace flags of `clone`: without CAP_SYS_ADMIN a container may
/// clone threads and processes, never new namespaces.
const CLONE_NAMESPACE_FLAGS: u64 = 0x0002_0000 // CLONE_NEWNS
    | 0x0200_0000 // CLONE_NEWCGROUP
    | 0x0400_0000 // CLONE_NEWUTS
    | 0x0800_0000 // CLONE_NEWIPC
    | 0x1000_0000 // CLONE_NEWUSER
    | 0x2000_0000 // CLONE_NEWPID
    | 0x4000_0000; // CLONE_NEWNET

/// The `personality` values Docker allows: Linux, with `UNAME26`,
/// `READ_IMPLIES_EXEC`, both, and the query.
const PERSONALITIES: &[u64] = &[0, 0x0008, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// Address families refused: AF_ALG (38, the kernel crypto API) and
/// AF_VSOCK (40). Allowed: below 38, 39, above 40.
const SOCKET_ALLOWED: &[(LinuxSeccompOperator, u64)] = &[
    (LinuxSeccompOperator::ScmpCmpLe, 37),
    (LinuxSeccompOperator::ScmpCmpEq, 39),
    (LinuxSeccompOperator::ScmpCmpGe, 41),
];

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

fn oci(e: oci_spec::OciSpecError) -> Error {
    Error::Conflict(format!("building the seccomp profile: {e}"))
}

fn rule(names: &[&str], action: LinuxSeccompAction) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| n.to_string()).collect());
    s.set_action(action);
    s
}

fn arg(index: usize, op: LinuxSeccompOperator, value: u64) -> Result<LinuxSeccompArg> {
    oci_spec::runtime::LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value)
        .build()
        .map_err(oci)
}

/// The default profile for a container whose bounding set is `caps`.
pub fn default_profile(caps: &HashSet<Capability>) -> Result<LinuxSeccomp> {
    let allow = LinuxSeccompAction::ScmpActAllow;
    let mut rules = Vec::new();
    let mut names: Vec<&str> = [
        FILES, EVENTS, MEMORY, PROCESSES, SIGNALS, TIME, IPC, NETWORK, X86,
    ]
    .concat();
    for (cap, calls) in BY_CAPABILITY {
        if caps.contains(cap) {
            names.extend_from_slice(calls);
        }
    }
    names.sort_unstable();
    names.dedup();
    rules.push(rule(&names, allow));
    for (op, family) in SOCKET_ALLOWED {
        let mut r = rule(&["socket"], allow);
        r.set_args(Some(vec![arg(0, *op, *family)?]));
        rules.push(r);
    }
    for p in PERSONALITIES {
        let mut r = rule(&["personality"], allow);
        r.set_args(Some(vec![arg(0, LinuxSeccompOperator::ScmpCmpEq, *p)?]));
        rules.push(r);
    }
    if !caps.contains(&Capability::SysAdmin) {
        let mut r = rule(&["clone"], allow);
        // `libcontainer` reads a masked comparison as `(arg & valueTwo) ==
        // value`; runc reads `value` as the mask. This is written for the
        // runtime that runs it: (flags & CLONE_NAMESPACE_FLAGS) == 0.
        let masked = oci_spec::runtime::LinuxSeccompArgBuilder::default()
            .index(0usize)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .value(0u64)
            .value_two(CLONE_NAMESPACE_FLAGS)
            .build()
            .map_err(oci)?;
        r.set_args(Some(vec![masked]));
        rules.push(r);
        // ENOSYS, not EPERM: the C library then falls back to `clone`,
        // whose flags the filter can see (clone3 passes them in memory).
        let mut r = rule(&["clone3"], LinuxSeccompAction::ScmpActErrno);
        r.set_errno_ret(Some(ENOSYS));
        rules.push(r);
    }
    oci_spec::runtime::LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(EPERM)
        .architectures(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ])
        .syscalls(rules)
        .build()
        .map_err(oci)
}

/// The profile a `security_opt: seccomp=…` value names: `unconfined` for
/// none, or the path of a JSON file holding an OCI `linux.seccomp` object.
pub fn from_option(value: &str) -> Result<Option<LinuxSeccomp>> {
    if value == "unconfined" {
        return Ok(None);
    }
    let text = std::fs::read_to_string(value).map_err(|e| Error::io(value, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Conflict(format!("seccomp profile {value}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(p: &LinuxSeccomp, name: &str) -> bool {
        p.syscalls().as_ref().unwrap().iter().any(|s| {
            s.action() == LinuxSeccompAction::ScmpActAllow
                && s.args().is_none()
                && s.names().iter().any(|n| n == name)
        })
    }

    #[test]
    fn namespaces_mounts_and_kernel_attack_surface_need_capabilities() {
        let docker_default: HashSet<Capability> =
            [Capability::Chown, Capability::NetBindService].into();
        let p = default_profile(&docker_default).unwrap();
        for ok in [
            "read",
            "openat",
            "execve",
            "futex",
            "wait4",
            "socketpair",
            "ptrace",
        ] {
            assert!(allowed(&p, ok), "{ok}");
        }
        for refused in [
            "unshare",
            "setns",
            "mount",
            "bpf",
            "keyctl",
            "add_key",
            "io_uring_setup",
            "userfaultfd",
            "perf_event_open",
            "kexec_load",
            "init_module",
            "socketcall",
            "open_by_handle_at",
            "clone",
            "socket",
        ] {
            assert!(!allowed(&p, refused), "{refused}");
        }
        let admin: HashSet<Capability> = [Capability::SysAdmin].into();
        let p = default_profile(&admin).unwrap();
        assert!(allowed(&p, "mount") && allowed(&p, "unshare") && allowed(&p, "clone"));
        assert!(!allowed(&p, "keyctl"), "no capability unlocks keyctl");
    }

    #[test]
    fn the_profile_is_valid_oci_json() {
        let p = default_profile(&HashSet::new()).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert!(
            json.contains("\"defaultAction\":\"SCMP_ACT_ERRNO\""),
            "{json}"
        );
        let back: LinuxSeccomp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }
}

/// Compiled filters kept under `<root>/seccomp`, one file per profile,
/// libseccomp and kernel: libseccomp took about 6 ms to compile Docker's
/// profile, in every container's init and every `exec`; with the cache it
/// is compiled once per host and loaded as a ready BPF program.
pub mod cache {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use oci_spec::runtime::LinuxSeccomp;

    use crate::image::Digest;

    /// Programs are compiled as binary trees of syscall numbers (libseccomp's
    /// optimisation level 2): the kernel, which on loading a filter runs it
    /// for every syscall number to cache the constant answers, took 0.66 ms
    /// over Docker's profile as a linear list, 0.29 ms as a tree.
    const LAYOUT: &[u8] = b"\nbinary-tree";

    static DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

    /// Makes the next containers and execs of this process use the cache
    /// under `root` (the state root).
    pub fn use_root(root: &Path) {
        if let Ok(mut dir) = DIR.lock() {
            *dir = Some(root.join("seccomp"));
        }
        libcontainer::seccomp::set_precompiler(program);
    }

    /// The compiled program for `seccomp`: from the cache, or compiled and
    /// stored. `None` leaves the compiling to the container's init.
    fn program(seccomp: &LinuxSeccomp) -> Option<Vec<u8>> {
        let dir = DIR.lock().ok()?.clone()?;
        let path = dir.join(key(seccomp)?);
        if let Ok(bpf) = std::fs::read(&path)
            && !bpf.is_empty()
            && bpf.len() % 8 == 0
        {
            return Some(bpf);
        }
        let bpf = libcontainer::seccomp::compile(seccomp).ok()?;
        // A cache that cannot be written costs the next start a compile.
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = crate::fsutil::write_replace(&path, &bpf);
        }
        Some(bpf)
    }

    /// The profile, libseccomp's version, the kernel's release and how
    /// the program is laid out: what the program depends on.
    fn key(seccomp: &LinuxSeccomp) -> Option<String> {
        let mut material = serde_json::to_vec(seccomp).ok()?;
        material.extend(LAYOUT);
        let v = libseccomp::ScmpVersion::current().ok()?;
        let uname = rustix::system::uname();
        material.extend(format!("\n{}.{}.{}\n", v.major, v.minor, v.micro).bytes());
        material.extend(uname.release().to_bytes());
        Some(format!("{}.bpf", Digest::of(&material).hex()))
    }
}
