//! Step execution: applying changes, series and convergence, confirmation, time-to-enforce,
//! cancellation, against any [`Prober`] (`cluster::Fixture` is the real one; scheduling across
//! fixtures is `crate::suite`'s). No report code here: results are plain data (`result`).

pub mod converge;
pub mod enforce;
pub mod result;

pub use converge::{
    begin_step, run_step, Judging, Probed, Prober, ReadyRound, RunningSeries, SeriesPlan,
};
pub use result::{Attempt, CellResult, CellStatus, Resilience, StepLoad, StepResult};
