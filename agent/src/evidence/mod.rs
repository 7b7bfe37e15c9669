//! The auditor's evidence pack (one signed, self-verifying bundle of a period's evidence).
//! Being built; see `cli`.

pub mod cli;
