//! Step execution: applying changes, series and convergence, confirmation, time-to-enforce,
//! scheduling across fixtures, cancellation. No report code here: results are plain data
//! (`result`).

pub mod converge;
pub mod enforce;
pub mod result;
pub mod suite;

pub use converge::{
    begin_step, run_step, Judging, Probed, Prober, ReadyRound, RunningSeries, SeriesPlan,
};
pub use result::{Attempt, CellResult, CellStatus, Resilience, StepResult};
