//! The Kubernetes-API emulator: the subset netassay uses, served by axum on 127.0.0.1.
