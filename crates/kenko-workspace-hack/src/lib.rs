//! The workspace-hack crate (managed by `cargo hakari`): it depends on the union of the features
//! the workspace enables on each shared third-party crate, so that `cargo test -p CRATE` and
//! `cargo test --workspace` compile those crates once, with one feature set, and share them.
//! It has no code. Regenerate with `cargo hakari generate` after changing a dependency.
