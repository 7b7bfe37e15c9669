//! kenko's node agent as a library: the binary (`main.rs`) only parses flags and calls in here,
//! so the end-to-end tests and benchmarks drive the same code.

pub mod sample;
