//! The three inputs, each parsed from one JSON line into one [`Event`]:
//!
//! - the health system's access log (`docs/access-log-format.md`),
//! - the Kubernetes audit log (`audit.k8s.io/v1` `Event` objects, one per line),
//! - CloudTrail (one record per line, or a whole log file `{"Records":[...]}` with
//!   [`parse_cloudtrail_file`]; the agent un-gzips the file first).
//!
//! Parsing borrows from the line: strings without escapes are not copied, unknown fields are
//! skipped, and nothing is allocated per line in the common case. Every leaf is read as an
//! untyped scalar and checked here, so an error names the source, the line, the field and what
//! was expected, and never carries the value (serde's own messages can quote it, so they are
//! never passed on).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::calendar::parse_rfc3339;

mod cloudtrail;
mod health;
mod json;
mod k8s;
mod principals;
#[cfg(test)]
mod tests;

pub use cloudtrail::{parse_cloudtrail_file, parse_cloudtrail_line, CloudTrailRecords};
pub use health::parse_health_line;
use json::*;
pub use k8s::parse_k8s_line;
pub use principals::{glob, matches_any, Principals};

/// Where an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Health,
    K8sAudit,
    CloudTrail,
}

impl Source {
    /// The name used in errors.
    pub fn name(self) -> &'static str {
        match self {
            Source::Health => "health access log",
            Source::K8sAudit => "kubernetes audit log",
            Source::CloudTrail => "cloudtrail",
        }
    }
}

/// Who the actor is, as far as the inputs and [`Principals`] tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActorKind {
    /// A user of the health system (checked against the roster).
    Staff,
    /// A person of the ASP / cloud operations contractor (kubectl, the AWS console or CLI).
    CloudOperator,
    /// The cloud provider or the state (AWS acting on its own, another account, the Government
    /// Cloud's administration role): never entitled to business data.
    Provider,
    /// A workload: the health application, the agent, controllers, AWS services acting for the
    /// city (backup, replication).
    Service,
}

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    // health access log
    View,
    Search,
    Update,
    Export,
    Print,
    Login,
    LoginFailed,
    // Kubernetes
    SecretRead,
    PodExec,
    RbacChange,
    // AWS
    IamChange,
    ObjectRead,
    ObjectWrite,
    KmsDecrypt,
    /// Anything else (listed for completeness; no rule looks at it beyond the account checks).
    Other,
}

impl Action {
    /// An action of the health application on resident data.
    #[inline]
    pub fn is_data(self) -> bool {
        matches!(
            self,
            Action::View | Action::Search | Action::Update | Action::Export | Action::Print
        )
    }
}

/// How the request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    /// Refused by authorisation (or a failed login).
    Denied,
    Error,
}

/// One normalised event. Strings borrow from the input line where they can.
#[derive(Clone, PartialEq)]
pub struct Event<'a> {
    pub source: Source,
    /// UTC epoch seconds.
    pub time: i64,
    /// Staff id, Kubernetes user name, or the AWS principal (see [`Principals`]).
    pub actor: Cow<'a, str>,
    pub actor_kind: ActorKind,
    /// The role the health system recorded (informational; the roster is authoritative).
    pub role: Option<Cow<'a, str>>,
    pub action: Action,
    /// The resident token (pseudonymous; never a My Number). Never shown in alerts or `Debug`.
    pub subject: Option<Cow<'a, str>>,
    /// The resident's district code (地区), when the health system knows it.
    pub district: Option<Cow<'a, str>>,
    /// Number of records touched (1 for a view; the result size of a search or export).
    pub count: u32,
    pub case_ref: Option<Cow<'a, str>>,
    pub terminal: Option<Cow<'a, str>>,
    pub outcome: Outcome,
    /// The object acted on: `namespace/name` of a pod or secret, an RBAC `resource/name`, an S3
    /// bucket, a KMS key ARN, the IAM API call.
    pub resource: Option<Cow<'a, str>>,
    /// The S3 object key of an S3 data event (which stack's prefix of a shared bucket).
    pub object: Option<Cow<'a, str>>,
    /// The HealthStack (`namespace/name`) the input belongs to, when the input itself tells
    /// (a stack's app pod log); otherwise the detector finds it from the resource.
    pub stack: Option<Cow<'a, str>>,
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("source", &self.source)
            .field("time", &self.time)
            .field("actor", &self.actor)
            .field("actor_kind", &self.actor_kind)
            .field("action", &self.action)
            .field("subject", &self.subject.as_ref().map(|_| "<redacted>"))
            .field("district", &self.district)
            .field("count", &self.count)
            .field("case_ref", &self.case_ref.as_ref().map(|_| "<redacted>"))
            .field("terminal", &self.terminal)
            .field("outcome", &self.outcome)
            .field("resource", &self.resource)
            .field("object", &self.object.as_ref().map(|_| "<object key>"))
            .field("stack", &self.stack)
            .finish()
    }
}

impl Event<'_> {
    /// A copy that owns its strings.
    pub fn into_owned(self) -> Event<'static> {
        let o = |c: Option<Cow<'_, str>>| c.map(|c| Cow::Owned(c.into_owned()));
        Event {
            source: self.source,
            time: self.time,
            actor: Cow::Owned(self.actor.into_owned()),
            actor_kind: self.actor_kind,
            role: o(self.role),
            action: self.action,
            subject: o(self.subject),
            district: o(self.district),
            count: self.count,
            case_ref: o(self.case_ref),
            terminal: o(self.terminal),
            outcome: self.outcome,
            resource: o(self.resource),
            object: o(self.object),
            stack: o(self.stack),
        }
    }
}

/// What was wrong with a line. Never carries the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not valid JSON (or not UTF-8) at this column.
    NotJson {
        column: usize,
    },
    /// The line is valid JSON but not an object.
    NotAnObject,
    Missing,
    Duplicate,
    /// The field holds something else than expected.
    Expected(&'static str),
    /// The subject looks like a My Number (12 digits): the health system must log the resident
    /// token instead.
    MyNumberInSubject,
    /// The line is longer than [`crate::feed::MAX_LINE_BYTES`]: skipped without being parsed
    /// (a follower reads it through without holding it).
    LineTooLong,
}

/// A line (or CloudTrail record) that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub source: Source,
    /// 1-based line number in the input.
    pub line: u64,
    /// 1-based record number inside a CloudTrail log file.
    pub record: Option<u64>,
    pub field: Option<&'static str>,
    pub problem: Problem,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.source.name(), self.line)?;
        if let Some(r) = self.record {
            write!(f, " record {r}")?;
        }
        if let Some(field) = self.field {
            write!(f, ": field `{field}`")?;
        }
        match &self.problem {
            Problem::NotJson { column } => write!(f, ": not valid JSON at column {column}"),
            Problem::NotAnObject => write!(f, ": expected a JSON object"),
            Problem::Missing => write!(f, ": missing"),
            Problem::Duplicate => write!(f, ": appears twice"),
            Problem::Expected(what) => write!(f, ": expected {what}"),
            Problem::MyNumberInSubject => write!(
                f,
                ": expected a resident token, found 12 digits (a My Number?); the value is not shown"
            ),
            Problem::LineTooLong => write!(
                f,
                ": longer than {} bytes; skipped unread",
                crate::feed::MAX_LINE_BYTES
            ),
        }
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    /// Stable reason code (metrics label, runbook).
    pub fn reason(&self) -> &'static str {
        match self.problem {
            Problem::NotJson { .. } | Problem::NotAnObject => "access_log_not_json",
            Problem::MyNumberInSubject => "access_log_mynumber_in_subject",
            Problem::LineTooLong => "access_log_line_too_long",
            _ => "access_log_invalid_field",
        }
    }
}
