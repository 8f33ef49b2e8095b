//! HTTP(S) probes through reqwest (rustls): GET with an optional Host header, SNI and status.

use super::dns::{resolve_target, LookupFailure, Resolvers};
use super::finding::{judge_identity, Finding};
use super::stream::{self, Stream};
use crate::classify;
use netassay_core::probe::{parse_greeting, Host, HostPort, Outcome, ProbeKind, ProbeSpec};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HOST;
use reqwest::{Client, Url};
use std::error::Error as StdError;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use tokio::time::Instant;

/// Most body bytes read: enough for a greeting, not a download.
const MAX_BODY: usize = 4096;

/// What an http probe fetches, checked before the batch runs.
#[derive(Debug, Clone)]
pub(super) struct HttpTarget {
    /// The URL as given.
    pub url: Url,
}

impl HttpTarget {
    pub(super) fn parse(spec: &ProbeSpec) -> Result<Self, String> {
        let text = spec.http_url().map_err(|e| e.to_string())?;
        let url = Url::parse(&text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        if url.host_str().is_none() {
            return Err(format!("{text:?} has no host"));
        }
        if let Some(sni) = &spec.sni {
            let mut renamed = url.clone();
            renamed
                .set_host(Some(sni))
                .map_err(|e| format!("sni {sni:?} cannot be a URL host: {e}"))?;
        }
        Ok(HttpTarget { url })
    }

    /// The host and port the connection goes to.
    fn endpoint(&self) -> Option<HostPort> {
        let port = self.url.port_or_known_default()?;
        let host = self.url.host_str()?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let host = match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(host.to_string()),
        };
        Some(HostPort { host, port })
    }
}

/// The shared HTTP clients of one batch: certificate-checking and not. A probe with an SNI
/// override gets a client of its own, pinned to its address.
pub(super) struct Clients {
    resolvers: Arc<Resolvers>,
    verified: OnceLock<Result<Client, String>>,
    insecure: OnceLock<Result<Client, String>>,
}

impl Clients {
    pub(super) fn new(resolvers: Arc<Resolvers>) -> Self {
        Clients {
            resolvers,
            verified: OnceLock::new(),
            insecure: OnceLock::new(),
        }
    }

    fn shared(&self, insecure: bool) -> Result<Client, String> {
        let cell = if insecure {
            &self.insecure
        } else {
            &self.verified
        };
        cell.get_or_init(|| build_client(&self.resolvers, insecure, None))
            .clone()
    }

    /// Builds the shared clients `probes` will use, before any probe's clock starts: building
    /// one loads the trust roots, which blocks for tens of milliseconds.
    pub(super) async fn prepare<'a>(self: &Arc<Self>, probes: impl Iterator<Item = &'a ProbeSpec>) {
        let mut wanted = [false, false];
        for spec in probes.filter(|p| p.kind == ProbeKind::Http && p.sni.is_none()) {
            wanted[usize::from(spec.insecure)] = true;
        }
        for insecure in [false, true] {
            if wanted[usize::from(insecure)] {
                let clients = self.clone();
                let _ = tokio::task::spawn_blocking(move || clients.shared(insecure)).await;
            }
        }
    }
}

fn build_client(
    resolvers: &Arc<Resolvers>,
    insecure: bool,
    pin: Option<(&str, SocketAddr)>,
) -> Result<Client, String> {
    crate::tls::install_crypto_provider();
    let mut builder = Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        // Every probe opens its own connection: a pooled one would prove nothing new.
        .pool_max_idle_per_host(0)
        .dns_resolver(HickoryNames(resolvers.clone()))
        .tls_danger_accept_invalid_certs(insecure);
    if let Some((name, addr)) = pin {
        builder = builder.resolve(name, addr);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", chain(&e)))
}

/// Lets reqwest resolve names through the batch's resolver, so failures are recognisable.
struct HickoryNames(Arc<Resolvers>);

impl Resolve for HickoryNames {
    fn resolve(&self, name: Name) -> Resolving {
        let resolvers = self.0.clone();
        let name = name.as_str().to_string();
        Box::pin(async move {
            let ips = resolvers.lookup(None, &name).await?;
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

pub(super) async fn probe(
    clients: &Clients,
    resolvers: &Arc<Resolvers>,
    spec: &ProbeSpec,
    target: &HttpTarget,
    deadline: Instant,
    timeout_ms: u64,
) -> Finding {
    let mut url = target.url.clone();
    let Some(endpoint) = target.endpoint() else {
        return Finding::new(Outcome::Error, format!("{url} has no host or port"));
    };
    let addr = match resolve_target(resolvers, &endpoint, deadline).await {
        Ok(addr) => addr,
        Err(finding) => return finding,
    };
    // Reaching the port is judged first, by the TCP probe's own rules: a silent HTTP server
    // behind an open port must not pass for a dropped path.
    match stream::connect(Stream::Tcp, addr, deadline, timeout_ms).await {
        Ok(preflight) => drop(preflight),
        Err(finding) => return finding,
    }
    let client = match &spec.sni {
        None => clients.shared(spec.insecure),
        Some(sni) => {
            // The URL names the SNI host; the connection is pinned to the target's address.
            if url.set_host(Some(sni)).is_err() {
                return Finding::new(Outcome::Error, format!("sni {sni:?} cannot be a URL host"));
            }
            let resolvers = resolvers.clone();
            let (sni, insecure) = (sni.clone(), spec.insecure);
            // Off the async workers: building a client blocks while it loads the trust roots.
            tokio::task::spawn_blocking(move || {
                build_client(&resolvers, insecure, Some((&sni, addr)))
            })
            .await
            .unwrap_or_else(|e| Err(format!("building the HTTP client failed: {e}")))
        }
    };
    let client = match client {
        Ok(c) => c,
        Err(detail) => return Finding::new(Outcome::Error, detail),
    };
    let mut request = client.get(url.clone());
    if let Some(host) = &spec.host {
        request = request.header(HOST, host.as_str());
    }
    let exchange = async {
        let mut response = request.send().await?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while body.len() < MAX_BODY {
            match response.chunk().await? {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        Ok::<_, reqwest::Error>((status, body))
    };
    let (status, body) = match tokio::time::timeout_at(deadline, exchange).await {
        Err(_) => {
            return Finding::new(
                Outcome::WrongPeer,
                format!(
                "{addr} accepted the connection, but no HTTP answer came within {timeout_ms} ms"
            ),
            )
        }
        Ok(Err(e)) => return judge_error(&e, &url),
        Ok(Ok(answer)) => answer,
    };
    if let Some(expected) = spec.expect_status {
        if status != expected {
            let mut finding = Finding::new(
                Outcome::WrongPeer,
                format!("{url} answered HTTP {status}, expected {expected}"),
            );
            finding.peer_identity = parse_greeting(&body);
            return finding;
        }
    }
    let mut finding = judge_identity(spec.expect_identity.as_deref(), parse_greeting(&body), &url);
    finding.detail = format!("HTTP {status}: {}", finding.detail);
    finding
}

/// The outcome of a failed exchange, from the most specific cause in the error chain.
fn judge_error(err: &reqwest::Error, url: &Url) -> Finding {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(failure) = e.downcast_ref::<LookupFailure>() {
            return Finding::new(Outcome::DnsFailed, format!("{url}: {}", failure.detail));
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.raw_os_error().is_some() {
                let (outcome, detail) = classify::reach_error(io);
                return Finding::new(outcome, format!("{url}: {detail}"));
            }
        }
        cause = e.source();
    }
    Finding::new(Outcome::Error, format!("{url}: {}", chain(err)))
}

/// An error and its causes, on one line.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cause = err.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = e.source();
    }
    parts.join(": ")
}
