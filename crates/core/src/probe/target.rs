//! Probe targets: `10.0.0.5:80`, `[fd00::5]:80` or `name.ns.svc.cluster.local:80`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use thiserror::Error;

/// Where a probe goes: an address, or a name the agent resolves first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// A host and a port, as written in a probe's `target`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: Host,
    pub port: u16,
}

impl HostPort {
    /// The socket address, when the host is already an address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Why a target string is not a usable `host:port` or DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    #[error("{0:?} has no port: expected host:port, e.g. 10.0.0.5:80 or [fd00::5]:80")]
    MissingPort(String),
    #[error("{0:?} has an invalid port: expected a number from 1 to 65535")]
    BadPort(String),
    #[error("{0:?} is not a valid DNS name: {1}")]
    BadName(String, &'static str),
}

impl FromStr for HostPort {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(TargetError::BadPort(s.to_string()));
            }
            return Ok(HostPort {
                host: Host::Ip(addr.ip()),
                port: addr.port(),
            });
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| TargetError::MissingPort(s.to_string()))?;
        let port = match port.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err(TargetError::BadPort(s.to_string())),
        };
        if host.contains(':') || host.starts_with('[') {
            // An IPv6 address must be bracketed; a bare one is ambiguous with the port.
            return Err(TargetError::MissingPort(s.to_string()));
        }
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(check_dns_name(host)?.to_string()),
        };
        Ok(HostPort { host, port })
    }
}

/// Checks the shape of a DNS name (RFC 1123 labels, optional trailing dot); returns it unchanged.
pub(crate) fn check_dns_name(name: &str) -> Result<&str, TargetError> {
    let bad = |why| Err(TargetError::BadName(name.to_string(), why));
    let body = name.strip_suffix('.').unwrap_or(name);
    if body.is_empty() {
        return bad("it is empty");
    }
    if body.len() > 253 {
        return bad("it is longer than 253 characters");
    }
    for label in body.split('.') {
        if label.is_empty() {
            return bad("it has an empty label");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad("labels may hold only letters, digits, '-' and '_'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with '-'");
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_bracketed_ipv6_targets_parse_to_addresses() {
        let v4: HostPort = "10.0.0.5:80".parse().unwrap();
        assert_eq!(v4.socket_addr(), Some("10.0.0.5:80".parse().unwrap()));
        let v6: HostPort = "[fd00::5]:81".parse().unwrap();
        assert_eq!(v6.socket_addr(), Some("[fd00::5]:81".parse().unwrap()));
        assert_eq!(v6.to_string(), "[fd00::5]:81");
    }

    #[test]
    fn service_names_parse_to_names_that_the_agent_resolves() {
        let t: HostPort = "b.y.svc.cluster.local:80".parse().unwrap();
        assert_eq!(t.host, Host::Name("b.y.svc.cluster.local".into()));
        assert_eq!(t.port, 80);
        assert_eq!(t.socket_addr(), None);
    }

    #[test]
    fn targets_without_a_usable_port_are_rejected() {
        for bad in [
            "10.0.0.5",
            "10.0.0.5:0",
            "10.0.0.5:70000",
            "fd00::5:80",
            "name:x",
        ] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn malformed_names_are_rejected() {
        for bad in ["a..b:80", "-a.b:80", "a b:80", ":80"] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad} should not parse");
        }
        assert!(check_dns_name("svc.ns.svc.cluster.local.").is_ok());
    }
}
