//! Probe specs and outcomes: the wire format shared by the harness and the in-pod agent.
