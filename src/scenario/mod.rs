//! The scenario YAML format, loading with precise errors, and the built-in corpus.

mod bind;
pub mod builtin;
mod definition;
pub mod document;
pub mod exposure;
pub mod format;
pub mod load;
pub mod plan;
pub mod policies;
pub mod profile;
pub mod repeat;
pub mod source;

pub use bind::bind_profiles;
pub use definition::{CellPin, Expect, Matrix, Scenario, Step};
pub use document::LoadError;
pub use format::{ExpectDefault, Mode, PinVerdict, PortRef};
pub use load::{load_paths, load_str};
pub use plan::{walk, Cell, ExpectedCell, StepPlan};
pub use profile::Profile;
