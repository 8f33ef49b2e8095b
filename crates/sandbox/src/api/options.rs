//! The emulator's tunables.

use crate::control_fault::ControlPlaneFaults;
use crate::object::Object;
use crate::preset::PresetProfile;
use std::time::Duration;

/// Tunables of the emulator.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// How long a started pod may take to become ready before its `Ready` condition says it
    /// timed out (it stays Running; netassay's fixture check reports it).
    pub ready_timeout: Duration,
    /// The sandbox preset whose objects every persona namespace gets; `None`: no preset.
    pub preset: Option<PresetProfile>,
    /// Objects created at start, before the first request (see [`ApiServer::bootstrap`]).
    pub bootstrap: Vec<Object>,
    /// Control-plane faults (`api-errors`, `slow-api`, `exec-resets`, `pod-restarts`); empty: a
    /// well-behaved API server.
    pub faults: ControlPlaneFaults,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            ready_timeout: Duration::from_secs(60),
            preset: None,
            bootstrap: Vec::new(),
            faults: ControlPlaneFaults::default(),
        }
    }
}
