//! kenko's Kubernetes controller.
//!
//! The controller (HealthStack and erasure CRDs, residency enforcement, decommissioning and the
//! `kubectl kenko` plugin) arrives with its own issue; this crate keeps the workspace layout
//! fixed in the meantime and says so plainly when run.

fn main() {
    eprintln!("kenko-controller: not implemented yet (see ARCHITECTURE.md)");
    std::process::exit(2);
}
