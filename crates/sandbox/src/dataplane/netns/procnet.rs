//! Listening TCP sockets of a network namespace, read from `/proc/<pid>/net/tcp{,6}` of a
//! process inside it. Readiness is judged here rather than by connecting through the node, so a
//! deny-all policy never makes a pod unready (kubelet probes are exempt from policy, too).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

const LISTEN: &str = "0A";

/// Ports with a listener that accepts connections to `pod_ip` (bound to it, to the wildcard, or
/// to the IPv4-mapped form of either), from the text of `/proc/net/tcp` and `/proc/net/tcp6`.
pub fn listening_ports(tcp: &str, tcp6: &str, pod_ip: Ipv4Addr) -> BTreeSet<u16> {
    let v4 = entries(tcp).filter_map(|(address, port)| {
        let ip = parse_v4(address)?;
        (ip.is_unspecified() || ip == pod_ip).then_some(port)
    });
    let v6 = entries(tcp6).filter_map(|(address, port)| {
        let ip = parse_v6(address)?;
        let reaches = ip.is_unspecified()
            || ip
                .to_ipv4_mapped()
                .is_some_and(|v4| v4.is_unspecified() || v4 == pod_ip);
        reaches.then_some(port)
    });
    v4.chain(v6).collect()
}

/// `(local address hex, port)` of every listening socket in the table.
fn entries(table: &str) -> impl Iterator<Item = (&str, u16)> {
    table.lines().skip(1).filter_map(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        let state = fields.nth(1)?;
        if state != LISTEN {
            return None;
        }
        let (address, port) = local.split_once(':')?;
        Some((address, u16::from_str_radix(port, 16).ok()?))
    })
}

/// The kernel prints each 32-bit word of the address in host byte order.
fn parse_v4(hex: &str) -> Option<Ipv4Addr> {
    let word = u32::from_str_radix(hex, 16).ok()?;
    (hex.len() == 8).then(|| Ipv4Addr::from(word.to_ne_bytes()))
}

fn parse_v6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut octets = [0u8; 16];
    for (i, chunk) in octets.chunks_mut(4).enumerate() {
        let word = u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(Ipv6Addr::from(octets))
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue\n";
    const POD: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 2);

    fn table(rows: &[&str]) -> String {
        let mut text = HEADER.to_string();
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
        text
    }

    #[test]
    fn wildcard_and_pod_address_listeners_count_and_loopback_ones_do_not() {
        let tcp = table(&[
            "   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000",
            "   1: 0200F40A:0051 00000000:0000 0A 00000000:00000000 00:00000000 00000000",
            "   2: 0100007F:0052 00000000:0000 0A 00000000:00000000 00:00000000 00000000",
            "   3: 0300F40A:0053 00000000:0000 0A 00000000:00000000 00:00000000 00000000",
        ]);
        assert_eq!(listening_ports(&tcp, "", POD), BTreeSet::from([0x50, 0x51]));
    }

    #[test]
    fn connected_sockets_are_not_listeners() {
        let tcp = table(&[
            "   0: 0200F40A:0050 0101FEA9:8BBA 01 00000000:00000000 00:00000000 00000000",
            "   1: 0200F40A:0050 0101FEA9:8BBA 06 00000000:00000000 00:00000000 00000000",
        ]);
        assert!(listening_ports(&tcp, "", POD).is_empty());
    }

    #[test]
    fn ipv6_wildcard_and_mapped_pod_address_listeners_count() {
        let tcp6 = table(&[
            "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A",
            "   1: 0000000000000000FFFF00000200F40A:01BB 00000000000000000000000000000000:0000 0A",
            "   2: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A",
        ]);
        assert_eq!(listening_ports("", &tcp6, POD), BTreeSet::from([8080, 443]));
    }
}
