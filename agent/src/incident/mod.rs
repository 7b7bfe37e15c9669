//! The incident report draft to the Personal Information Protection Commission.
//! Being built; see `cli`.

pub mod cli;
