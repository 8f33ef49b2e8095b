//! The naming and addressing scheme of one dataplane instance: pure, so the sweep can recognise
//! what an instance owns from names alone.

use crate::addresses::POD_CIDR;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where instances record their owner (`<prefix>.json`) and keep pod logs (`<prefix>/`).
pub const STATE_DIR: &str = "/run/netassay";

/// The next hop every pod routes through (Calico-style): answered by a static neighbour entry.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The MAC of every node-side pod veth, which the pods' static gateway neighbour points at.
pub const GATEWAY_MAC: &str = "ee:ee:ee:ee:ee:ee";
/// Where `ip netns exec NAME` finds files to bind-mount over `/etc` (`NAME/resolv.conf`).
pub const ETC_NETNS: &str = "/etc/netns";

/// `na` + 4 hex digits: short enough that `<prefix>p<index>` fits an interface name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(String);

impl Prefix {
    pub fn parse(text: &str) -> Option<Prefix> {
        let hex = text.strip_prefix("na")?;
        let valid = hex.len() == 4 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| Prefix(text.to_string()))
    }

    /// A fresh random prefix (not yet claimed: see `ownership::claim`).
    pub fn random() -> Prefix {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = RandomState::new().build_hasher();
        std::process::id().hash(&mut hasher);
        COUNTER.fetch_add(1, Ordering::Relaxed).hash(&mut hasher);
        std::time::SystemTime::now().hash(&mut hasher);
        Prefix(format!("na{:04x}", hasher.finish() as u16))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix of a network namespace this scheme would have created, if it is one.
    pub fn of_netns(netns: &str) -> Option<Prefix> {
        let (prefix, role) = netns.split_once('-')?;
        let role_ok = matches!(role, "node" | "ext" | "out")
            || role
                .strip_prefix('p')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if role_ok {
            Prefix::parse(prefix)
        } else {
            None
        }
    }

    /// Does this name (netns, link or table) belong to the instance?
    pub fn owns(&self, name: &str) -> bool {
        name.starts_with(&self.0)
    }

    pub fn node_netns(&self) -> String {
        format!("{}-node", self.0)
    }
    pub fn external_netns(&self) -> String {
        format!("{}-ext", self.0)
    }
    pub fn outside_netns(&self) -> String {
        format!("{}-out", self.0)
    }
    pub fn pod_netns(&self, index: u32) -> String {
        format!("{}-p{index}", self.0)
    }

    /// The bridge of a CNI bridge network in the node's namespace.
    pub fn bridge_link(&self) -> String {
        format!("{}br", self.0)
    }

    /// Node-side end of a pod's veth (the pod side is always `eth0`).
    pub fn pod_link(&self, index: u32) -> String {
        format!("{}p{index}", self.0)
    }
    /// Node-side end of the veth to the external host.
    pub fn external_link(&self) -> String {
        format!("{}x", self.0)
    }
    /// Node-side end of the veth to the outside vantage.
    pub fn outside_link(&self) -> String {
        format!("{}o", self.0)
    }

    /// The table the policy compiler's rulesets replace (`_`: the compiler asks for an nft
    /// identifier of letters, digits and underscores).
    pub fn policy_table(&self) -> String {
        format!("{}_policy", self.0)
    }
    /// Routing-side NAT owned by the dataplane: masquerade out of the cluster.
    pub fn egress_table(&self) -> String {
        format!("{}_egress", self.0)
    }

    /// Whether `netns` is one of this instance's namespaces by the naming scheme.
    pub fn owns_netns(&self, netns: &str) -> bool {
        Prefix::of_netns(netns).as_ref() == Some(self)
    }

    pub fn state_file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.json", self.0))
    }
    pub fn log_dir(&self, dir: &Path) -> PathBuf {
        dir.join(&self.0)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Largest pod index whose link name still fits `IFNAMSIZ` and whose address fits the /16.
pub const MAX_POD_INDEX: u32 = 254 * 256 - 1;

/// Pod `index` (from 1) gets the `index`-th address of the pod range that does not end in .0 or
/// .255, so 1 → 10.244.0.2 and no address is reused while the instance lives.
pub fn pod_address(index: u32) -> Option<Ipv4Addr> {
    if index == 0 || index > MAX_POD_INDEX {
        return None;
    }
    let [a, b, _, _] = POD_CIDR.0.octets();
    let third = (index / 254) as u8;
    let fourth = (index % 254 + 1) as u8;
    Some(Ipv4Addr::new(a, b, third, fourth))
}

pub fn cidr_text((addr, len): (Ipv4Addr, u8)) -> String {
    format!("{addr}/{len}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_na_and_four_lowercase_hex_digits() {
        assert!(Prefix::parse("na01af").is_some());
        for bad in ["na01a", "na01afe", "nb01af", "na01AF", "na0-af", ""] {
            assert!(Prefix::parse(bad).is_none(), "{bad}");
        }
        for _ in 0..100 {
            assert!(Prefix::parse(Prefix::random().as_str()).is_some());
        }
    }

    #[test]
    fn every_link_name_fits_ifnamsiz() {
        let p = Prefix::parse("naffff").unwrap();
        for name in [
            p.pod_link(MAX_POD_INDEX),
            p.external_link(),
            p.outside_link(),
        ] {
            assert!(name.len() <= 15, "{name}");
        }
    }

    #[test]
    fn netns_names_map_back_to_their_prefix() {
        let p = Prefix::parse("na12ab").unwrap();
        for ns in [
            p.node_netns(),
            p.external_netns(),
            p.outside_netns(),
            p.pod_netns(7),
        ] {
            assert_eq!(Prefix::of_netns(&ns), Some(p.clone()), "{ns}");
        }
        for foreign in [
            "na12ab-pod",
            "na12ab-p",
            "na12ab-px",
            "cni-1234",
            "na12a-node",
            "x-node",
        ] {
            assert_eq!(Prefix::of_netns(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn pod_addresses_skip_dot_zero_and_dot_255_and_stay_in_the_range() {
        assert_eq!(pod_address(0), None);
        assert_eq!(pod_address(1), Some(Ipv4Addr::new(10, 244, 0, 2)));
        assert_eq!(pod_address(253), Some(Ipv4Addr::new(10, 244, 0, 254)));
        assert_eq!(pod_address(254), Some(Ipv4Addr::new(10, 244, 1, 1)));
        assert_eq!(
            pod_address(MAX_POD_INDEX),
            Some(Ipv4Addr::new(10, 244, 255, 254))
        );
        assert_eq!(pod_address(MAX_POD_INDEX + 1), None);
        let all: std::collections::BTreeSet<_> = (1..=MAX_POD_INDEX).map(pod_address).collect();
        assert_eq!(all.len(), MAX_POD_INDEX as usize);
    }
}
