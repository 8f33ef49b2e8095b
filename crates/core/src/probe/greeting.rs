//! What `agent serve` says to prove who it is: the greeting line and the UDP echo format.
//!
//! TCP, SCTP and HTTP answers are the greeting `netassay <identity>\n`. A UDP reply is the
//! datagram's payload (the prober's nonce) immediately followed by the greeting.

/// Start of every greeting.
pub const GREETING_PREFIX: &str = "netassay ";

/// Longest identity accepted: `namespace/pod` are each at most 253 characters.
const MAX_IDENTITY: usize = 507;

/// The greeting `agent serve` sends as `identity`.
pub fn greeting(identity: &str) -> String {
    format!("{GREETING_PREFIX}{identity}\n")
}

/// The identity in a greeting, if `bytes` is one (the trailing newline is optional).
pub fn parse_greeting(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let line = text.strip_suffix('\n').unwrap_or(text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let identity = line.strip_prefix(GREETING_PREFIX)?;
    validate_identity(identity).ok()?;
    Some(identity.to_string())
}

/// Checks that an identity can travel in a greeting: non-empty, one line, no spaces.
pub fn validate_identity(identity: &str) -> Result<(), String> {
    if identity.is_empty() {
        return Err("identity is empty".into());
    }
    if identity.len() > MAX_IDENTITY {
        return Err(format!("identity is longer than {MAX_IDENTITY} bytes"));
    }
    if identity
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "identity {identity:?} holds whitespace or control characters"
        ));
    }
    Ok(())
}

/// The reply `agent serve` sends to a UDP datagram carrying `payload`.
pub fn udp_reply(payload: &[u8], identity: &str) -> Vec<u8> {
    let greeting = greeting(identity);
    let mut reply = Vec::with_capacity(payload.len() + greeting.len());
    reply.extend_from_slice(payload);
    reply.extend_from_slice(greeting.as_bytes());
    reply
}

/// What a datagram received by a UDP probe means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpReply {
    /// Our nonce came back; `identity` is the greeting after it, if there was a valid one.
    Echo { identity: Option<String> },
    /// Not an answer to our nonce (stale, or not from an agent).
    Foreign,
}

/// Interprets `reply` to a datagram that carried `nonce`.
pub fn parse_udp_reply(reply: &[u8], nonce: &[u8]) -> UdpReply {
    match reply.strip_prefix(nonce) {
        Some(rest) => UdpReply::Echo {
            identity: parse_greeting(rest),
        },
        None => UdpReply::Foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_greeting_round_trips_to_its_identity() {
        assert_eq!(greeting("y/b"), "netassay y/b\n");
        assert_eq!(
            parse_greeting(greeting("y/b").as_bytes()),
            Some("y/b".into())
        );
        assert_eq!(parse_greeting(b"netassay y/b"), Some("y/b".into()));
    }

    #[test]
    fn anything_else_is_not_a_greeting() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"netassay \n",
            b"netassay a b\n",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_greeting(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn udp_replies_echo_the_nonce_then_greet() {
        let reply = udp_reply(b"0123abcd", "x/a");
        assert_eq!(reply, b"0123abcdnetassay x/a\n");
        assert_eq!(
            parse_udp_reply(&reply, b"0123abcd"),
            UdpReply::Echo {
                identity: Some("x/a".into())
            }
        );
        assert_eq!(parse_udp_reply(&reply, b"ffffffff"), UdpReply::Foreign);
        assert_eq!(
            parse_udp_reply(b"0123abcd", b"0123abcd"),
            UdpReply::Echo { identity: None }
        );
    }

    #[test]
    fn identities_must_fit_on_one_line() {
        assert!(validate_identity("netassay-r1-x/a").is_ok());
        assert!(validate_identity("").is_err());
        assert!(validate_identity("x/a b").is_err());
        assert!(validate_identity("x/a\n").is_err());
    }
}
