//! The world the oracle reasons about: logical namespaces and pods, labels, served ports, addresses.
