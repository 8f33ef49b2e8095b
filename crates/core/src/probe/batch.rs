//! The probe batch: what the harness asks one source pod's agent to try, and its validation.

use super::greeting::validate_identity;
use super::limits::{
    DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_MS, MAX_CONCURRENCY, MAX_TIMEOUT_MS, SCHEMA,
};
use super::series::{Series, SeriesError, SERIES_SCHEMA};
use super::target::{check_dns_name, HostPort, TargetError};
use crate::model::{Protocol, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use thiserror::Error;

/// One round of probes from one source pod: a single JSON line on the agent's stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeBatch {
    /// [`SCHEMA`] (`netassay.probe/v1`): every probe once. [`SERIES_SCHEMA`]
    /// (`netassay.probe/v2`): the same, or with `series`, each probe started again and again.
    pub schema: String,
    /// Time each probe may take, measured from its own start (not from the batch's).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Most probes in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// v2 only: run every probe as a series (see [`Series`]); each probe then needs `expect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<Series>,
    pub probes: Vec<ProbeSpec>,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_concurrency() -> usize {
    DEFAULT_CONCURRENCY
}

/// What kind of connection a probe attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// Connect, then read the peer's greeting.
    Tcp,
    /// Send a nonce on a connected socket, wait for it to come back with the peer's identity.
    Udp,
    /// Like TCP, over SCTP (one-to-one style); `unsupported` where the kernel lacks SCTP.
    Sctp,
    /// GET a URL (http or https), optionally with a Host header, an SNI name and a status.
    Http,
    /// Resolve `target` as a name, through resolv.conf or an explicit `server`.
    Dns,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Tcp => "tcp",
            ProbeKind::Udp => "udp",
            ProbeKind::Sctp => "sctp",
            ProbeKind::Http => "http",
            ProbeKind::Dns => "dns",
        }
    }

    /// The transport protocol a NetworkPolicy would name for this probe, if it is one.
    pub fn transport(self) -> Option<Protocol> {
        match self {
            ProbeKind::Tcp => Some(Protocol::Tcp),
            ProbeKind::Udp => Some(Protocol::Udp),
            ProbeKind::Sctp => Some(Protocol::Sctp),
            ProbeKind::Http | ProbeKind::Dns => None,
        }
    }

    /// The probe kind that exercises a transport protocol.
    pub fn for_protocol(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Tcp => ProbeKind::Tcp,
            Protocol::Udp => ProbeKind::Udp,
            Protocol::Sctp => ProbeKind::Sctp,
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One probe. Fields beyond `id`, `kind` and `target` are optional and kind-specific; a field
/// that does not apply to the kind is an error rather than silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// The harness's handle for this probe; unique within the batch, echoed in the result.
    pub id: String,
    pub kind: ProbeKind,
    /// tcp/udp/sctp: `host:port` (address or name). http: a URL, or `host:port` for plain
    /// http. dns: the name to resolve.
    pub target: String,
    /// `namespace/pod` the peer must name in its greeting (tcp, udp, sctp, http). Without it,
    /// a completed tcp/sctp handshake counts as connected (no greeting awaited), which suits
    /// targets that are not netassay agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_identity: Option<String>,
    /// Overrides the batch's `timeout_ms` for this probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// http: the Host header to send instead of the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// http (https URLs only): the TLS server name to send; the connection still goes to the
    /// URL's host and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// http: the status the answer must carry (otherwise any status counts as reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<u16>,
    /// http: accept any server certificate (reachability checks against self-signed gateways).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// dns: the server to ask, `IP` or `IP:port`, instead of the pod's resolv.conf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// dns: addresses that must all be among the answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_addresses: Option<Vec<IpAddr>>,
    /// Series batches only: the verdict this cell should show; the series runs until it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Verdict>,
}

impl ProbeSpec {
    /// A probe with only the required fields set.
    pub fn new(id: impl Into<String>, kind: ProbeKind, target: impl Into<String>) -> Self {
        ProbeSpec {
            id: id.into(),
            kind,
            target: target.into(),
            expect_identity: None,
            timeout_ms: None,
            host: None,
            sni: None,
            expect_status: None,
            insecure: false,
            server: None,
            expect_addresses: None,
            expect: None,
        }
    }

    /// The same probe, requiring the peer to be `identity`.
    pub fn expecting(mut self, identity: impl Into<String>) -> Self {
        self.expect_identity = Some(identity.into());
        self
    }

    /// The target of a tcp, udp or sctp probe.
    pub fn host_port(&self) -> Result<HostPort, SpecError> {
        Ok(self.target.parse::<HostPort>()?)
    }

    /// The URL an http probe fetches: its target, with `http://` added to a bare `host:port`.
    pub fn http_url(&self) -> Result<String, SpecError> {
        let t = self.target.as_str();
        if t.starts_with("http://") || t.starts_with("https://") {
            return Ok(t.to_string());
        }
        if t.contains("://") {
            return Err(SpecError::BadScheme(t.to_string()));
        }
        let hp = t.parse::<HostPort>()?;
        Ok(format!("http://{hp}/"))
    }

    /// The explicit DNS server of a dns probe (port 53 unless given).
    pub fn dns_server(&self) -> Result<Option<SocketAddr>, SpecError> {
        let Some(server) = &self.server else {
            return Ok(None);
        };
        if let Ok(addr) = server.parse::<SocketAddr>() {
            return Ok(Some(addr));
        }
        match server.parse::<IpAddr>() {
            Ok(ip) => Ok(Some(SocketAddr::new(ip, 53))),
            Err(_) => Err(SpecError::BadServer(server.clone())),
        }
    }

    /// This probe's timeout within `batch`.
    pub fn timeout(&self, batch_timeout_ms: u64) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(batch_timeout_ms))
    }

    /// Checks everything about this probe that can be checked without the network.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.id.is_empty() {
            return Err(SpecError::EmptyId);
        }
        if let Some(t) = self.timeout_ms {
            check_timeout(t).map_err(SpecError::Timeout)?;
        }
        if let Some(identity) = &self.expect_identity {
            validate_identity(identity).map_err(SpecError::BadIdentity)?;
        }
        let kind = self.kind;
        let misplaced = |field: &'static str, present: bool| {
            if present {
                Err(SpecError::FieldNotForKind { field, kind })
            } else {
                Ok(())
            }
        };
        let http_only = [
            ("host", self.host.is_some()),
            ("sni", self.sni.is_some()),
            ("expect_status", self.expect_status.is_some()),
            ("insecure", self.insecure),
        ];
        let dns_only = [
            ("server", self.server.is_some()),
            ("expect_addresses", self.expect_addresses.is_some()),
        ];
        match kind {
            ProbeKind::Tcp | ProbeKind::Udp | ProbeKind::Sctp => {
                for (field, present) in http_only.into_iter().chain(dns_only) {
                    misplaced(field, present)?;
                }
                self.host_port()?;
            }
            ProbeKind::Http => {
                for (field, present) in dns_only {
                    misplaced(field, present)?;
                }
                let url = self.http_url()?;
                if self.sni.is_some() && !url.starts_with("https://") {
                    return Err(SpecError::SniWithoutTls);
                }
                if let Some(sni) = &self.sni {
                    check_dns_name(sni)?;
                }
                if let Some(status) = self.expect_status {
                    if !(100..=599).contains(&status) {
                        return Err(SpecError::BadStatus(status));
                    }
                }
                if let Some(host) = &self.host {
                    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control())
                    {
                        return Err(SpecError::BadHostHeader(host.clone()));
                    }
                }
            }
            ProbeKind::Dns => {
                for (field, present) in http_only {
                    misplaced(field, present)?;
                }
                misplaced("expect_identity", self.expect_identity.is_some())?;
                check_dns_name(&self.target)?;
                self.dns_server()?;
            }
        }
        Ok(())
    }
}

fn check_timeout(ms: u64) -> Result<(), u64> {
    if (1..=MAX_TIMEOUT_MS).contains(&ms) {
        Ok(())
    } else {
        Err(ms)
    }
}

/// Why one probe of a batch is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    #[error("id is empty")]
    EmptyId,
    #[error("timeout_ms {0} is out of range: expected 1 to {MAX_TIMEOUT_MS}")]
    Timeout(u64),
    #[error("expect_identity: {0}")]
    BadIdentity(String),
    #[error("field `{field}` does not apply to {kind} probes")]
    FieldNotForKind {
        field: &'static str,
        kind: ProbeKind,
    },
    #[error("target: {0}")]
    Target(#[from] TargetError),
    #[error("target {0:?}: only http:// and https:// URLs can be probed")]
    BadScheme(String),
    #[error("sni needs an https:// target")]
    SniWithoutTls,
    #[error("expect_status {0} is not an HTTP status (100 to 599)")]
    BadStatus(u16),
    #[error("host {0:?} is not a usable Host header")]
    BadHostHeader(String),
    #[error("server {0:?}: expected an address, e.g. 10.96.0.10 or 10.96.0.10:53")]
    BadServer(String),
    #[error("target: {0}")]
    BadUrl(String),
    #[error("expect is required in a series batch: the verdict the series waits for")]
    MissingExpect,
    #[error("expect only applies to series batches")]
    ExpectOutsideSeries,
}

/// Why a batch line is refused as a whole; the agent then runs nothing and exits 2.
#[derive(Debug, Error)]
pub enum BatchError {
    #[error("expected one JSON batch line on stdin, got end of input")]
    Empty,
    #[error("not a valid {SCHEMA} batch: {0}")]
    Json(#[from] serde_json::Error),
    #[error("schema {0:?} is not supported: expected {SCHEMA:?} or {SERIES_SCHEMA:?}")]
    Schema(String),
    #[error("series needs schema {SERIES_SCHEMA:?}")]
    SeriesNeedsV2,
    #[error("{0}")]
    Series(#[from] SeriesError),
    #[error("timeout_ms {0} is out of range: expected 1 to {MAX_TIMEOUT_MS}")]
    Timeout(u64),
    #[error("concurrency {0} is out of range: expected 1 to {MAX_CONCURRENCY}")]
    Concurrency(usize),
    #[error("probes[{index}] (id {id:?}): {source}")]
    Probe {
        index: usize,
        id: String,
        source: SpecError,
    },
    #[error("probes[{second}] repeats id {id:?} of probes[{first}]: ids must be unique")]
    DuplicateId {
        id: String,
        first: usize,
        second: usize,
    },
}

impl ProbeBatch {
    /// A batch with the default timeout and concurrency.
    pub fn new(probes: Vec<ProbeSpec>) -> Self {
        ProbeBatch {
            schema: SCHEMA.to_string(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            concurrency: DEFAULT_CONCURRENCY,
            series: None,
            probes,
        }
    }

    /// A batch that runs every probe as a series (each probe needs `expect`).
    pub fn series(probes: Vec<ProbeSpec>, series: Series) -> Self {
        ProbeBatch {
            schema: SERIES_SCHEMA.to_string(),
            series: Some(series),
            ..ProbeBatch::new(probes)
        }
    }

    /// Parses and validates one batch line; nothing about the batch is trusted until this passes.
    pub fn from_json_line(line: &str) -> Result<Self, BatchError> {
        if line.trim().is_empty() {
            return Err(BatchError::Empty);
        }
        let batch: ProbeBatch = serde_json::from_str(line)?;
        batch.validate()?;
        Ok(batch)
    }

    /// Checks the batch and every probe in it.
    pub fn validate(&self) -> Result<(), BatchError> {
        if self.schema != SCHEMA && self.schema != SERIES_SCHEMA {
            return Err(BatchError::Schema(self.schema.clone()));
        }
        if let Some(series) = &self.series {
            if self.schema != SERIES_SCHEMA {
                return Err(BatchError::SeriesNeedsV2);
            }
            series.validate()?;
        }
        check_timeout(self.timeout_ms).map_err(BatchError::Timeout)?;
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(BatchError::Concurrency(self.concurrency));
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(self.probes.len());
        for (index, probe) in self.probes.iter().enumerate() {
            probe
                .validate()
                .map_err(|source| self.probe_error(index, source))?;
            match (self.series.is_some(), probe.expect.is_some()) {
                (true, false) => return Err(self.probe_error(index, SpecError::MissingExpect)),
                (false, true) => {
                    return Err(self.probe_error(index, SpecError::ExpectOutsideSeries))
                }
                _ => {}
            }
            if let Some(first) = seen.insert(probe.id.as_str(), index) {
                return Err(BatchError::DuplicateId {
                    id: probe.id.clone(),
                    first,
                    second: index,
                });
            }
        }
        Ok(())
    }

    /// An error about `probes[index]`, for checks made outside [`ProbeSpec::validate`].
    pub fn probe_error(&self, index: usize, source: SpecError) -> BatchError {
        BatchError::Probe {
            index,
            id: self
                .probes
                .get(index)
                .map(|p| p.id.clone())
                .unwrap_or_default(),
            source,
        }
    }

    /// The batch as one JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<ProbeBatch, BatchError> {
        ProbeBatch::from_json_line(line)
    }

    #[test]
    fn the_documented_example_batch_parses_with_its_values() {
        let b = parse(r#"{"schema":"netassay.probe/v1","timeout_ms":1000,"concurrency":256,"probes":[{"id":"x/a->y/b:80/tcp","kind":"tcp","target":"10.0.0.5:80","expect_identity":"y/b"}]}"#).unwrap();
        assert_eq!(b.timeout_ms, 1000);
        assert_eq!(b.concurrency, 256);
        assert_eq!(b.probes[0].kind, ProbeKind::Tcp);
        assert_eq!(b.probes[0].expect_identity.as_deref(), Some("y/b"));
    }

    #[test]
    fn timeout_and_concurrency_default_when_omitted() {
        let b = parse(r#"{"schema":"netassay.probe/v1","probes":[]}"#).unwrap();
        assert_eq!(b.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(b.concurrency, DEFAULT_CONCURRENCY);
    }

    #[test]
    fn unknown_fields_are_refused_at_both_levels() {
        let top = parse(r#"{"schema":"netassay.probe/v1","probes":[],"extra":1}"#);
        assert!(top
            .unwrap_err()
            .to_string()
            .contains("unknown field `extra`"));
        let inner = parse(
            r#"{"schema":"netassay.probe/v1","probes":[{"id":"a","kind":"tcp","target":"1.2.3.4:80","port":80}]}"#,
        );
        assert!(inner
            .unwrap_err()
            .to_string()
            .contains("unknown field `port`"));
    }

    #[test]
    fn series_need_schema_v2_and_an_expectation_on_every_probe() {
        let series = r#""series":{"spacing_ms":50,"window_ms":200,"deadline_ms":5000}"#;
        let probe = r#"{"id":"a","kind":"tcp","target":"10.0.0.5:80","expect":"deny"}"#;
        let b = parse(&format!(
            r#"{{"schema":"netassay.probe/v2",{series},"probes":[{probe}]}}"#
        ))
        .unwrap();
        assert_eq!(b.series.map(|s| s.spacing_ms), Some(50));
        assert_eq!(b.probes[0].expect, Some(Verdict::Deny));
        let v1 = parse(&format!(
            r#"{{"schema":"netassay.probe/v1",{series},"probes":[{probe}]}}"#
        ));
        assert!(matches!(v1, Err(BatchError::SeriesNeedsV2)));
        let bare = r#"{"id":"a","kind":"tcp","target":"10.0.0.5:80"}"#;
        let missing = parse(&format!(
            r#"{{"schema":"netassay.probe/v2",{series},"probes":[{bare}]}}"#
        ));
        assert!(matches!(
            missing,
            Err(BatchError::Probe {
                source: SpecError::MissingExpect,
                ..
            })
        ));
        let stray = parse(&format!(
            r#"{{"schema":"netassay.probe/v2","probes":[{probe}]}}"#
        ));
        assert!(matches!(
            stray,
            Err(BatchError::Probe {
                source: SpecError::ExpectOutsideSeries,
                ..
            })
        ));
        // A v2 batch without a series is a plain batch.
        assert!(parse(&format!(
            r#"{{"schema":"netassay.probe/v2","probes":[{bare}]}}"#
        ))
        .is_ok());
    }

    #[test]
    fn a_foreign_schema_is_refused() {
        let e = parse(r#"{"schema":"netassay.probe/v9","probes":[]}"#).unwrap_err();
        assert!(matches!(e, BatchError::Schema(s) if s == "netassay.probe/v9"));
    }

    #[test]
    fn json_errors_say_where() {
        let e = parse(r#"{"schema":"netassay.probe/v1","probes":[{"id":}]}"#).unwrap_err();
        assert!(e.to_string().contains("line 1 column"), "{e}");
    }

    #[test]
    fn empty_input_is_its_own_error() {
        assert!(matches!(parse(""), Err(BatchError::Empty)));
        assert!(matches!(parse("\n"), Err(BatchError::Empty)));
    }

    #[test]
    fn duplicate_ids_name_both_positions() {
        let mut b = ProbeBatch::new(vec![
            ProbeSpec::new("p", ProbeKind::Tcp, "10.0.0.1:80"),
            ProbeSpec::new("p", ProbeKind::Udp, "10.0.0.1:80"),
        ]);
        let e = b.validate().unwrap_err();
        assert!(matches!(
            e,
            BatchError::DuplicateId {
                first: 0,
                second: 1,
                ..
            }
        ));
        b.probes[1].id = "q".into();
        assert!(b.validate().is_ok());
    }

    #[test]
    fn out_of_range_batch_settings_are_refused() {
        let mut b = ProbeBatch::new(vec![]);
        b.timeout_ms = 0;
        assert!(matches!(b.validate(), Err(BatchError::Timeout(0))));
        b.timeout_ms = 1000;
        b.concurrency = 0;
        assert!(matches!(b.validate(), Err(BatchError::Concurrency(0))));
    }

    #[test]
    fn fields_of_another_kind_are_refused_not_ignored() {
        let mut p = ProbeSpec::new("a", ProbeKind::Tcp, "10.0.0.1:80");
        p.sni = Some("x.example".into());
        assert_eq!(
            p.validate(),
            Err(SpecError::FieldNotForKind {
                field: "sni",
                kind: ProbeKind::Tcp
            })
        );
        let mut d = ProbeSpec::new("d", ProbeKind::Dns, "b.y.svc.cluster.local");
        d.expect_identity = Some("y/b".into());
        assert!(matches!(
            d.validate(),
            Err(SpecError::FieldNotForKind {
                field: "expect_identity",
                ..
            })
        ));
    }

    #[test]
    fn http_targets_accept_urls_and_bare_host_ports() {
        let p = ProbeSpec::new("h", ProbeKind::Http, "10.0.0.5:8080");
        assert_eq!(p.http_url().unwrap(), "http://10.0.0.5:8080/");
        let p = ProbeSpec::new("h", ProbeKind::Http, "https://gw.example/app");
        assert_eq!(p.http_url().unwrap(), "https://gw.example/app");
        let p = ProbeSpec::new("h", ProbeKind::Http, "ftp://x/");
        assert!(matches!(p.validate(), Err(SpecError::BadScheme(_))));
    }

    #[test]
    fn sni_needs_https() {
        let mut p = ProbeSpec::new("h", ProbeKind::Http, "http://10.0.0.5/");
        p.sni = Some("app.example".into());
        assert_eq!(p.validate(), Err(SpecError::SniWithoutTls));
        p.target = "https://10.0.0.5/".into();
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn dns_servers_default_to_port_53() {
        let mut p = ProbeSpec::new("d", ProbeKind::Dns, "kubernetes.default.svc.cluster.local");
        assert_eq!(p.dns_server(), Ok(None));
        p.server = Some("10.96.0.10".into());
        assert_eq!(p.dns_server(), Ok(Some("10.96.0.10:53".parse().unwrap())));
        p.server = Some("[fd00::a]:5353".into());
        assert_eq!(p.dns_server(), Ok(Some("[fd00::a]:5353".parse().unwrap())));
        p.server = Some("kube-dns".into());
        assert!(p.validate().is_err());
    }

    #[test]
    fn batches_round_trip_through_their_json_line() {
        let mut p = ProbeSpec::new("h", ProbeKind::Http, "https://10.0.0.5/").expecting("y/b");
        p.sni = Some("app.example".into());
        p.expect_status = Some(200);
        let b = ProbeBatch::new(vec![p]);
        let line = b.to_json_line();
        assert!(!line.contains('\n'));
        assert_eq!(ProbeBatch::from_json_line(&line).unwrap(), b);
    }
}
