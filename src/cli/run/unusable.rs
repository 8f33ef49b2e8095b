//! An environment netassay cannot use: exit 3, said on stderr, and told to Sonobuoy (which would
//! otherwise wait for its timeout).

use super::args::RunArgs;
use crate::cli::exit;

/// An unusable environment still tells Sonobuoy (which would otherwise wait for its timeout).
pub(super) fn environment_failure(args: &RunArgs, message: &str) -> u8 {
    eprintln!("netassay: {message}");
    if let Some(dir) = crate::report::sonobuoy::results_dir_from_env(args.sonobuoy) {
        if let Err(e) = crate::report::sonobuoy::write_error(&dir, message) {
            eprintln!("netassay: sonobuoy results: {e}");
        }
    }
    exit::ENVIRONMENT
}
