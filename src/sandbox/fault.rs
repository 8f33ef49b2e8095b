//! CNI fault profiles of the sandbox: names, one-line descriptions, parsing.
