//! The real node's cgroups: `netassay/<instance>` in every hierarchy of this host (each cgroup
//! v1 hierarchy, the named `name=systemd` one, and the unified one where runc also writes in
//! hybrid mode). containerd, its shims and the kubelet run in `<instance>/runtime`; the kubelet
//! puts pods under `<instance>/pods` (its `cgroupRoot`). Everything the node started is
//! therefore in the instance's cgroups, and the instance's removal (or the sweep after a killed
//! owner) kills exactly those tasks and removes the cgroups by name, deepest first.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The folder under every hierarchy's root that holds the instances' cgroups (shared with the
/// Cilium agent's empty cgroup, [`crate::cgroup`]).
pub const PARENT: &str = crate::cgroup::PARENT;
/// Where containerd, its shims and the kubelet run.
pub const RUNTIME: &str = "runtime";
/// The kubelet's `cgroupRoot`.
pub const PODS: &str = "pods";

/// Every cgroup hierarchy mounted at its root, from the text of a mountinfo file: cgroup v1
/// ones (one per controller set, and named ones) and the unified one; sorted.
fn hierarchies_in(mountinfo: &str) -> Vec<PathBuf> {
    sorted(crate::cgroup::roots_in(mountinfo, &["cgroup", "cgroup2"]))
}

fn sorted(mut paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths.sort();
    paths
}

/// [`hierarchies_in`] of this process's mount namespace.
pub fn hierarchies() -> io::Result<Vec<PathBuf>> {
    Ok(hierarchies_in(&std::fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

/// The v1 hierarchies alone (what the kubelet's `cgroupRoot` must exist in).
fn v1_hierarchies_in(mountinfo: &str) -> Vec<PathBuf> {
    sorted(crate::cgroup::roots_in(mountinfo, &["cgroup"]))
}

/// The instance's cgroup in a hierarchy (the same path as its Cilium cgroup's).
pub use crate::cgroup::instance_cgroup;

/// The kubelet's `cgroupRoot`: `/netassay/<instance>/pods`.
pub fn pods_root(instance: &str) -> String {
    format!("/{PARENT}/{instance}/{PODS}")
}

/// Makes `dir` (and its missing parents below `hierarchy`) a cgroup; in the cpuset hierarchy a
/// new cgroup has no CPUs or memory nodes until given its parent's.
fn make(hierarchy: &Path, dir: &Path) -> io::Result<()> {
    let relative = dir.strip_prefix(hierarchy).map_err(io::Error::other)?;
    let mut at = hierarchy.to_path_buf();
    for part in relative.components() {
        let parent = at.clone();
        at.push(part);
        match std::fs::create_dir(&at) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("making cgroup {}: {e}", at.display()),
                ))
            }
            _ => {}
        }
        for inherited in ["cpuset.cpus", "cpuset.mems"] {
            let mine = at.join(inherited);
            if mine.exists() && std::fs::read_to_string(&mine)?.trim().is_empty() {
                let value = std::fs::read_to_string(parent.join(inherited))?;
                std::fs::write(&mine, value.trim())?;
            }
        }
    }
    Ok(())
}

/// Creates `netassay/<instance>/runtime` and `netassay/<instance>/pods` in every v1 hierarchy
/// (and `runtime` in the unified one, for the processes' own membership there); the
/// `cgroup.procs` files a process joins to run in the instance's runtime cgroup.
pub fn create(instance: &str) -> io::Result<Vec<PathBuf>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut procs = Vec::new();
    for hierarchy in v1_hierarchies_in(&mountinfo) {
        let base = instance_cgroup(&hierarchy, instance);
        make(&hierarchy, &base.join(PODS))?;
        make(&hierarchy, &base.join(RUNTIME))?;
        procs.push(base.join(RUNTIME).join("cgroup.procs"));
    }
    Ok(procs)
}

/// Every cgroup under `root` (itself included), deepest first.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.filter_map(Result::ok) {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
        out.push(dir);
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// The instance's cgroups, per hierarchy where it has one: the hierarchy, and every cgroup of
/// the instance's tree there, deepest first.
fn instance_trees(instance: &str) -> io::Result<Vec<(PathBuf, Vec<PathBuf>)>> {
    Ok(hierarchies()?
        .into_iter()
        .filter_map(|hierarchy| {
            let base = instance_cgroup(&hierarchy, instance);
            base.exists().then(|| (hierarchy, tree(&base)))
        })
        .collect())
}

/// The tasks (processes) in the instance's cgroups of every hierarchy.
pub fn tasks(instance: &str) -> io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for (_, dirs) in instance_trees(instance)? {
        for dir in dirs {
            if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// Kills every task in the instance's cgroups (SIGKILL, until none is left: a dying shim may
/// still fork), then removes the cgroups, deepest first, in every hierarchy, and the shared
/// parent where that leaves it empty. Only `netassay/<instance>` is touched.
pub fn kill_and_remove(instance: &str) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pids = tasks(instance)?;
        if pids.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(io::Error::other(format!(
                "tasks still in the instance's cgroups after 15s: {pids:?}"
            )));
        }
        for pid in pids {
            // SAFETY: kill(2) on a task that is in this instance's own cgroup.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut failures = Vec::new();
    for (hierarchy, dirs) in instance_trees(instance)? {
        for dir in dirs {
            // A cgroup whose last task just died may stay busy for a moment.
            let mut removed = std::fs::remove_dir(&dir);
            for _ in 0..50 {
                match &removed {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(Duration::from_millis(20));
                        removed = std::fs::remove_dir(&dir);
                    }
                    _ => break,
                }
            }
            match removed {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    failures.push(format!("{}: {e}", dir.display()))
                }
                _ => {}
            }
        }
        // The shared parent, when no other instance keeps it.
        let _ = std::fs::remove_dir(hierarchy.join(PARENT));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "removing cgroups: {}",
            failures.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
35 26 0:30 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw
37 35 0:32 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,name=systemd
40 35 0:35 / /sys/fs/cgroup/cpu rw shared:14 - cgroup cgroup rw,cpu
41 35 0:36 / /sys/fs/cgroup/pids rw shared:15 - cgroup cgroup rw,pids
90 41 0:36 /docker /mnt/elsewhere rw - cgroup cgroup rw,pids
";

    #[test]
    fn every_hierarchy_mounted_at_its_root_is_found() {
        let found = hierarchies_in(MOUNTINFO);
        let want: Vec<PathBuf> = [
            "/sys/fs/cgroup/cpu",
            "/sys/fs/cgroup/pids",
            "/sys/fs/cgroup/systemd",
            "/sys/fs/cgroup/unified",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(found, want);
        assert_eq!(v1_hierarchies_in(MOUNTINFO).len(), 3);
    }

    #[test]
    fn the_pods_root_is_under_the_instance() {
        assert_eq!(pods_root("na1234"), "/netassay/na1234/pods");
        assert_eq!(
            instance_cgroup(Path::new("/sys/fs/cgroup/pids"), "na1234"),
            PathBuf::from("/sys/fs/cgroup/pids/netassay/na1234")
        );
    }

    #[test]
    fn a_tree_lists_children_before_parents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b/c")).unwrap();
        std::fs::create_dir_all(dir.path().join("d")).unwrap();
        let t = tree(dir.path());
        let pos = |p: &str| t.iter().position(|x| x == &dir.path().join(p)).unwrap();
        assert!(pos("a/b/c") < pos("a/b"));
        assert!(pos("a/b") < pos("a"));
        assert_eq!(t.last().unwrap(), dir.path());
    }
}
