//! Retries of API requests (DESIGN §6): a throttling (429), hiccuping (500, 502, 503, 504) or
//! stalled API server must end in a retry or in an honest environment error, never in a verdict.
//!
//! A tower layer on netassay's client: every request but an exec upgrade (the probe batch is
//! replayed instead, see `fixture`) is retried with exponential backoff and jitter, honouring
//! `Retry-After`; each attempt has its own timeout, so a stalled request is retried too. Creates
//! are retried as well: an answer that never came may still have created the object, and the
//! retry then gets "AlreadyExists". A fixture takes the object as its own when it carries the
//! run's label (`fixture::ours_after_conflict`); anything else ends the run as an environment
//! error (exit 3), never as a verdict. After [`MAX_RETRIES`] (or
//! [`RETRY_DEADLINE`]) the request fails with [`GaveUp`], naming the cause and the retries.
//!
//! Each client counts its retries in an [`ApiTally`]; a fixture has a client of its own, so the
//! reports can say how many retries each step needed.

use http::{Request, Response, StatusCode};
use kube::client::Body;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::BoxError;

/// Most retries of one request.
pub const MAX_RETRIES: u32 = 8;
/// No retry starts later than this after the request's first failure.
pub const RETRY_DEADLINE: Duration = Duration::from_secs(60);
/// One attempt may take this long to get its answer's headers.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// First backoff; doubles per retry up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// `Retry-After` is honoured up to this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// What one client did (shared by its clones): its retries, and for the cost figures
/// (`bench scale`) the requests it made and how many of them were exec upgrades.
#[derive(Debug, Clone, Default)]
pub struct ApiTally {
    retries: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    execs: Arc<AtomicU64>,
}

impl ApiTally {
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Requests made, retries not counted again; exec upgrades included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Exec calls (websocket upgrades) made.
    pub fn execs(&self) -> u64 {
        self.execs.load(Ordering::Relaxed)
    }

    fn add(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    fn sent<B>(&self, req: &Request<B>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if is_upgrade(req) {
            self.execs.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A request that kept failing.
#[derive(Debug, thiserror::Error)]
#[error("the API server kept failing {what}: gave up after {retries} retries over {elapsed:?} (last: {last})")]
pub struct GaveUp {
    pub what: String,
    pub retries: u32,
    pub elapsed: Duration,
    pub last: String,
}

/// The retry policy of one request.
#[derive(Clone)]
pub struct ApiRetry {
    tally: ApiTally,
    retries: u32,
    /// When the request first failed.
    first: Option<Instant>,
}

impl ApiRetry {
    pub fn new(tally: ApiTally) -> Self {
        ApiRetry {
            tally,
            retries: 0,
            first: None,
        }
    }
}

/// Answers that say "not done, try again": throttling, server errors, gateways.
pub fn retryable_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// A websocket upgrade (exec): never retried here.
fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(http::header::UPGRADE)
}

/// `Retry-After` in seconds, as kube-apiserver sends it.
fn retry_after<B>(r: &Response<B>) -> Option<Duration> {
    let secs: u64 = r
        .headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Exponential backoff for retry number `n` (1-based), with up to 25 % jitter.
pub fn backoff(n: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    base + base.mul_f64(fastrand::f64() * 0.25)
}

impl<Res> tower::retry::Policy<Request<Body>, Response<Res>, BoxError> for ApiRetry {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<Res>, BoxError>,
    ) -> Option<Self::Future> {
        let first = *self.first.get_or_insert_with(Instant::now);
        let (why, server_delay) = match result {
            Ok(r) if retryable_status(r.status()) => (r.status().to_string(), retry_after(r)),
            Ok(_) => return None,
            Err(e) => (e.to_string(), None),
        };
        if is_upgrade(req) {
            return None;
        }
        let elapsed = first.elapsed();
        if self.retries >= MAX_RETRIES || elapsed >= RETRY_DEADLINE {
            *result = Err(Box::new(GaveUp {
                what: format!("{} {}", req.method(), req.uri().path()),
                retries: self.retries,
                elapsed,
                last: why,
            }));
            return None;
        }
        self.retries += 1;
        self.tally.add();
        Some(tokio::time::sleep(
            server_delay.unwrap_or_else(|| backoff(self.retries)),
        ))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        // No state here: tower calls this on the service's own policy, which every later
        // request's policy is cloned from; `retry` runs on the request's own copy.
        if is_upgrade(req) {
            return None;
        }
        let body = req.body().try_clone()?;
        let mut copy = Request::builder()
            .method(req.method().clone())
            .uri(req.uri().clone())
            .version(req.version())
            .body(body)
            .ok()?;
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}

/// A client for `config` whose requests are retried as above and counted in `tally`.
pub fn client_with_retries(
    mut config: kube::Config,
    tally: &ApiTally,
) -> Result<kube::Client, kube::Error> {
    // kube's own retry would retry 429/503/504 silently (up to 15 times over minutes): ours
    // replaces it, counts, and gives up in bounded time.
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config)?;
    // Retrying needs a service it can clone: kube's stack is boxed, a buffer makes it so.
    Ok(builder
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::timeout::TimeoutLayer::new(ATTEMPT_TIMEOUT))
        .with_layer(&tower::retry::RetryLayer::new(ApiRetry::new(tally.clone())))
        // Outermost: each request is counted once, however often it is retried.
        .with_layer(&tower::util::MapRequestLayer::new({
            let tally = tally.clone();
            move |req: Request<Body>| {
                tally.sent(&req);
                req
            }
        }))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::retry::Policy;

    fn answer(code: u16, retry_after: Option<&str>) -> Result<Response<()>, BoxError> {
        let mut b = Response::builder().status(code);
        if let Some(r) = retry_after {
            b = b.header("Retry-After", r);
        }
        Ok(b.body(()).expect("response"))
    }

    fn get() -> Request<Body> {
        Request::get("/api/v1/namespaces/x/pods")
            .body(Body::empty())
            .expect("request")
    }

    // Which answers are retried: throttling and server errors, never a client error or a
    // success (a 404 or a 422 is an answer, not a hiccup).
    #[tokio::test]
    async fn throttling_and_server_errors_are_retried_and_answers_are_not() {
        let tally = ApiTally::default();
        for (code, retried) in [
            (200, false),
            (201, false),
            (404, false),
            (409, false),
            (422, false),
            (429, true),
            (500, true),
            (502, true),
            (503, true),
            (504, true),
        ] {
            let mut p = ApiRetry::new(tally.clone());
            let mut r = answer(code, None);
            assert_eq!(p.retry(&mut get(), &mut r).is_some(), retried, "{code}");
        }
        assert_eq!(tally.retries(), 5);
    }

    #[tokio::test]
    async fn retry_after_is_honoured_and_capped() {
        let mut p = ApiRetry::new(ApiTally::default());
        let start = Instant::now();
        let sleep = p
            .retry(&mut get(), &mut answer(429, Some("3")))
            .expect("retried");
        assert!(sleep.deadline() >= start + Duration::from_secs(3));
        let sleep = p
            .retry(&mut get(), &mut answer(429, Some("600")))
            .expect("retried");
        assert!(sleep.deadline() <= Instant::now() + MAX_RETRY_AFTER);
    }

    // A fault that persists ends in an error naming the request, the cause and the retries.
    #[tokio::test]
    async fn a_persistent_fault_gives_up_with_the_cause_and_the_count() {
        let tally = ApiTally::default();
        let mut p = ApiRetry::new(tally.clone());
        for _ in 0..MAX_RETRIES {
            assert!(p.retry(&mut get(), &mut answer(503, None)).is_some());
        }
        let mut r = answer(503, None);
        assert!(p.retry(&mut get(), &mut r).is_none());
        let e = r.expect_err("gave up").to_string();
        assert!(e.contains("GET /api/v1/namespaces/x/pods"), "{e}");
        assert!(
            e.contains(&format!("gave up after {MAX_RETRIES} retries")),
            "{e}"
        );
        assert!(e.contains("503"), "{e}");
        assert_eq!(tally.retries(), u64::from(MAX_RETRIES));
    }

    #[tokio::test]
    async fn exec_upgrades_are_never_retried_here() {
        let mut p = ApiRetry::new(ApiTally::default());
        let mut req = Request::get("/api/v1/namespaces/x/pods/a/exec")
            .header("Upgrade", "websocket")
            .body(Body::empty())
            .expect("request");
        assert!(
            <ApiRetry as Policy<Request<Body>, Response<()>, BoxError>>::clone_request(
                &mut p, &req
            )
            .is_none()
        );
        assert!(p.retry(&mut req, &mut answer(503, None)).is_none());
    }

    /// Sends one request through `client`; the error it gave up with, and how long it took.
    async fn send<S>(client: &mut S) -> (GaveUp, Duration)
    where
        S: tower::Service<Request<Body>, Response = Response<()>, Error = BoxError>,
    {
        use tower::ServiceExt;
        let sent = Instant::now();
        let result = client.ready().await.expect("ready").call(get()).await;
        let took = sent.elapsed();
        let error = result.expect_err("a persistent 503 gives up");
        let gave_up = *error.downcast::<GaveUp>().expect("GaveUp");
        (gave_up, took)
    }

    // Regression: the service's own policy is the template every request's copy is cloned
    // from; state kept there made a late request look as old as the client ("gave up after 0
    // retries over 126s"). Shown through tower's own Retry service, as the client uses it: a
    // request that comes after another one gave up still gets every retry, on its own clock.
    #[tokio::test]
    async fn every_request_starts_with_a_fresh_count_and_clock() {
        use std::sync::atomic::AtomicU32;
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        // Always 503, with `Retry-After: 0` so the retries do not wait.
        let server = tower::service_fn(move |_: Request<Body>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { answer(503, Some("0")) }
        });
        let tally = ApiTally::default();
        let mut client = tower::retry::Retry::new(ApiRetry::new(tally.clone()), server);
        let (first, _) = send(&mut client).await;
        assert_eq!(first.retries, MAX_RETRIES);
        assert_eq!(calls.load(Ordering::SeqCst), MAX_RETRIES + 1);
        // Later: the first request's clock would now read at least this much.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (later, took) = send(&mut client).await;
        assert_eq!(later.retries, MAX_RETRIES, "every retry again");
        assert_eq!(calls.load(Ordering::SeqCst), 2 * (MAX_RETRIES + 1));
        assert!(
            later.elapsed <= took,
            "the later request's clock started with it: {:?} over a request of {took:?}",
            later.elapsed
        );
        assert_eq!(tally.retries(), 2 * u64::from(MAX_RETRIES));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert!(backoff(1) >= FIRST_BACKOFF && backoff(1) <= FIRST_BACKOFF.mul_f64(1.25));
        assert!(backoff(3) >= FIRST_BACKOFF * 4);
        assert!(backoff(30) <= MAX_BACKOFF.mul_f64(1.25));
    }
}
