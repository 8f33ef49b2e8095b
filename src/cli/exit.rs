//! The exit codes of every command (DESIGN §8).

/// Every judged path behaved as expected.
pub const OK: u8 = 0;
/// At least one path did not.
pub const MISMATCH: u8 = 1;
/// Bad input or usage.
pub const BAD_INPUT: u8 = 2;
/// The environment is not usable.
pub const ENVIRONMENT: u8 = 3;
/// Interrupted (after cleanup).
pub const INTERRUPTED: u8 = 130;
