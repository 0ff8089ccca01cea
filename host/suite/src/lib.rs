//! Palisade's test suites: one runner for the suite files of every home. A suite names a
//! policy module (whatever its ABI: the runner tells it from the module), default settings,
//! what the host gives (grants, time, data tables) and cases, each an AdmissionReview file
//! (admission policies) or a proxy scenario (proxy-wasm filters) with what must hold of the
//! outcome. Failing expectations are results, not errors; an unreadable suite, request,
//! scenario or module is an error naming the file, so a run can tell "the policy is wrong" from
//! "the inputs are". Knows files and formats; never argument parsing or printing.

mod check;
mod error;
mod file;
pub mod gator;
pub mod input;
mod junit;
mod runner;

pub use error::SuiteError;
pub use file::{Case, Expect, ExpectRequest, HostConfig, Suite};
pub use junit::junit;
pub use runner::{CaseResult, Runner, SuiteReport};
