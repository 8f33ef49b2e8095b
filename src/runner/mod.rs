//! Step execution: applying changes, convergence and confirmation, scheduling across fixtures,
//! cancellation. No report code here: results are plain data (`result`).

pub mod converge;
pub mod result;
pub mod suite;

pub use converge::{run_step, Judging, Prober};
pub use result::{Attempt, CellResult, CellStatus, StepResult};
