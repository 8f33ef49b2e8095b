//! An in-process dataplane for API tests: no root, no network; exec runs local processes.
