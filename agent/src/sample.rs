//! Synthetic, deterministic data for demos, tests and benchmarks: a resident register and
//! monthly intake files. (Being written.)
