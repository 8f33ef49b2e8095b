//! CIDRs as the API server parses them (k8s.io/utils/net.ParseCIDRSloppy = Go 1.16
//! net.ParseCIDR).

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const CIDR_ERR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
const GO_BIG: u32 = 0xFF_FFFF;

/// Go's `dtoi`: decimal digits (leading zeros allowed) → (value, bytes used, ok).
fn go_dtoi(s: &[u8]) -> (u32, usize, bool) {
    let mut n: u32 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        n = n * 10 + u32::from(s[i] - b'0');
        if n >= GO_BIG {
            return (GO_BIG, i, false);
        }
        i += 1;
    }
    (n, i, i > 0)
}

/// Go's `xtoi`: hex digits → (value, bytes used, ok).
fn go_xtoi(s: &[u8]) -> (u32, usize, bool) {
    let mut n: u32 = 0;
    let mut i = 0;
    while i < s.len() {
        let d = match s[i] {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        };
        n = n * 16 + u32::from(d);
        if n >= GO_BIG {
            return (0, i, false);
        }
        i += 1;
    }
    (n, i, i > 0)
}

/// Dotted quad; octets may have leading zeros (read as decimal).
fn go_parse_ipv4(mut s: &[u8]) -> Option<[u8; 4]> {
    let mut p = [0u8; 4];
    for (i, slot) in p.iter_mut().enumerate() {
        if s.is_empty() {
            return None;
        }
        if i > 0 {
            if s[0] != b'.' {
                return None;
            }
            s = &s[1..];
        }
        let (n, c, ok) = go_dtoi(s);
        if !ok || n > 0xFF {
            return None;
        }
        s = &s[c..];
        *slot = u8::try_from(n).ok()?;
    }
    s.is_empty().then_some(p)
}

/// IPv6 literal with optional `::` and trailing dotted quad; no zone.
fn go_parse_ipv6(mut s: &[u8]) -> Option<[u8; 16]> {
    let mut ip = [0u8; 16];
    let mut ellipsis: Option<usize> = None;
    if s.len() >= 2 && s[0] == b':' && s[1] == b':' {
        ellipsis = Some(0);
        s = &s[2..];
        if s.is_empty() {
            return Some(ip);
        }
    }
    let mut i = 0usize;
    while i < 16 {
        let (n, c, ok) = go_xtoi(s);
        if !ok || n > 0xFFFF {
            return None;
        }
        if c < s.len() && s[c] == b'.' {
            if ellipsis.is_none() && i != 12 {
                return None;
            }
            if i + 4 > 16 {
                return None;
            }
            let v4 = go_parse_ipv4(s)?;
            ip[i..i + 4].copy_from_slice(&v4);
            s = &[];
            i += 4;
            break;
        }
        let [_, _, hi, lo] = n.to_be_bytes();
        ip[i] = hi;
        ip[i + 1] = lo;
        i += 2;
        s = &s[c..];
        if s.is_empty() {
            break;
        }
        if s[0] != b':' || s.len() == 1 {
            return None;
        }
        s = &s[1..];
        if s[0] == b':' {
            if ellipsis.is_some() {
                return None;
            }
            ellipsis = Some(i);
            s = &s[1..];
            if s.is_empty() {
                break;
            }
        }
    }
    if !s.is_empty() {
        return None;
    }
    if i < 16 {
        let e = ellipsis?;
        let n = 16 - i;
        ip.copy_within(e..i, e + n);
        ip[e..e + n].fill(0);
    } else if ellipsis.is_some() {
        return None;
    }
    Some(ip)
}

/// What the API server accepts as a CIDR (IPv4 and IPv6), as k8s.io/utils `ParseCIDRSloppy`:
/// leading zeros in IPv4 octets and in the prefix length are accepted, bits set beyond the prefix
/// are accepted (non-strict, the 1.33 default), IPv4-mapped IPv6 stays IPv6. The returned net is
/// masked. The error is the API server's detail text.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let err = || CIDR_ERR.to_string();
    let (addr, mask) = s.split_once('/').ok_or_else(err)?;
    let (ip, bits) = match go_parse_ipv4(addr.as_bytes()) {
        Some(v4) => (IpAddr::V4(Ipv4Addr::from(v4)), 32),
        None => match go_parse_ipv6(addr.as_bytes()) {
            Some(v6) => (IpAddr::V6(Ipv6Addr::from(v6)), 128),
            None => return Err(err()),
        },
    };
    let (n, used, ok) = go_dtoi(mask.as_bytes());
    if !ok || used != mask.len() || n > bits {
        return Err(err());
    }
    let prefix = u8::try_from(n).map_err(|_| err())?;
    let net = match ip {
        IpAddr::V4(a) => Ipv4Net::new(a, prefix).map(IpNet::V4),
        IpAddr::V6(a) => Ipv6Net::new(a, prefix).map(IpNet::V6),
    }
    .map_err(|_| err())?;
    Ok(net.trunc())
}

fn go_to4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => a.to_ipv4_mapped(),
    }
}

/// Go's `(*net.IPNet).Contains` for a net from ParseCIDR: an IPv4-mapped IPv6 net and address
/// compare as IPv4; IPv4 never matches a (non-mapped) IPv6 net and vice versa.
pub(super) fn go_contains(net: &IpNet, ip: IpAddr) -> bool {
    match net {
        IpNet::V4(n) => go_to4(ip).is_some_and(|a| n.contains(&a)),
        IpNet::V6(n) => match n.network().to_ipv4_mapped() {
            Some(net4) => {
                let plen = n.prefix_len().saturating_sub(96);
                Ipv4Net::new(net4, plen).is_ok_and(|n4| go_to4(ip).is_some_and(|a| n4.contains(&a)))
            }
            None => match ip {
                IpAddr::V6(a) if a.to_ipv4_mapped().is_none() => n.contains(&a),
                _ => false,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing() {
        let ok = [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("192.168.1.77/32", "192.168.1.77/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("010.001.002.003/016", "10.1.0.0/16"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:DB8:0:0:0:0:0:1/64", "2001:db8::/64"),
            ("::/0", "::/0"),
            ("::1/128", "::1/128"),
            ("fe80::1:2/10", "fe80::/10"),
            ("::ffff:10.1.2.3/120", "::ffff:10.1.2.0/120"),
            ("1:2:3:4:5:6:1.2.3.4/128", "1:2:3:4:5:6:102:304/128"),
            ("::00001/128", "::1/128"),
        ];
        for (input, want) in ok {
            let got = parse_cidr(input).map(|n| n.to_string());
            assert_eq!(got.as_deref(), Ok(want), "{input}");
        }
        let bad = [
            "",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "10.0.0.256/8",
            "10.0.0.0.0/8",
            " 10.0.0.0/8",
            "10.0.0.0/8 ",
            "::/129",
            "1::2::3/64",
            "1:2:3:4:5:6:7:8:9/64",
            "1:2:3:4:5:6:7::8/64",
            "fe80::1%eth0/64",
            "::1.2.3/128",
            "1.2.3.4::/64",
            "::12345/128",
            "gggg::/16",
        ];
        for input in bad {
            assert_eq!(
                parse_cidr(input),
                Err(CIDR_ERR.to_string()),
                "{input:?} should be rejected"
            );
        }
    }

    #[test]
    fn go_containment() {
        let net = |s: &str| parse_cidr(s).expect("cidr");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(go_contains(&net("10.0.0.0/8"), ip("10.1.0.0")));
        assert!(!go_contains(&net("10.0.0.0/8"), ip("11.0.0.0")));
        assert!(go_contains(&net("10.0.0.0/8"), ip("::ffff:10.1.0.0")));
        assert!(go_contains(&net("::ffff:10.0.0.0/104"), ip("10.1.0.0")));
        assert!(!go_contains(&net("::/0"), ip("10.1.0.0")));
        assert!(!go_contains(&net("::/0"), ip("::ffff:10.1.0.0")));
        assert!(go_contains(&net("2001:db8::/32"), ip("2001:db8:1::")));
    }
}
