//! What `agent serve` listens on, and the readiness report it gives the harness.

use crate::model::Protocol;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Schema tag of the readiness report.
pub const READY_SCHEMA: &str = "netassay.ready/v1";

/// One listener to serve: `tcp:80`, `udp:81`, `sctp:80` (port 0 picks a free port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenSpec {
    pub protocol: Protocol,
    pub port: u16,
}

impl ListenSpec {
    /// The standard model's listeners: TCP, UDP and SCTP on ports 80 and 81.
    pub fn standard() -> Vec<ListenSpec> {
        let mut all = Vec::new();
        for protocol in Protocol::ALL {
            for port in [80, 81] {
                all.push(ListenSpec { protocol, port });
            }
        }
        all
    }

    /// Parses a comma-separated list such as `tcp:80,udp:80,sctp:81`.
    pub fn parse_list(s: &str) -> Result<Vec<ListenSpec>, String> {
        let out = s
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<ListenSpec>, _>>()?;
        if let Some(spec) = ListenSpec::repeated(&out) {
            return Err(format!("\"{spec}\" is listed twice"));
        }
        if out.is_empty() {
            return Err("no listeners given: expected e.g. tcp:80,udp:80".into());
        }
        Ok(out)
    }

    /// The first listener named twice; port 0 may repeat (each picks its own free port).
    pub fn repeated(specs: &[ListenSpec]) -> Option<ListenSpec> {
        specs
            .iter()
            .enumerate()
            .find(|(i, spec)| spec.port != 0 && specs[..*i].contains(spec))
            .map(|(_, spec)| *spec)
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.protocol.lower(), self.port)
    }
}

impl FromStr for ListenSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (proto, port) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not of the form protocol:port, e.g. tcp:80"))?;
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => return Err(format!("{s:?}: protocol must be tcp, udp or sctp")),
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{s:?}: port must be a number from 0 to 65535"))?;
        Ok(ListenSpec { protocol, port })
    }
}

/// Whether a listener is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerState {
    Serving,
    /// The protocol is missing where the agent runs; probes to it are `unsupported` cells.
    Unsupported,
}

/// One listener in the readiness report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStatus {
    pub protocol: Protocol,
    /// The port actually bound (the requested one when unsupported).
    pub port: u16,
    pub state: ListenerState,
    /// Why the listener is not serving (e.g. the errno of `socket()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `agent serve` reports once every listener is bound: in `--ready-file` and on
/// `GET /netassay/ready` of its HTTP port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyReport {
    pub schema: String,
    pub identity: String,
    pub listeners: Vec<ListenerStatus>,
    /// The HTTP listener's port, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
}

impl ReadyReport {
    /// Whether `protocol` is unsupported on this agent (no listener of it is serving).
    pub fn is_unsupported(&self, protocol: Protocol) -> bool {
        let mut of_protocol = self.listeners.iter().filter(|l| l.protocol == protocol);
        of_protocol.clone().next().is_some()
            && of_protocol.all(|l| l.state == ListenerState::Unsupported)
    }

    /// The port a serving listener of `protocol` actually bound, in listing order.
    pub fn serving_ports(&self, protocol: Protocol) -> Vec<u16> {
        self.listeners
            .iter()
            .filter(|l| l.protocol == protocol && l.state == ListenerState::Serving)
            .map(|l| l.port)
            .collect()
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_lists_parse_case_insensitively_in_order() {
        let l = ListenSpec::parse_list("tcp:80, UDP:81,sctp:0").unwrap();
        assert_eq!(
            l,
            vec![
                ListenSpec {
                    protocol: Protocol::Tcp,
                    port: 80
                },
                ListenSpec {
                    protocol: Protocol::Udp,
                    port: 81
                },
                ListenSpec {
                    protocol: Protocol::Sctp,
                    port: 0
                },
            ]
        );
        assert_eq!(l[0].to_string(), "tcp:80");
    }

    #[test]
    fn bad_listener_lists_say_what_is_wrong() {
        assert!(ListenSpec::parse_list("")
            .unwrap_err()
            .contains("no listeners"));
        assert!(ListenSpec::parse_list("http:80")
            .unwrap_err()
            .contains("tcp, udp or sctp"));
        assert!(ListenSpec::parse_list("tcp80")
            .unwrap_err()
            .contains("protocol:port"));
        assert!(ListenSpec::parse_list("tcp:80,tcp:80")
            .unwrap_err()
            .contains("twice"));
        assert!(
            ListenSpec::parse_list("tcp:0,tcp:0").is_ok(),
            "port 0 may repeat"
        );
    }

    #[test]
    fn the_standard_listeners_are_six() {
        assert_eq!(ListenSpec::standard().len(), 6);
    }

    #[test]
    fn a_protocol_is_unsupported_only_when_none_of_its_listeners_serve() {
        let status = |protocol, port, state| ListenerStatus {
            protocol,
            port,
            state,
            reason: None,
        };
        let r = ReadyReport {
            schema: READY_SCHEMA.into(),
            identity: "x/a".into(),
            listeners: vec![
                status(Protocol::Tcp, 80, ListenerState::Serving),
                status(Protocol::Sctp, 80, ListenerState::Unsupported),
            ],
            http_port: None,
        };
        assert!(r.is_unsupported(Protocol::Sctp));
        assert!(!r.is_unsupported(Protocol::Tcp));
        assert!(
            !r.is_unsupported(Protocol::Udp),
            "not listed is not unsupported"
        );
        assert_eq!(r.serving_ports(Protocol::Tcp), vec![80]);
        let back: ReadyReport = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back, r);
        assert!(r.to_json().contains(r#""state": "unsupported""#));
    }
}
