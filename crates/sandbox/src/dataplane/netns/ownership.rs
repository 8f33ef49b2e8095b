//! Who owns an instance, and removing instances by name: the state file `<prefix>.json`
//! records the owning process so a later start can sweep what dead owners left behind.
//!
//! Order is what makes this safe against concurrent instances: an owner writes its state file
//! before it creates any namespace and removes it after everything else, so a namespace seen
//! before the state files are read either has a state file or is an orphan.

use super::super::DataplaneError;
use super::host;
use super::names::{Prefix, ETC_NETNS};
use crate::processes::{kill_recorded, process_start_time, PIDS_FILE, STATE_SUBDIR};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::sleep;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub prefix: String,
    pub pid: u32,
    /// Start time of the owner (`/proc/<pid>/stat` field 22), so a reused pid is not "alive".
    pub start_time: Option<u64>,
}

impl Owner {
    pub fn this_process(prefix: &Prefix) -> Owner {
        let pid = std::process::id();
        Owner {
            prefix: prefix.as_str().to_string(),
            pid,
            start_time: process_start_time(pid),
        }
    }

    pub fn is_alive(&self) -> bool {
        match (process_start_time(self.pid), self.start_time) {
            (None, _) => false,
            (Some(now), Some(recorded)) => now == recorded,
            (Some(_), None) => true,
        }
    }
}

/// Claims `prefix` by creating its state file exclusively, with full contents (written to a
/// temporary file, then hard-linked: the link fails if the name exists). False if taken.
pub fn claim(dir: &Path, prefix: &Prefix) -> Result<bool, DataplaneError> {
    std::fs::create_dir_all(dir)?;
    let owner = Owner::this_process(prefix);
    let text = serde_json::to_string(&owner).expect("owner serialises");
    static ATTEMPT: AtomicU64 = AtomicU64::new(0);
    let attempt = ATTEMPT.fetch_add(1, Ordering::Relaxed);
    let temporary = dir.join(format!(".{prefix}.{}.{attempt}.tmp", owner.pid));
    std::fs::write(&temporary, text)?;
    let linked = std::fs::hard_link(&temporary, prefix.state_file(dir));
    std::fs::remove_file(&temporary)?;
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Every readable state file in `dir`. Unreadable ones are skipped: `claim` never leaves a
/// partial file under a state file's name.
pub fn read_owners(dir: &Path) -> Vec<Owner> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .filter_map(|text| serde_json::from_str::<Owner>(&text).ok())
        .filter(|owner| Prefix::parse(&owner.prefix).is_some())
        .collect()
}

/// Prefixes to sweep: owners that are dead, and namespaces of the scheme with no state file.
pub fn sweep_targets(netns_before: &[String], owners: &[Owner]) -> Vec<Prefix> {
    let mut targets: Vec<Prefix> = owners
        .iter()
        .filter(|owner| !owner.is_alive())
        .filter_map(|owner| Prefix::parse(&owner.prefix))
        .collect();
    for netns in netns_before {
        if let Some(prefix) = Prefix::of_netns(netns) {
            if !owners.iter().any(|owner| owner.prefix == prefix.as_str()) {
                targets.push(prefix);
            }
        }
    }
    targets.sort();
    targets.dedup();
    targets
}

/// Waits for, then holds, the machine's sweep lock: an exclusive `flock` on the state folder
/// itself (made if missing), so no lock file is left behind. Released when the returned file is
/// dropped.
pub fn lock_sweeps(dir: &Path) -> Result<std::fs::File, DataplaneError> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(dir)?;
    let folder = std::fs::File::open(dir)?;
    // SAFETY: flock on a file descriptor this function owns for the call's duration.
    if unsafe { libc::flock(folder.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(folder)
}

/// Removes every trace of instance `prefix` by name: processes in its namespaces, the
/// namespaces (their veths and nft tables go with them), their `/etc/netns` folders, any link or
/// table in the root namespace carrying the prefix, its bpffs and cgroup (Cilium's), its log
/// folder, and finally its state file.
/// Keeps going after a failure and reports all of them.
pub fn remove_instance(dir: &Path, prefix: &Prefix) -> Result<(), DataplaneError> {
    let mut failures = Vec::new();
    let mut note = |result: Result<(), DataplaneError>| {
        if let Err(e) = result {
            failures.push(e.to_string());
        }
    };
    let namespaces: Vec<String> = match host::list_netns() {
        Ok(all) => all.into_iter().filter(|ns| prefix.owns(ns)).collect(),
        Err(e) => {
            note(Err(e));
            Vec::new()
        }
    };
    for netns in &namespaces {
        note(kill_everything_in(netns));
    }
    // A real node's (`--sandbox-node kubelet`): containerd's shims and the containers outlive
    // it and run in pods' namespaces of containerd's, not the instance's; every one of them is
    // in the instance's cgroups.
    note(
        crate::kubelet_node::remove_leftovers(dir, prefix.as_str()).map_err(|e| {
            DataplaneError::Command {
                what: "removing the real node's processes and cgroups".into(),
                detail: e.to_string(),
            }
        }),
    );
    for netns in &namespaces {
        note(delete_netns(netns));
    }
    note(remove_etc_of(Path::new(ETC_NETNS), prefix));
    match host::list_links() {
        Ok(links) => {
            for link in links.iter().filter(|link| prefix.owns(link)) {
                note(host::remove(&["ip", "link", "delete", link]));
            }
        }
        Err(e) => note(Err(e)),
    }
    match host::list_tables() {
        Ok(tables) => {
            for (family, table) in tables.iter().filter(|(_, name)| prefix.owns(name)) {
                note(host::remove(&["nft", "delete", "table", family, table]));
            }
        }
        Err(e) => note(Err(e)),
    }
    // A reference control plane whose owner died: its processes run in the root namespace.
    kill_recorded(&prefix.log_dir(dir).join(STATE_SUBDIR).join(PIDS_FILE));
    note(
        crate::cni::networks::unmount_cilium_bpffs(&prefix.log_dir(dir)).map_err(|e| {
            DataplaneError::Command {
                what: "unmounting the instance's bpffs".into(),
                detail: e.to_string(),
            }
        }),
    );
    // The empty cgroup its Cilium agent attached its socket load balancer to
    // (`--sandbox-proxy cilium`), by the instance's name.
    note(
        crate::cgroup::remove(prefix.as_str()).map_err(|e| DataplaneError::Command {
            what: "removing the instance's cgroup".into(),
            detail: e.to_string(),
        }),
    );
    note(remove_path(&prefix.log_dir(dir), true));
    note(
        crate::cni::networks::release_cilium_mount_point(dir).map_err(|e| {
            DataplaneError::Command {
                what: format!("removing {}", crate::cni::networks::CILIUM_RUN_MOUNT_POINT),
                detail: e.to_string(),
            }
        }),
    );
    // The state file goes last, and only when all else is gone, so a later sweep retries.
    if failures.is_empty() {
        if let Err(e) = remove_path(&prefix.state_file(dir), false) {
            failures.push(e.to_string());
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(DataplaneError::Command {
            what: format!("removing sandbox instance {prefix}"),
            detail: failures.join("; "),
        })
    }
}

/// Deletes a network namespace, and the UDP source-port ledger its probers kept in
/// `/dev/shm` (the agent's): with the namespace gone, its conntrack entries are gone too, so
/// the ledger guards nothing, and a later namespace that gets the same inode starts afresh.
pub fn delete_netns(netns: &str) -> Result<(), DataplaneError> {
    let inode = std::fs::metadata(Path::new("/run/netns").join(netns))
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    host::remove(&["ip", "netns", "delete", netns])?;
    if let Some(inode) = inode {
        remove_path(&netassay_core::probe::udp_ledger_path(inode), false)?;
    }
    Ok(())
}

/// Removes `<etc>/<netns>/resolv.conf` and then the folder (only if that leaves it empty: what
/// someone else put there stays, and the failure says so).
pub fn remove_netns_etc(etc: &Path, netns: &str) -> Result<(), DataplaneError> {
    let dir = etc.join(netns);
    remove_path(&dir.join("resolv.conf"), false)?;
    match std::fs::remove_dir(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DataplaneError::Command {
            what: format!("removing {}", dir.display()),
            detail: e.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The `<etc>/<netns>` folders of the instance's namespaces (by the naming scheme, whether or
/// not the namespace still exists); nothing else in `etc` is touched.
pub fn remove_etc_of(etc: &Path, prefix: &Prefix) -> Result<(), DataplaneError> {
    let entries = match std::fs::read_dir(etc) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(DataplaneError::Command {
                what: format!("listing {}", etc.display()),
                detail: e.to_string(),
            })
        }
    };
    let mut failures = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefix.owns_netns(&name) {
            if let Err(e) = remove_netns_etc(etc, &name) {
                failures.push(e.to_string());
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(DataplaneError::Command {
            what: format!("removing {}/{prefix}-*", etc.display()),
            detail: failures.join("; "),
        })
    }
}

/// SIGKILLs every process inside `netns` until none is left (processes may fork meanwhile).
pub fn kill_everything_in(netns: &str) -> Result<(), DataplaneError> {
    for _ in 0..50 {
        let pids = host::netns_pids(netns)?;
        if pids.is_empty() {
            return Ok(());
        }
        host::kill(&pids)?;
        sleep(Duration::from_millis(20));
    }
    Err(DataplaneError::Command {
        what: format!("ip netns pids {netns}"),
        detail: "processes keep appearing after SIGKILL".to_string(),
    })
}

fn remove_path(path: &Path, folder: bool) -> Result<(), DataplaneError> {
    let result = if folder {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DataplaneError::Command {
            what: format!("removing {}", path.display()),
            detail: e.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(prefix: &str, pid: u32, start_time: Option<u64>) -> Owner {
        Owner {
            prefix: prefix.to_string(),
            pid,
            start_time,
        }
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = Owner::this_process(&Prefix::parse("na0000").unwrap());
        assert!(me.is_alive());
        let reused = owner("na0000", me.pid, me.start_time.map(|t| t + 1));
        assert!(!reused.is_alive());
        assert!(!owner("na0000", u32::MAX, None).is_alive());
    }

    #[test]
    fn sweep_targets_dead_owners_and_namespaces_without_a_state_file() {
        let alive = Owner::this_process(&Prefix::parse("na0001").unwrap());
        let dead = owner("na0002", u32::MAX, Some(1));
        let netns = [
            "na0001-node",
            "na0002-p3",
            "na0003-ext",
            "cni-abcdef",
            "na0004-mine",
        ]
        .map(String::from);
        let targets = sweep_targets(&netns, &[alive, dead]);
        let names: Vec<&str> = targets.iter().map(Prefix::as_str).collect();
        assert_eq!(names, ["na0002", "na0003"]);
    }

    #[test]
    fn etc_netns_folders_are_removed_by_name_and_only_the_instances_own() {
        let etc = tempfile::tempdir().unwrap();
        let prefix = Prefix::parse("na12ab").unwrap();
        for name in [
            "na12ab-p1",
            "na12ab-p22",
            "na12ab-out",
            "na12ac-p1",
            "na12ab-mine",
            "cni-1",
        ] {
            std::fs::create_dir(etc.path().join(name)).unwrap();
            std::fs::write(
                etc.path().join(name).join("resolv.conf"),
                "nameserver 10.96.0.10\n",
            )
            .unwrap();
        }
        remove_etc_of(etc.path(), &prefix).expect("removed");
        let mut left: Vec<String> = std::fs::read_dir(etc.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["cni-1", "na12ab-mine", "na12ac-p1"]);
        // Someone else's file in one of ours: the folder stays, and the failure says so.
        std::fs::create_dir(etc.path().join("na12ab-p3")).unwrap();
        std::fs::write(etc.path().join("na12ab-p3").join("hosts"), "").unwrap();
        let err = remove_etc_of(etc.path(), &prefix).expect_err("not empty");
        assert!(err.to_string().contains("na12ab-p3"), "{err}");
        assert!(etc.path().join("na12ab-p3").join("hosts").exists());
        // Nothing to remove is fine, as is a missing /etc/netns.
        remove_netns_etc(etc.path(), "na12ab-p9").expect("absent");
        remove_etc_of(&etc.path().join("nope"), &prefix).expect("no folder");
    }

    #[test]
    fn a_claimed_prefix_cannot_be_claimed_again() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Prefix::parse("na00ff").unwrap();
        assert!(claim(dir.path(), &prefix).unwrap());
        assert!(!claim(dir.path(), &prefix).unwrap());
        let owners = read_owners(dir.path());
        assert_eq!(owners, [Owner::this_process(&prefix)]);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files remain");
    }
}
