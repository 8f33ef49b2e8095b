//! `agent gateway`: the sandbox's ingress gateway, an HTTP/1.1 reverse proxy routing by Host.
//!
//! The routes file holds one route per line, `<host> <ip>:<port>` (IPv6 as `[addr]:port`);
//! `#` starts a comment. A host may have several lines: its requests go to each backend in
//! turn. A host `*.example.org` matches any name ending in `.example.org` (Gateway API
//! semantics: one label or more), when no exact host matches; the longest suffix wins. The
//! sandbox rewrites the file from HTTPRoutes and Ingresses on every cluster change, and the
//! gateway re-reads it when it changes (see [`crate::watched`]).
//!
//! Each request is routed by its Host header (port stripped, case-insensitive, trailing dot
//! ignored) and forwarded over a fresh connection (none is pooled, so every request meets the
//! network policies in force now). Hop-by-hop headers are dropped both ways, the Host is kept,
//! the client's address is appended to `x-forwarded-for` (and the HTTP client adds
//! `accept: */*` to a request without Accept). The backend's status, headers and body come
//! back as they are. The gateway answers itself:
//! - 400 to a request without a Host;
//! - 404 to a host without a route;
//! - 502 when the backend refuses, is unreachable, or has not answered within
//!   [`BACKEND_TIMEOUT`].
//!
//! Every response carries `x-netassay-gateway: <identity>`.

use super::watched::{content_lines, counted, LineTable, LineWarning, WatchedFile};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The response header naming the gateway that answered.
pub const GATEWAY_HEADER: &str = "x-netassay-gateway";

/// How long a backend has to accept the connection and send its response head.
pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a backend may pause while sending its response body.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest request body relayed (it is read whole before forwarding).
pub const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// How long in-flight requests may finish after SIGTERM before the gateway exits anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1, plus the
/// non-standard ones proxies commonly drop).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Where each host's requests go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// Host (lower case, no trailing dot) -> backends in file order, without repeats.
    exact: HashMap<String, Vec<SocketAddr>>,
    /// `.suffix` of `*.suffix` hosts, longest first, with their backends.
    wildcard: Vec<(String, Vec<SocketAddr>)>,
}

impl RouteTable {
    /// The backends for a request's host (as [`request_host`] gives it); `None` when no route
    /// matches.
    pub fn backends(&self, host: &str) -> Option<&[SocketAddr]> {
        if let Some(backends) = self.exact.get(host) {
            return Some(backends);
        }
        self.wildcard
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, backends)| backends.as_slice())
    }

    /// How many hosts have routes.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LineTable for RouteTable {
    const KIND: &'static str = "routes file";

    fn parse(text: &str) -> (RouteTable, Vec<LineWarning>) {
        let mut table = RouteTable::default();
        let mut warnings = Vec::new();
        for (line, content) in content_lines(text) {
            match parse_route(content) {
                Ok((RouteHost::Exact(host), backend)) => {
                    add_backend(table.exact.entry(host).or_default(), backend);
                }
                Ok((RouteHost::Wildcard(suffix), backend)) => {
                    match table.wildcard.iter_mut().find(|(s, _)| *s == suffix) {
                        Some((_, backends)) => add_backend(backends, backend),
                        None => table.wildcard.push((suffix, vec![backend])),
                    }
                }
                Err(message) => warnings.push(LineWarning { line, message }),
            }
        }
        table
            .wildcard
            .sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        (table, warnings)
    }

    fn summary(&self) -> String {
        let backends: usize = self
            .exact
            .values()
            .chain(self.wildcard.iter().map(|(_, b)| b))
            .map(Vec::len)
            .sum();
        format!(
            "{}, {}",
            counted(self.len(), "host"),
            counted(backends, "backend")
        )
    }
}

fn add_backend(backends: &mut Vec<SocketAddr>, backend: SocketAddr) {
    if !backends.contains(&backend) {
        backends.push(backend);
    }
}

/// The host side of a route line.
enum RouteHost {
    Exact(String),
    /// `.example.org` for `*.example.org`.
    Wildcard(String),
}

/// One routes line without its comment: `<host> <ip>:<port>`.
fn parse_route(content: &str) -> Result<(RouteHost, SocketAddr), String> {
    let mut fields = content.split_whitespace();
    let (Some(host), Some(backend), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(format!(
            "expected `<host> <ip>:<port>`, found {content:?} (one route per line)"
        ));
    };
    let host = match host.strip_prefix("*.") {
        Some(suffix) => RouteHost::Wildcard(format!(".{}", host_name(suffix)?)),
        None => RouteHost::Exact(host_name(host)?),
    };
    let backend = backend
        .parse::<SocketAddr>()
        .map_err(|_| format!("backend {backend:?} is not <ip>:<port> (IPv6 as [address]:port)"))?;
    if backend.port() == 0 {
        return Err(format!("backend {backend} has port 0"));
    }
    Ok((host, backend))
}

/// A route's host name, checked like a DNS name and lower-cased.
fn host_name(host: &str) -> Result<String, String> {
    super::dns_server::zone_name(host).map_err(|e| format!("host: {e}"))
}

/// The host a request is for, from its Host header (or the authority of an absolute target):
/// port stripped, lower case, trailing dot removed. `None` when there is none.
pub fn request_host(host_header: &str) -> Option<String> {
    let value = host_header.trim();
    let host = if let Some(bracketed) = value.strip_prefix('[') {
        // [IPv6]:port
        let (inner, rest) = bracketed.split_once(']')?;
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        inner
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return None,
            None => value,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// What `agent gateway` serves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address and port to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    pub routes: PathBuf,
    /// `namespace/pod`, sent in the `x-netassay-gateway` header of every response.
    pub identity: String,
}

/// Why `agent gateway` cannot serve.
#[derive(Debug, Error)]
pub enum GatewayError {
    #[error("identity: {0}")]
    Identity(String),
    #[error("cannot read the routes file {path}: {source}")]
    Routes { path: String, source: io::Error },
    #[error("cannot listen on tcp {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot build the HTTP client for backends: {0}")]
    Client(#[source] reqwest::Error),
}

/// What every request handler shares.
struct Gateway {
    identity: HeaderValue,
    routes: WatchedFile<RouteTable>,
    client: reqwest::Client,
    /// Turn counter spreading a host's requests over its backends.
    turn: AtomicUsize,
}

/// The gateway with its listener bound and its routes read.
pub struct BoundGateway {
    listener: TcpListener,
    local: SocketAddr,
    gateway: Arc<Gateway>,
}

/// Reads the routes and binds the listener. Must run inside a tokio runtime.
pub async fn bind(config: &GatewayConfig) -> Result<BoundGateway, GatewayError> {
    netassay_core::probe::validate_identity(&config.identity).map_err(GatewayError::Identity)?;
    let identity = HeaderValue::from_str(&config.identity)
        .map_err(|_| GatewayError::Identity("identity is not a valid header value".into()))?;
    let routes = WatchedFile::<RouteTable>::open(&config.routes, "netassay agent gateway")
        .map_err(|source| GatewayError::Routes {
            path: config.routes.display().to_string(),
            source,
        })?;
    crate::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .pool_max_idle_per_host(0)
        .connect_timeout(BACKEND_TIMEOUT)
        .build()
        .map_err(GatewayError::Client)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| GatewayError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| GatewayError::Bind {
        addr: config.listen,
        source,
    })?;
    Ok(BoundGateway {
        listener,
        local,
        gateway: Arc::new(Gateway {
            identity,
            routes,
            client,
            turn: AtomicUsize::new(0),
        }),
    })
}

impl BoundGateway {
    /// The address listened on (the actual port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The routes as of now.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.gateway.routes.current()
    }

    /// Serves until `shutdown` completes, lets requests in flight finish (at most
    /// [`DRAIN_TIMEOUT`]) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let app = Router::new().fallback(relay).with_state(self.gateway);
        let server = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        })
        .into_future();
        tokio::pin!(server);
        tokio::select! {
            served = &mut server => return served,
            () = shutdown => {}
        }
        let _ = stop_tx.send(true);
        tokio::time::timeout(DRAIN_TIMEOUT, server)
            .await
            .unwrap_or(Ok(()))
    }
}

/// Every request: routed, forwarded, and stamped with the gateway's identity.
async fn relay(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let mut response = match forward(&gateway, client, request).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    };
    response
        .headers_mut()
        .insert(GATEWAY_HEADER, gateway.identity.clone());
    response
}

/// A request the gateway answers itself.
#[derive(Debug)]
enum Refusal {
    NoHost,
    UnknownHost(String),
    Unsupported(Method),
    BadTarget(String),
    BodyTooLarge,
    BodyUnreadable,
    BackendUnreachable { backend: SocketAddr, reason: String },
    BackendTimeout(SocketAddr),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Refusal::NoHost => (StatusCode::BAD_REQUEST, "request has no Host header".into()),
            Refusal::UnknownHost(host) => {
                (StatusCode::NOT_FOUND, format!("no route for host {host}"))
            }
            Refusal::Unsupported(method) => (
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not relayed"),
            ),
            Refusal::BadTarget(target) => (
                StatusCode::BAD_REQUEST,
                format!("cannot relay the request target {target:?}"),
            ),
            Refusal::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {MAX_REQUEST_BODY} bytes"),
            ),
            Refusal::BodyUnreadable => (
                StatusCode::BAD_REQUEST,
                "cannot read the request body".into(),
            ),
            Refusal::BackendUnreachable { backend, reason } => (
                StatusCode::BAD_GATEWAY,
                format!("backend {backend} unreachable: {reason}"),
            ),
            Refusal::BackendTimeout(backend) => (
                StatusCode::BAD_GATEWAY,
                format!(
                    "backend {backend} did not answer within {} s",
                    BACKEND_TIMEOUT.as_secs()
                ),
            ),
        };
        let mut response = (status, format!("netassay gateway: {text}\n")).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

async fn forward(
    gateway: &Gateway,
    client: SocketAddr,
    request: Request,
) -> Result<Response, Refusal> {
    if request.method() == Method::CONNECT {
        return Err(Refusal::Unsupported(Method::CONNECT));
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .and_then(request_host)
        .ok_or(Refusal::NoHost)?;
    let routes = gateway.routes.current();
    let backends = routes
        .backends(&host)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| Refusal::UnknownHost(host.clone()))?;
    let turn = gateway.turn.fetch_add(1, Ordering::Relaxed);
    let backend = backends[turn % backends.len()];

    let (parts, body) = request.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let url = reqwest::Url::parse(&format!("http://{backend}{target}"))
        .map_err(|_| Refusal::BadTarget(target.to_string()))?;
    let had_body = parts.headers.contains_key(header::CONTENT_LENGTH)
        || parts.headers.contains_key(header::TRANSFER_ENCODING);
    let declared_len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > MAX_REQUEST_BODY as u64) {
        return Err(Refusal::BodyTooLarge);
    }
    let mut headers = end_to_end(&parts.headers);
    headers.remove(header::CONTENT_LENGTH);
    append_forwarded_for(&mut headers, client);
    let body = axum::body::to_bytes(body, MAX_REQUEST_BODY)
        .await
        .map_err(|_| Refusal::BodyUnreadable)?;

    let mut outgoing = gateway.client.request(parts.method, url).headers(headers);
    if had_body || !body.is_empty() {
        outgoing = outgoing.body(body);
    }
    let upstream = match tokio::time::timeout(BACKEND_TIMEOUT, outgoing.send()).await {
        Err(_) => return Err(Refusal::BackendTimeout(backend)),
        Ok(Err(e)) if e.is_timeout() => return Err(Refusal::BackendTimeout(backend)),
        Ok(Err(e)) => {
            return Err(Refusal::BackendUnreachable {
                backend,
                reason: root_cause(&e),
            })
        }
        Ok(Ok(upstream)) => upstream,
    };

    let mut response = Response::builder()
        .status(upstream.status())
        .body(Body::empty())
        .unwrap_or_default();
    *response.headers_mut() = end_to_end(upstream.headers());
    *response.body_mut() = Body::from_stream(relay_body(upstream));
    Ok(response)
}

/// The headers minus the hop-by-hop ones, including those the Connection header names.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let mut kept = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && !named.contains(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// Appends the client's address to `x-forwarded-for` (kept comma-separated in one header).
fn append_forwarded_for(headers: &mut HeaderMap, client: SocketAddr) {
    let name = HeaderName::from_static("x-forwarded-for");
    let prior: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let client = client.ip().to_canonical().to_string();
    let value = if prior.is_empty() {
        client
    } else {
        format!("{}, {client}", prior.join(", "))
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}

/// The backend's body as a stream of chunks; a backend silent for [`BODY_IDLE_TIMEOUT`]
/// mid-body ends it with an error (the client sees the connection cut).
fn relay_body(
    upstream: reqwest::Response,
) -> impl futures::Stream<Item = Result<axum::body::Bytes, io::Error>> + Send {
    futures::stream::unfold(Some(upstream), |upstream| async move {
        let mut upstream = upstream?;
        match tokio::time::timeout(BODY_IDLE_TIMEOUT, upstream.chunk()).await {
            Ok(Ok(Some(chunk))) => Some((Ok(chunk), Some(upstream))),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => Some((Err(io::Error::other(root_cause(&e))), None)),
            Err(_) => Some((
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "backend paused sending the body",
                )),
                None,
            )),
        }
    })
}

/// The innermost cause of an error (reqwest's own message names only the URL).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> RouteTable {
        let (table, warnings) = RouteTable::parse(text);
        assert!(warnings.is_empty(), "{warnings:?}");
        table
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn route_lines_parse_or_are_reported_with_their_line_number() {
        // (line, host looked up, error fragment)
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("web.example.org 10.96.0.7:80", Some("web.example.org"), ""),
            ("Web.Example.ORG. 10.96.0.7:80", Some("web.example.org"), ""),
            (
                "v6.example.org [2001:db8::7]:8080",
                Some("v6.example.org"),
                "",
            ),
            (
                "*.apps.example.org 10.96.0.7:80",
                Some("x.y.apps.example.org"),
                "",
            ),
            ("web.example.org", None, "expected `<host> <ip>:<port>`"),
            (
                "web.example.org 10.96.0.7:80 extra",
                None,
                "expected `<host> <ip>:<port>`",
            ),
            ("web.example.org 10.96.0.7", None, "is not <ip>:<port>"),
            ("web.example.org svc:80", None, "is not <ip>:<port>"),
            ("web.example.org 2001:db8::7:80", None, "is not <ip>:<port>"),
            ("web.example.org 10.96.0.7:0", None, "port 0"),
            ("web..example.org 10.96.0.7:80", None, "empty label"),
            ("web.example.org:80 10.96.0.7:80", None, "holds ':'"),
            ("*.*.example.org 10.96.0.7:80", None, "holds '*'"),
        ];
        for (line, host, error) in cases {
            let (table, warnings) = RouteTable::parse(&format!("# routes\n{line} # comment\n"));
            match host {
                Some(host) => {
                    assert!(warnings.is_empty(), "{line:?}: {warnings:?}");
                    assert_eq!(table.backends(host).map(<[_]>::len), Some(1), "{line:?}");
                }
                None => {
                    assert!(table.is_empty(), "{line:?}");
                    assert_eq!(warnings.len(), 1, "{line:?}");
                    assert_eq!(warnings[0].line, 2, "{line:?}");
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
    fn exact_hosts_win_over_wildcards_and_longer_suffixes_over_shorter() {
        let t = table(
            "*.example.org 10.0.0.1:80\n\
             *.apps.example.org 10.0.0.2:80\n\
             web.apps.example.org 10.0.0.3:80\n\
             web.apps.example.org 10.0.0.4:80\n\
             web.apps.example.org 10.0.0.3:80\n",
        );
        assert_eq!(
            t.backends("web.apps.example.org").unwrap(),
            [addr("10.0.0.3:80"), addr("10.0.0.4:80")]
        );
        assert_eq!(
            t.backends("db.apps.example.org").unwrap(),
            [addr("10.0.0.2:80")]
        );
        assert_eq!(
            t.backends("apps.example.org").unwrap(),
            [addr("10.0.0.1:80")]
        );
        assert!(t.backends("example.org").is_none());
        assert!(t.backends("other.net").is_none());
    }

    #[test]
    fn the_request_host_drops_port_case_and_trailing_dot() {
        let cases = [
            ("web.example.org", Some("web.example.org")),
            ("Web.Example.Org:8080", Some("web.example.org")),
            ("web.example.org.:80", Some("web.example.org")),
            (" web.example.org ", Some("web.example.org")),
            ("[2001:DB8::1]:80", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("203.0.113.1:80", Some("203.0.113.1")),
            ("web.example.org:", None),
            ("web.example.org:http", None),
            ("[2001:db8::1", None),
            ("", None),
            (":80", None),
        ];
        for (header, want) in cases {
            assert_eq!(request_host(header).as_deref(), want, "{header:?}");
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("host", "web"),
            ("connection", "keep-alive, X-Secret"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-secret", "1"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ] {
            h.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let kept = end_to_end(&h);
        let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["host", "set-cookie"]);
        assert_eq!(kept.get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn the_client_is_appended_to_x_forwarded_for() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, addr("[::ffff:203.0.113.100]:5000"));
        assert_eq!(h["x-forwarded-for"], "203.0.113.100");
        append_forwarded_for(&mut h, addr("10.0.0.9:1"));
        assert_eq!(h["x-forwarded-for"], "203.0.113.100, 10.0.0.9");
    }
}
