//! The reference dataplane: one node network namespace routing /32s to pod namespaces over veths, nftables enforcement, an external host.
