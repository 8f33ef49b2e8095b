//! The dataplane's own NAT table in the node namespace: masquerade for pod traffic leaving the
//! cluster (towards the external host or the outside vantage). The policy compiler owns a
//! separate table with the filter, the Service DNAT and the hairpin SNAT.

use super::names::{cidr_text, Prefix};
use crate::addresses::POD_CIDR;

/// The whole table as one atomic batch: created if absent, deleted, defined afresh.
pub fn ruleset(prefix: &Prefix) -> String {
    let table = prefix.egress_table();
    format!(
        "table ip {table} {{}}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \x20 chain postrouting {{\n\
         \x20   type nat hook postrouting priority srcnat; policy accept;\n\
         \x20   ip saddr {pods} oifname {{ \"{external}\", \"{outside}\" }} masquerade\n\
         \x20 }}\n\
         }}\n",
        pods = cidr_text(POD_CIDR),
        external = prefix.external_link(),
        outside = prefix.outside_link(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerades_pod_traffic_leaving_towards_the_external_host_and_the_outside() {
        let prefix = Prefix::parse("na12ab").unwrap();
        let text = ruleset(&prefix);
        assert!(text.starts_with("table ip na12ab_egress {}\ndelete table ip na12ab_egress\n"));
        assert!(text.contains(
            "    ip saddr 10.244.0.0/16 oifname { \"na12abx\", \"na12abo\" } masquerade\n"
        ));
    }
}
