//! The intake file's contract as pure logic (no I/O): which columns exist, how each field is
//! written, how dates and Japanese eras are read, what every check means and its stable reason
//! code, and the vaccine master. The agent's pipeline (`kenko-agent::intake`) feeds it decoded
//! CSV fields and a view of the resident register; this crate decides what is right.
//!
//! The human contract is `docs/intake-format.md`; keep the two in step.

pub mod age;
pub mod check;
pub mod clock;
pub mod columns;
pub mod date;
pub mod master;
pub mod mynumber;
pub mod normalize;
pub mod reason;
pub mod register_delta;
pub mod register_extract;

pub use check::{
    birth_token, Checker, Domain, ExamCategory, Facts, Issue, Loss, LossKind, PastFacts, Payment,
    Record, Register, RegisterEntry, RowErrors, Sex, Token, Tokenizer,
};
pub use columns::{Column, Header, HeaderProblem};
pub use date::{DateError, YearMonth};
pub use master::{MasterError, Vaccine, VaccineMaster};
pub use mynumber::MyNumber;
pub use reason::Reason;
