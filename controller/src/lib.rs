//! kenko's Kubernetes controller. `plan` is pure (what a stack should look like, its
//! residency verdict, its data locations); `reconcile` applies it through the API server and
//! decommissions deleted stacks; `telemetry` holds metrics and probes.

pub mod evidence;
pub mod plan;
pub mod reconcile;
pub mod run;
pub mod telemetry;
