//! Where a network namespace's UDP source-port ledger lives (the agent's `source_ports` keeps
//! it; the sandbox removes it with the namespace it belongs to).

use std::path::PathBuf;

/// Where the ledgers live: a tmpfs every Linux system and every container has.
pub const UDP_LEDGER_DIR: &str = "/dev/shm";

/// A ledger's file name: this, then the network namespace's inode number.
pub const UDP_LEDGER_PREFIX: &str = "netassay-udp-source-ports.";

/// The ledger of the network namespace whose nsfs inode is `inode`.
pub fn udp_ledger_path(inode: u64) -> PathBuf {
    PathBuf::from(UDP_LEDGER_DIR).join(format!("{UDP_LEDGER_PREFIX}{inode}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_ledger_is_named_by_its_namespaces_inode_in_dev_shm() {
        assert_eq!(
            super::udp_ledger_path(4026532281),
            std::path::Path::new("/dev/shm/netassay-udp-source-ports.4026532281")
        );
    }
}
