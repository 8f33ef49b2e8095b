//! netassay-agent: what runs inside probe pods: `agent serve` (listeners) and `agent probe` (the
//! batched prober).
//!
//! What it may use: `netassay-core` (the probe wire format and the model), tokio, sockets,
//! reqwest and hickory for the HTTP and DNS probes, axum for the readiness endpoint. It knows
//! nothing of Kubernetes, the runner or the sandbox: the harness (or the sandbox's node) starts
//! it as a process and talks to it through stdin, stdout and files.
//!
//! The agent needs no Kubernetes client: the harness execs it and speaks the wire format of
//! [`netassay_core::probe`] over stdin and stdout.
//!
//! Readiness: `agent serve` binds every listener before it reports anything. Once all are bound
//! it writes a [`ReadyReport`](netassay_core::probe::ReadyReport) as JSON to `--ready-file` (atomically:
//! written beside, then renamed, so a reader never sees half a file) and serves the same JSON on
//! `GET /netassay/ready` of its `--http` port. A protocol the kernel lacks (SCTP here: socket()
//! fails with EPROTONOSUPPORT) is listed with state `unsupported` and the reason, and said once
//! on stderr; the other listeners keep serving. The harness marks cells of an unsupported
//! protocol `unsupported` instead of probing them, and `agent probe` independently reports
//! `unsupported` for an SCTP probe where the source lacks SCTP. Any other bind failure (port
//! taken, permission) is fatal: the agent exits 3 before writing the ready file.
//!
//! `agent probe` takes its UDP source ports from a ledger its network namespace's probers share
//! ([`source_ports`]), so that no UDP probe rides the conntrack entry of an earlier one.
//!
//! Two more subcommands run as sandbox infrastructure rather than in probe pods: `agent dns`
//! ([`dns_server`], the cluster DNS answering from a zone file) and `agent gateway`
//! ([`gateway`], the HTTP reverse proxy routing by Host). Both answer from a small text file
//! that the sandbox rewrites on every cluster change; [`watched`] re-reads it when it changes.

pub mod bench;
mod classify;
pub mod dns_server;
pub mod gateway;
pub mod prober;
pub mod serve;
mod sock;
pub mod source_ports;
mod tls;
pub mod watched;

pub use prober::{prepare, run_batch, PreparedBatch};
pub use serve::{bind_all, BoundAgent, ServeConfig, ServeError};
pub use sock::raise_fd_limit;
pub use tls::install_crypto_provider;
