//! kenko's node agent as a library: the binary (`main.rs`) only parses flags and calls in here,
//! so the end-to-end tests and benchmarks drive the same code.

pub mod config;
pub mod crashpoint;
pub mod crypto;
pub mod demo;
pub mod fsutil;
pub mod intake;
pub mod metrics;
pub mod register;
pub mod sample;
pub mod watch;
