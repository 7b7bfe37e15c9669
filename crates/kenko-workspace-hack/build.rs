//! Empty build script: cargo unifies build-dependency features only for a crate that has one.
fn main() {}
