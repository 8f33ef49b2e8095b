//! `agent dns`: the sandbox's cluster DNS, an authoritative server answering from a zone file.
//!
//! The zone file holds one record per line, `<fqdn> <ipv4-or-ipv6>`; a name may have several
//! lines; `#` starts a comment; names are case-insensitive and the trailing dot is optional.
//! A line `!dns-rules <source-ip> [name=<fqdn>|pattern=<pattern>]...` makes the server play
//! Cilium's DNS proxy for that source: it answers only names those selectors match (Cilium's
//! `matchName` and `matchPattern`) and REFUSED for others (none listed: every name refused).
//! The sandbox rewrites it on every cluster change and the server re-reads it when it changes
//! (see [`crate::watched`]).
//!
//! Answers, over UDP and TCP (RFC 1035 two-byte length prefix), all authoritative (AA set),
//! echoing the id, the question and RD:
//! - A or AAAA of a name in the zone: NOERROR with its addresses of that family (ANY: both);
//! - a name in the zone without a record of the asked type: NOERROR with no answers;
//! - any other name: NXDOMAIN;
//! - a name the source's `!dns-rules` do not match: REFUSED;
//! - `id.server` or `hostname.bind` TXT in class CH: the `--identity`, if one was given;
//! - a question that cannot be decoded past its header: FORMERR; less than a header, or a
//!   response: no answer at all.
//!
//! Messages are decoded and encoded with hickory-proto.

use super::sock::{accept_backoff, stopped};
use super::watched::{content_lines, counted, LineTable, LineWarning, WatchedFile};
use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use netassay_core::policy::cilium::fqdn::{
    parse_selector_field, selector_matches, DNS_RULES_DIRECTIVE,
};
use netassay_core::policy::cilium::model::FqdnSelector;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// TTL of every answer: short, since the zone follows the cluster.
pub const ANSWER_TTL: u32 = 5;

/// Largest UDP answer sent when the query advertises a larger EDNS buffer (DNS flag day 2020).
const MAX_UDP_ANSWER: usize = 1232;

/// Longest a name may be in text form, without the trailing dot (RFC 1035 §2.3.4).
const MAX_NAME: usize = 253;

/// Longest a label may be (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// How long a TCP connection may sit idle between queries (RFC 7766 §6.2.3 suggests seconds).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP connections served at once; more wait in the kernel's accept queue.
const MAX_TCP_CONNECTIONS: usize = 1024;

/// The names of the zone file and their addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    /// Lower-case name without trailing dot -> addresses in file order, without repeats.
    names: HashMap<String, Vec<IpAddr>>,
    /// Source address -> the names answered to it (`!dns-rules` lines).
    rules: HashMap<IpAddr, Vec<FqdnSelector>>,
}

impl Zone {
    /// The addresses of `name` (any case, trailing dot optional); `None` when the name is not
    /// in the zone.
    pub fn addresses(&self, name: &str) -> Option<&[IpAddr]> {
        let key = zone_name(name).ok()?;
        self.names.get(&key).map(Vec::as_slice)
    }

    /// How many distinct names the zone holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The addresses of a name as it arrives in a query.
    fn addresses_of(&self, name: &Name) -> Option<&[IpAddr]> {
        let key = wire_name_key(name)?;
        self.names.get(&key).map(Vec::as_slice)
    }
}

impl LineTable for Zone {
    const KIND: &'static str = "zone file";

    fn parse(text: &str) -> (Zone, Vec<LineWarning>) {
        let mut zone = Zone::default();
        let mut warnings = Vec::new();
        for (line, content) in content_lines(text) {
            if let Some(rest) = content.strip_prefix(DNS_RULES_DIRECTIVE) {
                match parse_rules(rest) {
                    Ok((source, selectors)) => {
                        zone.rules.entry(source).or_default().extend(selectors);
                    }
                    Err(message) => warnings.push(LineWarning { line, message }),
                }
                continue;
            }
            match parse_record(content) {
                Ok((name, address)) => {
                    let addresses = zone.names.entry(name).or_default();
                    if !addresses.contains(&address) {
                        addresses.push(address);
                    }
                }
                Err(message) => warnings.push(LineWarning { line, message }),
            }
        }
        (zone, warnings)
    }

    fn summary(&self) -> String {
        let records: usize = self.names.values().map(Vec::len).sum();
        format!(
            "{}, {}",
            counted(self.names.len(), "name"),
            counted(records, "record")
        )
    }
}

/// The rest of a `!dns-rules` line: the source address and its selectors.
fn parse_rules(rest: &str) -> Result<(IpAddr, Vec<FqdnSelector>), String> {
    let mut fields = rest.split_whitespace();
    let source = fields
        .next()
        .ok_or_else(|| "`!dns-rules` needs a source address".to_string())?;
    let source = source
        .parse::<IpAddr>()
        .map_err(|_| format!("{source:?} is not an IPv4 or IPv6 address"))?;
    let selectors = fields
        .map(parse_selector_field)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((source, selectors))
}

/// One zone line without its comment: `<fqdn> <address>`.
fn parse_record(content: &str) -> Result<(String, IpAddr), String> {
    let mut fields = content.split_whitespace();
    let (Some(name), Some(address), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(format!(
            "expected `<name> <address>`, found {content:?} (one record per line)"
        ));
    };
    let name = zone_name(name)?;
    let address = address
        .parse::<IpAddr>()
        .map_err(|_| format!("{address:?} is not an IPv4 or IPv6 address"))?;
    Ok((name, address))
}

/// A name as the zone keys it: lower case, without the trailing dot, checked to be a
/// host name (letters, digits, `-`, `_`; labels of 1 to 63 characters).
pub fn zone_name(name: &str) -> Result<String, String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err(format!("{name:?} is not a domain name"));
    }
    if bare.len() > MAX_NAME {
        return Err(format!(
            "name {name:?} is longer than {MAX_NAME} characters"
        ));
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(format!("name {name:?} has an empty label"));
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "name {name:?} has a label longer than {MAX_LABEL} characters"
            ));
        }
        if let Some(c) = label.chars().find(|c| !is_name_char(*c)) {
            return Err(format!(
                "name {name:?} holds {c:?} (letters, digits, '-' and '_' only)"
            ));
        }
    }
    Ok(bare.to_ascii_lowercase())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The zone key of a queried name; `None` for the root or a name with bytes no zone name has
/// (which therefore cannot be in the zone).
fn wire_name_key(name: &Name) -> Option<String> {
    let mut key = String::with_capacity(name.len());
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            key.push('.');
        }
        for &b in label {
            let c = char::from(b.to_ascii_lowercase());
            if !b.is_ascii() || !is_name_char(c) {
                return None;
            }
            key.push(c);
        }
    }
    (!key.is_empty()).then_some(key)
}

/// Whether a CH TXT question asks the server's identity (RFC 4892 `id.server`, BIND's
/// `hostname.bind`).
fn asks_identity(name: &Name) -> bool {
    matches!(
        wire_name_key(name).as_deref(),
        Some("id.server" | "hostname.bind")
    )
}

/// The transport a query came over, which bounds the answer's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The answer to one query message from `source` (under the zone's DNS rules for it; `None`:
/// no rules apply), encoded; `None` when it deserves no answer (shorter than a header, or
/// itself a response).
pub fn answer(
    query: &[u8],
    zone: &Zone,
    identity: Option<&str>,
    transport: Transport,
    source: Option<IpAddr>,
) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(query)).ok()?;
    if header.message_type() == MessageType::Response {
        return None;
    }
    let mut response = Message::new();
    let mut response_header = Header::response_from_request(&header);
    response_header.set_authoritative(true);
    response.set_header(response_header);
    let request = match Message::from_vec(query) {
        Ok(request) => request,
        Err(_) => {
            response.set_response_code(ResponseCode::FormErr);
            return encode(&response, transport, 512);
        }
    };
    response.add_queries(request.queries().iter().cloned());
    if request.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_ANSWER as u16);
        response.set_edns(edns);
    }
    let udp_limit = usize::from(request.max_payload()).min(MAX_UDP_ANSWER);
    let code = match (request.op_code(), request.queries()) {
        (OpCode::Query, [question]) => {
            let rules = source.and_then(|s| zone.rules.get(&s));
            resolve(question, zone, identity, rules, &mut response)
        }
        (OpCode::Query, _) => ResponseCode::FormErr,
        _ => ResponseCode::NotImp,
    };
    response.set_response_code(code);
    encode(&response, transport, udp_limit)
}

/// Adds the answers to `question`; returns the response code.
fn resolve(
    question: &Query,
    zone: &Zone,
    identity: Option<&str>,
    rules: Option<&Vec<FqdnSelector>>,
    response: &mut Message,
) -> ResponseCode {
    let name = question.name();
    match question.query_class() {
        DNSClass::IN => {
            if let Some(rules) = rules {
                let allowed = wire_name_key(name)
                    .is_some_and(|key| rules.iter().any(|r| selector_matches(r, &key)));
                if !allowed {
                    return ResponseCode::Refused;
                }
            }
        }
        DNSClass::CH if asks_identity(name) => {
            let Some(identity) = identity else {
                return ResponseCode::Refused;
            };
            if matches!(question.query_type(), RecordType::TXT | RecordType::ANY) {
                let mut record = Record::from_rdata(
                    name.clone(),
                    0,
                    RData::TXT(TXT::new(vec![identity.to_string()])),
                );
                record.set_dns_class(DNSClass::CH);
                response.add_answer(record);
            }
            return ResponseCode::NoError;
        }
        _ => return ResponseCode::Refused,
    }
    let Some(addresses) = zone.addresses_of(name) else {
        return ResponseCode::NXDomain;
    };
    let (want_v4, want_v6) = match question.query_type() {
        RecordType::A => (true, false),
        RecordType::AAAA => (false, true),
        RecordType::ANY => (true, true),
        _ => (false, false),
    };
    for address in addresses {
        let rdata = match address {
            IpAddr::V4(v4) if want_v4 => RData::A(A(*v4)),
            IpAddr::V6(v6) if want_v6 => RData::AAAA(AAAA(*v6)),
            _ => continue,
        };
        response.add_answer(Record::from_rdata(name.clone(), ANSWER_TTL, rdata));
    }
    ResponseCode::NoError
}

/// Encodes `response`; over UDP, an answer larger than `udp_limit` is sent truncated (TC set,
/// no records) so the client retries over TCP.
fn encode(response: &Message, transport: Transport, udp_limit: usize) -> Option<Vec<u8>> {
    let bytes = response.to_vec().ok()?;
    if transport == Transport::Udp && bytes.len() > udp_limit {
        return response.truncate().to_vec().ok();
    }
    Some(bytes)
}

/// What `agent dns` serves.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Address and port for both UDP and TCP; port 0 picks one free for both.
    pub listen: SocketAddr,
    pub zone: PathBuf,
    /// Answered to `id.server` / `hostname.bind` CH TXT questions.
    pub identity: Option<String>,
}

/// Why `agent dns` cannot serve.
#[derive(Debug, Error)]
pub enum DnsError {
    #[error("identity: {0}")]
    Identity(String),
    #[error("cannot read the zone file {path}: {source}")]
    Zone { path: String, source: io::Error },
    #[error("cannot listen on {transport} {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
}

/// The DNS server with both sockets bound and the zone read.
pub struct BoundDns {
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    local: SocketAddr,
    zone: Arc<WatchedFile<Zone>>,
    identity: Option<Arc<str>>,
}

/// How often a free UDP port is drawn when TCP finds the same port taken (port 0 only).
const PORT_ATTEMPTS: usize = 16;

/// Reads the zone and binds UDP and TCP on the same port. Must run inside a tokio runtime.
pub async fn bind(config: &DnsConfig) -> Result<BoundDns, DnsError> {
    if let Some(identity) = &config.identity {
        netassay_core::probe::validate_identity(identity).map_err(DnsError::Identity)?;
    }
    let zone = WatchedFile::<Zone>::open(&config.zone, "netassay agent dns").map_err(|source| {
        DnsError::Zone {
            path: config.zone.display().to_string(),
            source,
        }
    })?;
    let (udp, tcp, local) = bind_pair(config.listen).await?;
    Ok(BoundDns {
        udp: Arc::new(udp),
        tcp,
        local,
        zone: Arc::new(zone),
        identity: config.identity.as_deref().map(Arc::from),
    })
}

/// UDP and TCP sockets on one port: the one asked for, or, for port 0, a port free for both.
async fn bind_pair(listen: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr), DnsError> {
    let attempts = if listen.port() == 0 { PORT_ATTEMPTS } else { 1 };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|source| DnsError::Bind {
                transport: "udp",
                addr: listen,
                source,
            })?;
        let local = udp.local_addr().map_err(|source| DnsError::Bind {
            transport: "udp",
            addr: listen,
            source,
        })?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp, local)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < attempts => continue,
            Err(source) => {
                return Err(DnsError::Bind {
                    transport: "tcp",
                    addr: local,
                    source,
                })
            }
        }
    }
}

impl BoundDns {
    /// The address both transports listen on (the actual port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The zone as of now.
    pub fn zone(&self) -> Arc<Zone> {
        self.zone.current()
    }

    /// Answers queries until `shutdown` completes, then stops and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        // Several receivers on one socket: each answer is quick, but a zone re-read blocks one.
        let receivers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
        for _ in 0..receivers {
            tasks.spawn(serve_udp(
                self.udp.clone(),
                self.zone.clone(),
                self.identity.clone(),
                stop_rx.clone(),
            ));
        }
        tasks.spawn(serve_tcp(
            self.tcp,
            self.zone.clone(),
            self.identity.clone(),
            stop_rx.clone(),
        ));
        shutdown.await;
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
    }
}

async fn serve_udp(
    socket: Arc<UdpSocket>,
    zone: Arc<WatchedFile<Zone>>,
    identity: Option<Arc<str>>,
    stop: watch::Receiver<bool>,
) {
    let stop = stopped(stop);
    tokio::pin!(stop);
    let mut buf = vec![0u8; 65535];
    loop {
        tokio::select! {
            _ = &mut stop => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, peer)) => {
                    let query = buf.get(..n).unwrap_or_default();
                    let reply = answer(
                        query,
                        &zone.current(),
                        identity.as_deref(),
                        Transport::Udp,
                        Some(peer.ip()),
                    );
                    if let Some(reply) = reply {
                        // A lost answer is the client's to retry.
                        let _ = socket.send_to(&reply, peer).await;
                    }
                }
                // Stray ICMP errors from earlier answers; nothing to do.
                Err(_) => continue,
            },
        }
    }
}

async fn serve_tcp(
    listener: TcpListener,
    zone: Arc<WatchedFile<Zone>>,
    identity: Option<Arc<str>>,
    stop: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            _ = &mut stop => return,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (zone, identity) = (zone.clone(), identity.clone());
                    tokio::spawn(async move {
                        serve_tcp_connection(stream, &zone, identity.as_deref()).await;
                        drop(permit);
                    });
                }
                Err(e) => accept_backoff(e, "netassay agent dns", "tcp").await,
            },
        }
    }
}

/// Answers length-prefixed queries on one connection until the client closes it, sends a
/// message that deserves no answer, or idles past [`TCP_IDLE_TIMEOUT`].
async fn serve_tcp_connection(
    mut stream: TcpStream,
    zone: &WatchedFile<Zone>,
    identity: Option<&str>,
) {
    let mut query = Vec::new();
    loop {
        let read = tokio::time::timeout(TCP_IDLE_TIMEOUT, async {
            let len = stream.read_u16().await?;
            query.resize(usize::from(len), 0);
            stream.read_exact(&mut query).await
        })
        .await;
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let source = stream.peer_addr().ok().map(|a| a.ip());
        let Some(reply) = answer(&query, &zone.current(), identity, Transport::Tcp, source) else {
            return;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply);
        let written = tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.write_all(&framed)).await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn zone(text: &str) -> Zone {
        let (zone, warnings) = Zone::parse(text);
        assert!(warnings.is_empty(), "{warnings:?}");
        zone
    }

    #[test]
    fn zone_lines_parse_or_are_reported_with_their_line_number() {
        // (line, accepted name, error fragment)
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("a.example.org 10.0.0.1", Some("a.example.org"), ""),
            ("A.Example.ORG. 10.0.0.1", Some("a.example.org"), ""),
            ("a.example.org 2001:db8::1", Some("a.example.org"), ""),
            (
                "  svc_x.ns-1.svc.cluster.local\t10.96.0.7  ",
                Some("svc_x.ns-1.svc.cluster.local"),
                "",
            ),
            ("a.example.org", None, "expected `<name> <address>`"),
            (
                "a.example.org 10.0.0.1 extra",
                None,
                "expected `<name> <address>`",
            ),
            (
                "a.example.org 10.0.0.256",
                None,
                "not an IPv4 or IPv6 address",
            ),
            (
                "a.example.org fe80::1%eth0",
                None,
                "not an IPv4 or IPv6 address",
            ),
            ("a..example.org 10.0.0.1", None, "empty label"),
            (". 10.0.0.1", None, "not a domain name"),
            ("*.example.org 10.0.0.1", None, "holds '*'"),
            (
                "a b.example.org 10.0.0.1",
                None,
                "expected `<name> <address>`",
            ),
        ];
        for (line, name, error) in cases {
            let text = format!("# header\n\n{line}\n");
            let (zone, warnings) = Zone::parse(&text);
            match name {
                Some(name) => {
                    assert!(warnings.is_empty(), "{line:?}: {warnings:?}");
                    assert_eq!(zone.addresses(name).map(<[_]>::len), Some(1), "{line:?}");
                }
                None => {
                    assert!(zone.is_empty(), "{line:?}");
                    assert_eq!(warnings.len(), 1, "{line:?}");
                    assert_eq!(warnings[0].line, 3, "{line:?}");
                    assert!(
                        warnings[0].message.contains(error),
                        "{line:?}: {}",
                        warnings[0].message
                    );
                }
            }
        }
    }

    #[test]
    fn a_name_collects_every_line_once_in_file_order_and_comments_are_ignored() {
        let z = zone(
            "a.example.org 10.0.0.2 # first\n\
             A.EXAMPLE.ORG. 2001:db8::1\n\
             a.example.org 10.0.0.1\n\
             a.example.org 10.0.0.2\n\
             # b.example.org 10.0.0.3\n",
        );
        assert_eq!(z.len(), 1);
        assert_eq!(
            z.addresses("a.Example.org.").unwrap(),
            [
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap()),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            ]
        );
        assert!(z.addresses("b.example.org").is_none());
    }

    #[test]
    fn a_name_too_long_is_refused() {
        let label = "a".repeat(64);
        assert!(zone_name(&format!("{label}.org"))
            .unwrap_err()
            .contains("longer than 63"));
        let long = ["abcdefghi"; 26].join(".");
        assert!(zone_name(&long).unwrap_err().contains("longer than 253"));
    }

    fn query(name: &str, rtype: RecordType, class: DNSClass) -> Vec<u8> {
        let mut q = Query::query(Name::from_ascii(name).unwrap(), rtype);
        q.set_query_class(class);
        let mut m = Message::new();
        m.set_id(4711).set_recursion_desired(true).add_query(q);
        m.to_vec().unwrap()
    }

    fn ask(zone: &Zone, name: &str, rtype: RecordType) -> Message {
        let bytes = answer(
            &query(name, rtype, DNSClass::IN),
            zone,
            None,
            Transport::Udp,
            None,
        )
        .unwrap();
        Message::from_vec(&bytes).unwrap()
    }

    /// Playing Cilium's DNS proxy: a source with `!dns-rules` is answered only the names its
    /// selectors match (matchName exact, matchPattern wildcards), REFUSED otherwise, even for
    /// names the zone does not have; other sources are answered as before.
    #[test]
    fn dns_rules_answer_a_source_only_the_names_they_match() {
        let z = zone(
            "mirror.example.org 203.0.113.20\ninternet.example.org 203.0.113.10\n\
             !dns-rules 10.244.1.5 name=mirror.example.org pattern=*.svc.cluster.local\n\
             !dns-rules 10.244.1.6\n",
        );
        let from = |ip: &str, name: &str| {
            let bytes = answer(
                &query(name, RecordType::A, DNSClass::IN),
                &z,
                None,
                Transport::Udp,
                Some(ip.parse().unwrap()),
            )
            .unwrap();
            Message::from_vec(&bytes).unwrap().response_code()
        };
        assert_eq!(
            from("10.244.1.5", "Mirror.example.org."),
            ResponseCode::NoError
        );
        assert_eq!(
            from("10.244.1.5", "internet.example.org."),
            ResponseCode::Refused
        );
        // A name the rules match but the zone lacks: the server's own answer.
        assert_eq!(
            from("10.244.1.5", "web.svc.cluster.local."),
            ResponseCode::NXDomain
        );
        // `*` in a pattern stands for one label's characters, never a dot.
        assert_eq!(
            from("10.244.1.5", "web.x.svc.cluster.local."),
            ResponseCode::Refused
        );
        assert_eq!(
            from("10.244.1.6", "mirror.example.org."),
            ResponseCode::Refused
        );
        assert_eq!(
            from("10.244.1.7", "internet.example.org."),
            ResponseCode::NoError
        );
        // Without a source, no rules apply.
        assert_eq!(
            ask(&z, "internet.example.org.", RecordType::A).response_code(),
            ResponseCode::NoError
        );
        // A malformed rules line is a warning naming the line, and the rest still loads.
        let (bad, warnings) = Zone::parse("!dns-rules nowhere name=a.b\na.b 10.0.0.1\n");
        assert_eq!(bad.len(), 1);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].message.contains("not an IPv4 or IPv6 address"));
    }

    #[test]
    fn answers_are_authoritative_and_echo_id_question_and_rd() {
        let z = zone("Web.Example.org 10.0.0.1\n");
        let m = ask(&z, "WEB.example.org.", RecordType::A);
        assert_eq!(m.id(), 4711);
        assert_eq!(m.message_type(), MessageType::Response);
        assert!(m.authoritative() && m.recursion_desired() && !m.recursion_available());
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(m.queries().len(), 1);
        assert_eq!(m.queries()[0].name().to_ascii(), "WEB.example.org.");
        assert_eq!(m.answers().len(), 1);
        assert_eq!(m.answers()[0].ttl(), ANSWER_TTL);
        assert_eq!(m.answers()[0].data(), &RData::A(A::new(10, 0, 0, 1)));
    }

    #[test]
    fn each_type_gets_its_family_and_unknown_names_nxdomain() {
        let z = zone(
            "dual.example.org 10.0.0.1\ndual.example.org 2001:db8::1\nv4.example.org 10.0.0.2\n",
        );
        let a = ask(&z, "dual.example.org.", RecordType::A);
        assert_eq!(a.answers().len(), 1);
        let aaaa = ask(&z, "dual.example.org.", RecordType::AAAA);
        assert_eq!(
            aaaa.answers()[0].data(),
            &RData::AAAA(AAAA("2001:db8::1".parse().unwrap()))
        );
        assert_eq!(
            ask(&z, "dual.example.org.", RecordType::ANY)
                .answers()
                .len(),
            2
        );
        for (name, rtype) in [
            ("v4.example.org.", RecordType::AAAA),
            ("v4.example.org.", RecordType::MX),
        ] {
            let m = ask(&z, name, rtype);
            assert_eq!(m.response_code(), ResponseCode::NoError, "{rtype}");
            assert!(m.answers().is_empty(), "{rtype}");
        }
        for name in [
            "other.example.org.",
            "example.org.",
            "x.v4.example.org.",
            "v4\\.example.org.",
        ] {
            let m = ask(&z, name, RecordType::A);
            assert_eq!(m.response_code(), ResponseCode::NXDomain, "{name}");
            assert!(m.authoritative());
        }
    }

    #[test]
    fn malformed_queries_get_formerr_or_nothing() {
        let z = zone("a.example.org 10.0.0.1\n");
        // Too short for a header: ignored.
        assert!(answer(&[0x12, 0x34, 0x01], &z, None, Transport::Udp, None).is_none());
        // A header claiming a question that is not there: FORMERR with the id.
        let bytes = [
            0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x03, b'a',
        ];
        let m =
            Message::from_vec(&answer(&bytes, &z, None, Transport::Udp, None).unwrap()).unwrap();
        assert_eq!((m.id(), m.response_code()), (0x1234, ResponseCode::FormErr));
        assert!(m.recursion_desired());
        // A response is never answered.
        let mut response =
            Message::from_vec(&query("a.example.org.", RecordType::A, DNSClass::IN)).unwrap();
        response.set_message_type(MessageType::Response);
        assert!(answer(&response.to_vec().unwrap(), &z, None, Transport::Udp, None).is_none());
        // Two questions: FORMERR; another opcode: NOTIMP.
        let mut two = Message::new();
        two.add_query(Query::query(
            Name::from_ascii("a.example.org.").unwrap(),
            RecordType::A,
        ));
        two.add_query(Query::query(
            Name::from_ascii("a.example.org.").unwrap(),
            RecordType::AAAA,
        ));
        let m = Message::from_vec(
            &answer(&two.to_vec().unwrap(), &z, None, Transport::Udp, None).unwrap(),
        )
        .unwrap();
        assert_eq!(m.response_code(), ResponseCode::FormErr);
        let mut notify =
            Message::from_vec(&query("a.example.org.", RecordType::A, DNSClass::IN)).unwrap();
        notify.set_op_code(OpCode::Notify);
        let m = Message::from_vec(
            &answer(&notify.to_vec().unwrap(), &z, None, Transport::Udp, None).unwrap(),
        )
        .unwrap();
        assert_eq!(m.response_code(), ResponseCode::NotImp);
    }

    #[test]
    fn the_identity_is_answered_in_class_ch_and_other_classes_are_refused() {
        let z = zone("a.example.org 10.0.0.1\n");
        let q = query("id.server.", RecordType::TXT, DNSClass::CH);
        let m = Message::from_vec(
            &answer(&q, &z, Some("kube-system/coredns"), Transport::Udp, None).unwrap(),
        )
        .unwrap();
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(
            m.answers()[0].data(),
            &RData::TXT(TXT::new(vec!["kube-system/coredns".into()]))
        );
        let m = Message::from_vec(&answer(&q, &z, None, Transport::Udp, None).unwrap()).unwrap();
        assert_eq!(m.response_code(), ResponseCode::Refused);
        let q = query("a.example.org.", RecordType::A, DNSClass::CH);
        let m = Message::from_vec(&answer(&q, &z, None, Transport::Udp, None).unwrap()).unwrap();
        assert_eq!(m.response_code(), ResponseCode::Refused);
    }

    #[test]
    fn a_udp_answer_too_large_is_truncated_and_tcp_carries_it_whole() {
        let text: String = (1..=60)
            .map(|i| format!("many.example.org 10.0.0.{i}\n"))
            .collect();
        let z = zone(&text);
        let q = query("many.example.org.", RecordType::A, DNSClass::IN);
        let udp = Message::from_vec(&answer(&q, &z, None, Transport::Udp, None).unwrap()).unwrap();
        assert!(udp.truncated() && udp.answers().is_empty());
        assert_eq!(udp.queries().len(), 1);
        let tcp = Message::from_vec(&answer(&q, &z, None, Transport::Tcp, None).unwrap()).unwrap();
        assert!(!tcp.truncated());
        assert_eq!(tcp.answers().len(), 60);
    }
}
