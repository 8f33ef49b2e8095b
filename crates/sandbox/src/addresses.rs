//! The sandbox's address plan: pods, Services, the node, and the hosts that stand for the world
//! outside the cluster. Every instance is isolated, so they all use the same plan.

use std::net::Ipv4Addr;

/// The Service ClusterIP range (kubeadm's default).
pub const SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 16);
/// Pod addresses come from here; instances are isolated, so they all use the same range.
pub const POD_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 244, 0, 0), 16);
/// The node's address: what the external host sees after masquerade, what the outside reaches.
pub const NODE_ADDRESS: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The external host ("the internet").
pub const EXTERNAL_ADDRESS: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// An approved package mirror, served by the external host too.
pub const MIRROR_ADDRESS: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
/// The cloud metadata address, served by the external host too (pods reach it via the node).
pub const METADATA_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The outside vantage point.
pub const OUTSIDE_ADDRESS: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
/// The range the external host and the outside vantage route back through the node.
pub const OUTSIDE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(203, 0, 113, 0), 24);
