//! Name resolution for probes (hickory-resolver): dns probes, and names in other probes' targets.

use super::finding::Finding;
use crate::classify;
use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};
use netassay_core::probe::HostPort;
use netassay_core::probe::{Outcome, ProbeSpec};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// The resolvers of one batch: the pod's resolv.conf one, built on first use, and one per
/// explicit server. Each caches answers for the batch's lifetime only.
pub(crate) struct Resolvers {
    system: OnceCell<Result<TokioResolver, String>>,
    explicit: Mutex<HashMap<SocketAddr, TokioResolver>>,
    timeout: Duration,
}

/// Why a lookup gave no address, already judged as a dns probe would be.
#[derive(Debug, Clone)]
pub(crate) struct LookupFailure {
    pub outcome: Outcome,
    pub detail: String,
}

impl fmt::Display for LookupFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for LookupFailure {}

impl Resolvers {
    /// Resolvers whose queries give up after `timeout`.
    pub(crate) fn new(timeout: Duration) -> Self {
        Resolvers {
            system: OnceCell::new(),
            explicit: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    async fn system(&self) -> Result<TokioResolver, String> {
        let timeout = self.timeout;
        self.system
            .get_or_init(|| async move {
                let mut builder = TokioResolver::builder_tokio()
                    .map_err(|e| format!("cannot use /etc/resolv.conf: {e}"))?;
                let opts = builder.options_mut();
                opts.timeout = opts.timeout.min(timeout);
                Ok(builder.build())
            })
            .await
            .clone()
    }

    fn explicit(&self, server: SocketAddr) -> TokioResolver {
        let mut map = self
            .explicit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(server)
            .or_insert_with(|| {
                let servers =
                    NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
                let config = ResolverConfig::from_parts(None, vec![], servers);
                let mut opts = ResolverOpts::default();
                opts.timeout = self.timeout;
                opts.attempts = 1;
                // The probe is about this server: the hosts file must not answer for it.
                opts.use_hosts_file = ResolveHosts::Never;
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                    .with_options(opts)
                    .build()
            })
            .clone()
    }

    /// Resolves `name` through `server`, or through resolv.conf when there is none.
    pub(crate) async fn lookup(
        &self,
        server: Option<SocketAddr>,
        name: &str,
    ) -> Result<Vec<IpAddr>, LookupFailure> {
        let resolver = match server {
            Some(s) => self.explicit(s),
            None => self.system().await.map_err(|detail| LookupFailure {
                outcome: Outcome::Error,
                detail,
            })?,
        };
        match resolver.lookup_ip(name).await {
            Ok(lookup) => {
                let addrs: Vec<IpAddr> = lookup.iter().collect();
                if addrs.is_empty() {
                    Err(LookupFailure {
                        outcome: Outcome::DnsFailed,
                        detail: format!("{name}: the answer holds no address"),
                    })
                } else {
                    Ok(addrs)
                }
            }
            Err(e) => {
                let (outcome, why) = judge_error(&e);
                Err(LookupFailure {
                    outcome,
                    detail: format!("{name}: {why}"),
                })
            }
        }
    }
}

/// The outcome of a failed lookup, as a dns probe reports it.
fn judge_error(err: &ResolveError) -> (Outcome, String) {
    let Some(proto) = err.proto() else {
        return (Outcome::Error, err.to_string());
    };
    match proto.kind() {
        ProtoErrorKind::NoRecordsFound { response_code, .. } => {
            let why = if err.is_nx_domain() {
                "NXDOMAIN (no such name)".to_string()
            } else {
                format!("no address records (response code {response_code})")
            };
            (Outcome::DnsFailed, why)
        }
        ProtoErrorKind::Timeout => (
            Outcome::Dropped,
            "no answer from the DNS server (timeout)".to_string(),
        ),
        ProtoErrorKind::Io(io) => {
            let (outcome, detail) = classify::reach_error(io);
            (outcome, format!("DNS server: {detail}"))
        }
        _ => (Outcome::Error, err.to_string()),
    }
}

/// A dns probe: resolve the target, judge the answer.
pub(super) async fn probe(
    resolvers: &Resolvers,
    spec: &ProbeSpec,
    server: Option<SocketAddr>,
    deadline: Instant,
) -> Finding {
    let name = spec.target.as_str();
    let via = match server {
        Some(s) => format!("server {s}"),
        None => "resolv.conf".to_string(),
    };
    let answer = tokio::time::timeout_at(deadline, resolvers.lookup(server, name)).await;
    let addresses = match answer {
        Err(_) => {
            return Finding::new(
                Outcome::Dropped,
                format!("{name}: no answer via {via} before the timeout"),
            )
        }
        Ok(Err(failure)) => {
            return Finding::new(failure.outcome, format!("{} (via {via})", failure.detail))
        }
        Ok(Ok(addresses)) => addresses,
    };
    let listed = addresses
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let missing: Vec<String> = spec
        .expect_addresses
        .iter()
        .flatten()
        .filter(|a| !addresses.contains(a))
        .map(IpAddr::to_string)
        .collect();
    let mut finding = if missing.is_empty() {
        Finding::new(
            Outcome::Connected,
            format!("{name} resolved to {listed} (via {via})"),
        )
    } else {
        Finding::new(
            Outcome::WrongPeer,
            format!(
                "{name} resolved to {listed} (via {via}), without the expected {}",
                missing.join(", ")
            ),
        )
    };
    finding.addresses = addresses;
    finding
}

/// The address of a tcp/udp/sctp/http target; a name that does not resolve is `dns-failed`,
/// since the path itself was never tried: an answer of "no such name / no address", and a
/// query that got no answer at all (dropped on the way, as a policy that denies DNS drops it;
/// the same silence is `dropped` for a lookup probe). The harness counts `dns-failed` as a deny
/// only for paths to external endpoints by name, and as a probe error everywhere else.
pub(crate) async fn resolve_target(
    resolvers: &Resolvers,
    target: &HostPort,
    deadline: Instant,
) -> Result<SocketAddr, Finding> {
    let name = match &target.host {
        netassay_core::probe::Host::Ip(ip) => return Ok(SocketAddr::new(*ip, target.port)),
        netassay_core::probe::Host::Name(name) => name,
    };
    // A resolver that cannot be used (no resolv.conf, a local error) is an error of the
    // probe, never a verdict.
    match tokio::time::timeout_at(deadline, resolvers.lookup(None, name)).await {
        Err(_) => Err(Finding::new(
            Outcome::DnsFailed,
            format!("{name}: no DNS answer before the timeout"),
        )),
        Ok(Err(failure)) if matches!(failure.outcome, Outcome::DnsFailed | Outcome::Dropped) => {
            Err(Finding::new(
                Outcome::DnsFailed,
                format!("cannot resolve {}", failure.detail),
            ))
        }
        Ok(Err(failure)) => Err(Finding::new(
            Outcome::Error,
            format!("DNS lookup failed: {}", failure.detail),
        )),
        Ok(Ok(ips)) => match ips.first() {
            Some(ip) => Ok(SocketAddr::new(*ip, target.port)),
            None => Err(Finding::new(
                Outcome::DnsFailed,
                format!("{name}: no address"),
            )),
        },
    }
}
