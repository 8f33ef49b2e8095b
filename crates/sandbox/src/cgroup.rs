//! The cgroup an instance's Cilium agent attaches its socket load balancer to, under
//! `--sandbox-proxy cilium` (Cilium's kube-proxy replacement, which always turns socket LB on).
//!
//! The unified (v2) hierarchy is one for the whole machine: the root of a fresh `cgroup2` mount
//! is every process's cgroup, so programs attached there would rewrite the `connect()` of every
//! process on the host, in every network namespace. Each instance therefore gets an empty
//! cgroup of its own, `<unified>/netassay/<instance>`, which the agent sees bind-mounted at its
//! `--cgroup-root` (a mount point of type cgroup2, so Cilium attaches there rather than mount a
//! fresh hierarchy over it). No task is in it: the socket programs touch nothing, and pods are
//! load-balanced per packet at their own veth. The instance's removal (and a later start's
//! sweep of a dead owner) removes the cgroup by name.
//!
//! Also what the kernel says is attached to a cgroup (`BPF_PROG_QUERY`), for the checks that
//! nothing landed at the hierarchy's root.

use std::io;
use std::path::{Path, PathBuf};

/// The folder under the unified hierarchy's root that holds every instance's cgroup.
pub const PARENT: &str = "netassay";

/// Where the unified (cgroup v2) hierarchy's root is mounted in this mount namespace:
/// `/sys/fs/cgroup/unified` on a hybrid host, `/sys/fs/cgroup` on a v2-only one. `None` when
/// no cgroup2 mount shows its root.
pub fn unified_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    unified_root_in(&mounts)
}

/// [`unified_root`] from the text of a mountinfo file.
fn unified_root_in(mountinfo: &str) -> Option<PathBuf> {
    roots_in(mountinfo, &["cgroup2"]).into_iter().next()
}

/// The mount points of filesystems of `types` mounted at their root, from the text of a
/// mountinfo file, in its order, each once.
pub(crate) fn roots_in(mountinfo: &str, types: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for line in mountinfo.lines() {
        // <id> <parent> <dev> <root> <mount point> <options> [<optional>...] - <fs> <src> <opts>
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = before.split(' ').collect();
        let (Some(fstype), Some(at)) = (after.split(' ').next(), fields.get(4)) else {
            continue;
        };
        let at = PathBuf::from(at.replace("\\040", " "));
        if types.contains(&fstype) && fields.get(3) == Some(&"/") && !out.contains(&at) {
            out.push(at);
        }
    }
    out
}

/// The instance's cgroup (whether or not it exists).
pub fn instance_cgroup(root: &Path, instance: &str) -> PathBuf {
    root.join(relative(instance))
}

/// The instance's cgroup relative to the hierarchy's root (`netassay/<instance>`).
pub fn relative(instance: &str) -> String {
    format!("{PARENT}/{instance}")
}

/// Creates the instance's empty cgroup; its path. Another instance's removal may take the
/// shared parent away in between: then it is made again.
pub fn create(instance: &str) -> io::Result<PathBuf> {
    let root = unified_root().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no cgroup2 mount of the unified hierarchy's root in /proc/self/mountinfo",
        )
    })?;
    let path = instance_cgroup(&root, instance);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let made = std::fs::create_dir_all(root.join(PARENT)).and_then(|()| {
            match std::fs::create_dir(&path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                r => r,
            }
        });
        match made {
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 => continue,
            r => return r.map(|()| path),
        }
    }
}

/// Removes the instance's cgroup, and the shared parent if that leaves it empty (another
/// instance's keeps it). Nothing else is touched; an absent cgroup is fine.
pub fn remove(instance: &str) -> io::Result<()> {
    let Some(root) = unified_root() else {
        return Ok(());
    };
    let path = instance_cgroup(&root, instance);
    match std::fs::remove_dir(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                e.kind(),
                format!("removing cgroup {}: {e}", path.display()),
            ))
        }
        _ => {}
    }
    // Absent, or still holding another instance's cgroup (ENOTEMPTY, or EBUSY on cgroupfs).
    match std::fs::remove_dir(root.join(PARENT)) {
        Err(e)
            if !matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
            ) && e.raw_os_error() != Some(libc::EBUSY) =>
        {
            Err(e)
        }
        _ => Ok(()),
    }
}

/// A BPF program attached to a cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The attach type's number (`BPF_CGROUP_INET4_CONNECT` is 10, ...).
    pub attach_type: u32,
    /// The program's ID.
    pub id: u32,
    /// The program's name as the kernel keeps it (its first 15 bytes; Cilium's are `cil_*`).
    pub name: String,
}

const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
/// The cgroup attach types (`enum bpf_attach_type`): the INET hooks, sock_ops, device, bind,
/// connect, post_bind, sendmsg, sysctl, recvmsg, sockopt, getpeername, getsockname,
/// sock_release, lsm_cgroup and the unix-socket ones (6.7+). A kernel without one answers
/// EINVAL. Others are left out: for some (tcx, netkit) the query's fd would be read as an
/// interface index.
const CGROUP_ATTACH_TYPES: [u32; 29] = [
    0, 1, 2, 3, 6, 8, 9, 10, 11, 12, 13, 14, 15, 18, 19, 20, 21, 22, 29, 30, 31, 32, 34, 43, 49,
    50, 51, 52, 53,
];

/// `union bpf_attr` as BPF_PROG_QUERY reads it (padded to the union's size of this era).
#[repr(C)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: [u32; 25],
}

/// `union bpf_attr` as BPF_PROG_GET_FD_BY_ID reads it.
#[repr(C)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
    _pad: [u32; 29],
}

/// `union bpf_attr` as BPF_OBJ_GET_INFO_BY_FD reads it.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
    _pad: [u32; 28],
}

/// `struct bpf_prog_info` up to its name.
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    type_: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// The bpf(2) system call with `attr`, a `union bpf_attr` shape above.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is one of the repr(C) shapes above, padded to 128 bytes; the kernel reads
    // and writes no more than the size given, and the pointers in it point at live buffers
    // the caller holds across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The programs attached directly to the cgroup at `path` (not the ones it inherits), over
/// every cgroup attach type, as `bpftool cgroup show` lists them.
pub fn attached(path: &Path) -> io::Result<Vec<Attached>> {
    let dir = std::fs::File::open(path)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
    let mut out = Vec::new();
    for attach_type in CGROUP_ATTACH_TYPES {
        let mut ids = [0u32; 64];
        let mut attr = QueryAttr {
            target_fd: u32::try_from(fd).map_err(io::Error::other)?,
            attach_type,
            query_flags: 0,
            attach_flags: 0,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            _pad: [0; 25],
        };
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {}
            // An attach type this kernel does not have.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
            Err(e) => return Err(e),
        }
        for &id in ids.iter().take(attr.prog_cnt as usize) {
            out.push(Attached {
                attach_type,
                id,
                name: program_name(id).unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

/// A program's name, by its ID.
fn program_name(id: u32) -> io::Result<String> {
    let mut attr = IdAttr {
        id,
        next_id: 0,
        open_flags: 0,
        _pad: [0; 29],
    };
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: the kernel just gave us this descriptor; OwnedFd closes it once.
    let fd =
        unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as libc::c_int) };
    let mut info = ProgInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: std::os::fd::AsRawFd::as_raw_fd(&fd) as u32,
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as u64,
        _pad: [0; 28],
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let end = info
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(info.name.len());
    Ok(String::from_utf8_lossy(&info.name[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The unified hierarchy's root is the cgroup2 mount whose root is `/`: on a hybrid host
    // beside the v1 controllers, on a v2-only host at /sys/fs/cgroup; a cgroup2 mount of a
    // sub-cgroup (a container's view) is not it.
    #[test]
    fn the_unified_root_is_the_cgroup2_mount_of_its_root() {
        let hybrid = "30 24 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory\n\
                      27 24 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            unified_root_in(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let v2 = "61 60 0:30 /netassay/na1 /run/x rw - cgroup2 cgroup2 rw\n\
                  25 22 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(unified_root_in(v2), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(
            unified_root_in("25 22 0:22 / /proc rw - proc proc rw\n"),
            None
        );
        assert_eq!(
            instance_cgroup(Path::new("/sys/fs/cgroup/unified"), "na1234"),
            PathBuf::from("/sys/fs/cgroup/unified/netassay/na1234")
        );
    }
}
