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
            _ => "access_log_invalid_field",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Untyped leaves

/// Any JSON value, with strings borrowed where possible and containers skipped.
#[derive(Debug)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    I64,
    F64,
    Bool,
    Null,
    Complex,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor(PhantomData))
    }
}

struct ScalarVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
    type Value = Scalar<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(if v >= 0 {
            Scalar::U64(v as u64)
        } else {
            Scalar::I64
        })
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Complex)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Complex)
    }
}

/// An object of known shape, or anything else (reported by the caller, without the value).
enum Obj<T> {
    Is(T),
    Not,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Obj::Is)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Obj::Not)
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An array of known elements, or anything else.
enum Arr<T> {
    Is(Vec<T>),
    Not,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Arr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Arr<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(Arr::Is(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Arr::Not)
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Field-level reading with errors that name the field.
struct Ctx {
    source: Source,
    line: u64,
    record: Option<u64>,
}

impl Ctx {
    fn err(&self, field: &'static str, problem: Problem) -> ParseError {
        ParseError {
            source: self.source,
            line: self.line,
            record: self.record,
            field: Some(field),
            problem,
        }
    }

    /// An optional string (null and absent are None; an empty string is None too).
    fn opt_str<'a>(
        &self,
        v: Option<Scalar<'a>>,
        field: &'static str,
    ) -> Result<Option<Cow<'a, str>>, ParseError> {
        match v {
            None | Some(Scalar::Null) => Ok(None),
            Some(Scalar::Str(s)) if s.is_empty() => Ok(None),
            Some(Scalar::Str(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(field, Problem::Expected("a string"))),
        }
    }

    fn req_str<'a>(
        &self,
        v: Option<Scalar<'a>>,
        field: &'static str,
    ) -> Result<Cow<'a, str>, ParseError> {
        self.opt_str(v, field)?
            .ok_or_else(|| self.err(field, Problem::Missing))
    }

    fn time(&self, v: Option<Scalar<'_>>, field: &'static str) -> Result<i64, ParseError> {
        let s = self.req_str(v, field)?;
        parse_rfc3339(&s).ok_or_else(|| {
            self.err(
                field,
                Problem::Expected("an RFC 3339 time with an offset (2026-11-02T09:12:33+09:00)"),
            )
        })
    }
}

fn json_error(source: Source, line: u64, record: Option<u64>, e: &serde_json::Error) -> ParseError {
    let field = if e.classify() == serde_json::error::Category::Data {
        // Only "duplicate field `x`" can reach here: every leaf accepts any value.
        let msg = e.to_string();
        let name = msg
            .strip_prefix("duplicate field `")
            .and_then(|m| m.split('`').next());
        name.and_then(|n| ALL_FIELDS.iter().copied().find(|f| *f == n))
    } else {
        None
    };
    ParseError {
        source,
        line,
        record,
        field,
        problem: match field {
            Some(_) => Problem::Duplicate,
            None => Problem::NotJson { column: e.column() },
        },
    }
}

const ALL_FIELDS: &[&str] = &[
    "time",
    "staff_id",
    "role",
    "terminal",
    "action",
    "subject",
    "district",
    "records",
    "case_ref",
    "outcome",
    "user",
    "username",
    "verb",
    "stage",
    "objectRef",
    "resource",
    "namespace",
    "name",
    "subresource",
    "apiGroup",
    "responseStatus",
    "code",
    "requestReceivedTimestamp",
    "stageTimestamp",
    "eventTime",
    "eventSource",
    "eventName",
    "errorCode",
    "userIdentity",
    "type",
    "arn",
    "accountId",
    "userName",
    "invokedBy",
    "principalId",
    "requestParameters",
    "bucketName",
    "keyId",
    "resources",
    "ARN",
    "responseElements",
    "ConsoleLogin",
    "Records",
];

// ---------------------------------------------------------------------------------------------
// The health access log

#[derive(Deserialize)]
struct RawHealth<'a> {
    #[serde(borrow)]
    time: Option<Scalar<'a>>,
    #[serde(borrow)]
    staff_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    role: Option<Scalar<'a>>,
    #[serde(borrow)]
    terminal: Option<Scalar<'a>>,
    #[serde(borrow)]
    action: Option<Scalar<'a>>,
    #[serde(borrow)]
    subject: Option<Scalar<'a>>,
    #[serde(borrow)]
    district: Option<Scalar<'a>>,
    #[serde(borrow)]
    records: Option<Scalar<'a>>,
    #[serde(borrow)]
    case_ref: Option<Scalar<'a>>,
    #[serde(borrow)]
    outcome: Option<Scalar<'a>>,
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

/// Parses one line of the health system's access log (`docs/access-log-format.md`).
/// `line_no` is 1-based and only used in errors. A blank line is `Ok(None)`.
pub fn parse_health_line(line: &[u8], line_no: u64) -> Result<Option<Event<'_>>, ParseError> {
    if is_blank(line) {
        return Ok(None);
    }
    let raw = match fast::health(line) {
        Some(raw) => raw,
        None => serde_health(line, line_no)?,
    };
    build_health(raw, line_no).map(Some)
}

fn serde_health(line: &[u8], line_no: u64) -> Result<RawHealth<'_>, ParseError> {
    let src = Source::Health;
    let raw: Obj<RawHealth<'_>> =
        serde_json::from_slice(line).map_err(|e| json_error(src, line_no, None, &e))?;
    match raw {
        Obj::Is(raw) => Ok(raw),
        Obj::Not => Err(ParseError {
            source: src,
            line: line_no,
            record: None,
            field: None,
            problem: Problem::NotAnObject,
        }),
    }
}

fn build_health(raw: RawHealth<'_>, line_no: u64) -> Result<Event<'_>, ParseError> {
    let src = Source::Health;
    let cx = Ctx {
        source: src,
        line: line_no,
        record: None,
    };
    let time = cx.time(raw.time, "time")?;
    let actor = cx.req_str(raw.staff_id, "staff_id")?;
    let action = match cx.req_str(raw.action, "action")?.as_ref() {
        "view" => Action::View,
        "search" => Action::Search,
        "update" => Action::Update,
        "export" => Action::Export,
        "print" => Action::Print,
        "login" => Action::Login,
        "login_failed" => Action::LoginFailed,
        _ => {
            return Err(cx.err(
                "action",
                Problem::Expected(
                    "one of view, search, update, export, print, login, login_failed",
                ),
            ))
        }
    };
    let outcome = match cx.opt_str(raw.outcome, "outcome")?.as_deref() {
        Some("success") => Outcome::Success,
        Some("denied") => Outcome::Denied,
        Some("error") => Outcome::Error,
        None => return Err(cx.err("outcome", Problem::Missing)),
        Some(_) => {
            return Err(cx.err(
                "outcome",
                Problem::Expected("one of success, denied, error"),
            ))
        }
    };
    let subject = cx.opt_str(raw.subject, "subject")?;
    if let Some(s) = &subject {
        check_token(s).map_err(|p| cx.err("subject", p))?;
    }
    let count = match raw.records {
        None | Some(Scalar::Null) => 1,
        Some(Scalar::U64(n)) if n <= u64::from(u32::MAX) => n as u32,
        Some(_) => {
            return Err(cx.err(
                "records",
                Problem::Expected("a whole number of records, 0 or more"),
            ))
        }
    };
    Ok(Event {
        source: src,
        time,
        actor,
        actor_kind: ActorKind::Staff,
        role: cx.opt_str(raw.role, "role")?,
        action,
        subject,
        district: cx.opt_str(raw.district, "district")?,
        count,
        case_ref: cx.opt_str(raw.case_ref, "case_ref")?,
        terminal: cx.opt_str(raw.terminal, "terminal")?,
        outcome,
        resource: None,
    })
}

/// The fast path for the health log: a flat JSON object of strings without escapes, plain
/// non-negative integers, booleans and nulls, each key at most once. Anything else (an escape,
/// a nested value, a negative or fractional number, a syntax error) returns None and the line
/// goes through serde_json, which decides and reports.
mod fast {
    use std::borrow::Cow;

    use super::{RawHealth, Scalar};

    struct Cur<'a> {
        s: &'a str,
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Cur<'a> {
        #[inline]
        fn ws(&mut self) {
            while let Some(c) = self.b.get(self.i) {
                if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                    self.i += 1;
                } else {
                    break;
                }
            }
        }

        #[inline]
        fn eat(&mut self, c: u8) -> Option<()> {
            self.ws();
            (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
        }

        /// A string without escapes or control characters; the cursor is on the opening quote.
        #[inline]
        fn string(&mut self) -> Option<&'a str> {
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            let start = self.i + 1;
            let mut j = start;
            // Eight bytes at a time: find the first quote, backslash or control character.
            const ONES: u64 = 0x0101_0101_0101_0101;
            const HIGH: u64 = 0x8080_8080_8080_8080;
            while let Some(chunk) = self.b.get(j..j + 8) {
                let w = u64::from_le_bytes(chunk.try_into().unwrap());
                let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
                let m = zero(w ^ (ONES * u64::from(b'"')))
                    | zero(w ^ (ONES * u64::from(b'\\')))
                    | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
                if m == 0 {
                    j += 8;
                } else {
                    j += (m.trailing_zeros() / 8) as usize;
                    break;
                }
            }
            loop {
                let c = *self.b.get(j)?;
                if c == b'"' {
                    break;
                }
                if c == b'\\' || c < 0x20 {
                    return None;
                }
                j += 1;
            }
            self.i = j + 1;
            Some(&self.s[start..j])
        }

        #[inline]
        fn value(&mut self) -> Option<Scalar<'a>> {
            self.ws();
            match *self.b.get(self.i)? {
                b'"' => self.string().map(|s| Scalar::Str(Cow::Borrowed(s))),
                b'0'..=b'9' => {
                    let start = self.i;
                    let mut v: u64 = 0;
                    while let Some(c @ b'0'..=b'9') = self.b.get(self.i).copied() {
                        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                        self.i += 1;
                    }
                    let len = self.i - start;
                    if (len > 1 && self.b[start] == b'0')
                        || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'))
                    {
                        return None;
                    }
                    Some(Scalar::U64(v))
                }
                b't' => self.lit(b"true", Scalar::Bool),
                b'f' => self.lit(b"false", Scalar::Bool),
                b'n' => self.lit(b"null", Scalar::Null),
                _ => None,
            }
        }

        fn lit(&mut self, word: &[u8], v: Scalar<'a>) -> Option<Scalar<'a>> {
            self.b[self.i..].starts_with(word).then(|| {
                self.i += word.len();
                v
            })
        }
    }

    pub(super) fn health(line: &[u8]) -> Option<RawHealth<'_>> {
        let s = std::str::from_utf8(line).ok()?;
        let mut c = Cur { s, b: line, i: 0 };
        let mut raw = RawHealth {
            time: None,
            staff_id: None,
            role: None,
            terminal: None,
            action: None,
            subject: None,
            district: None,
            records: None,
            case_ref: None,
            outcome: None,
        };
        let mut seen = 0u16;
        c.eat(b'{')?;
        c.ws();
        if c.b.get(c.i) == Some(&b'}') {
            c.i += 1;
        } else {
            loop {
                c.ws();
                let key = c.string()?;
                c.eat(b':')?;
                let v = c.value()?;
                let (bit, slot) = match key {
                    "time" => (0, &mut raw.time),
                    "staff_id" => (1, &mut raw.staff_id),
                    "role" => (2, &mut raw.role),
                    "terminal" => (3, &mut raw.terminal),
                    "action" => (4, &mut raw.action),
                    "subject" => (5, &mut raw.subject),
                    "district" => (6, &mut raw.district),
                    "records" => (7, &mut raw.records),
                    "case_ref" => (8, &mut raw.case_ref),
                    "outcome" => (9, &mut raw.outcome),
                    _ => (15, &mut None),
                };
                if bit < 15 {
                    if seen & (1 << bit) != 0 {
                        return None;
                    }
                    seen |= 1 << bit;
                    // serde reads a null field as absent.
                    *slot = match v {
                        Scalar::Null => None,
                        v => Some(v),
                    };
                }
                c.ws();
                match c.b.get(c.i)? {
                    b',' => c.i += 1,
                    b'}' => {
                        c.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        c.ws();
        (c.i == line.len()).then_some(raw)
    }
}

const TOKEN_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.';
        c += 1;
    }
    t
};

/// A resident token: 4–128 characters of `A-Z a-z 0-9 _ - .`, and not 12 digits.
fn check_token(s: &str) -> Result<(), Problem> {
    let b = s.as_bytes();
    if b.len() == 12 && b.iter().all(u8::is_ascii_digit) {
        return Err(Problem::MyNumberInSubject);
    }
    let ok = (4..=128).contains(&b.len()) && b.iter().all(|&c| TOKEN_BYTE[c as usize]);
    if ok {
        Ok(())
    } else {
        Err(Problem::Expected(
            "a resident token (4 to 128 characters of A-Z, a-z, 0-9, _, -, .)",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Principals

/// How Kubernetes user names and AWS principals are sorted into [`ActorKind`]s. Patterns are
/// exact names, or prefixes when they end in `*`.
#[derive(Clone, Debug)]
pub struct Principals {
    /// Kubernetes users that are workloads. Default `system:*` (service accounts, nodes,
    /// control-plane components).
    pub k8s_service: Vec<String>,
    /// Kubernetes users that are the provider's own components. Default `eks:*`, `aws:*`.
    pub k8s_provider: Vec<String>,
    /// IAM roles (assumed-role name) or IAM users that are the city's workloads. Default
    /// `kenko-app`, `kenko-agent`, `kenko-controller`, `AWSServiceRoleFor*` (service-linked
    /// roles) and `AWSBackupDefaultServiceRole`.
    pub aws_service_roles: Vec<String>,
    /// IAM roles through which the provider or the state reaches in. Checked before
    /// `aws_service_roles`. Default `OrganizationAccountAccessRole` (the organisation's
    /// management account: the Government Cloud administration) and
    /// `AWSServiceRoleForSupport`.
    pub aws_provider_roles: Vec<String>,
    /// AWS services (`invokedBy` of an `AWSService` identity) that act for the city. Any other
    /// AWS service principal is the provider. Default: backup, S3 (replication), CloudTrail,
    /// CloudWatch Logs, EC2, EKS, RDS, Elastic Load Balancing.
    pub aws_services: Vec<String>,
    /// The city's AWS accounts. A principal of any other account is the provider. Empty (the
    /// default) turns the check off.
    pub home_accounts: Vec<String>,
}

impl Default for Principals {
    fn default() -> Self {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
        Principals {
            k8s_service: v(&["system:*"]),
            k8s_provider: v(&["eks:*", "aws:*"]),
            aws_service_roles: v(&[
                "kenko-app",
                "kenko-agent",
                "kenko-controller",
                "AWSServiceRoleFor*",
                "AWSBackupDefaultServiceRole",
            ]),
            aws_provider_roles: v(&["OrganizationAccountAccessRole", "AWSServiceRoleForSupport"]),
            aws_services: v(&[
                "backup.amazonaws.com",
                "s3.amazonaws.com",
                "cloudtrail.amazonaws.com",
                "logs.amazonaws.com",
                "ec2.amazonaws.com",
                "eks.amazonaws.com",
                "rds.amazonaws.com",
                "elasticloadbalancing.amazonaws.com",
            ]),
            home_accounts: Vec::new(),
        }
    }
}

/// Whether `name` matches one of the patterns (exact, or prefix when the pattern ends in `*`).
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

// ---------------------------------------------------------------------------------------------
// Kubernetes audit

#[derive(Deserialize)]
struct RawK8s<'a> {
    #[serde(borrow)]
    stage: Option<Scalar<'a>>,
    #[serde(borrow)]
    verb: Option<Scalar<'a>>,
    #[serde(borrow)]
    user: Option<Obj<RawK8sUser<'a>>>,
    #[serde(borrow, rename = "objectRef")]
    object_ref: Option<Obj<RawK8sObject<'a>>>,
    #[serde(borrow, rename = "responseStatus")]
    response_status: Option<Obj<RawK8sStatus<'a>>>,
    #[serde(borrow, rename = "requestReceivedTimestamp")]
    received: Option<Scalar<'a>>,
    #[serde(borrow, rename = "stageTimestamp")]
    stage_time: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
struct RawK8sUser<'a> {
    #[serde(borrow)]
    username: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
struct RawK8sObject<'a> {
    #[serde(borrow)]
    resource: Option<Scalar<'a>>,
    #[serde(borrow)]
    namespace: Option<Scalar<'a>>,
    #[serde(borrow)]
    name: Option<Scalar<'a>>,
    #[serde(borrow)]
    subresource: Option<Scalar<'a>>,
    #[serde(borrow, rename = "apiGroup")]
    api_group: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
struct RawK8sStatus<'a> {
    #[serde(borrow)]
    code: Option<Scalar<'a>>,
}

/// Parses one line of a Kubernetes audit log (an `audit.k8s.io/v1` `Event`). Only the
/// `ResponseComplete` and `Panic` stages make events (the other stages repeat the same request):
/// `Ok(None)` for the others and for blank lines.
pub fn parse_k8s_line<'a>(
    line: &'a [u8],
    line_no: u64,
    principals: &Principals,
) -> Result<Option<Event<'a>>, ParseError> {
    if is_blank(line) {
        return Ok(None);
    }
    let src = Source::K8sAudit;
    let raw: Obj<RawK8s<'a>> =
        serde_json::from_slice(line).map_err(|e| json_error(src, line_no, None, &e))?;
    let Obj::Is(raw) = raw else {
        return Err(ParseError {
            source: src,
            line: line_no,
            record: None,
            field: None,
            problem: Problem::NotAnObject,
        });
    };
    let cx = Ctx {
        source: src,
        line: line_no,
        record: None,
    };
    match cx.opt_str(raw.stage, "stage")?.as_deref() {
        None | Some("ResponseComplete") | Some("Panic") => {}
        Some(_) => return Ok(None),
    }
    let time = match raw.received {
        Some(Scalar::Str(_)) => cx.time(raw.received, "requestReceivedTimestamp")?,
        _ => cx.time(raw.stage_time, "stageTimestamp")?,
    };
    let user = match raw.user {
        Some(Obj::Is(u)) => u,
        Some(Obj::Not) => return Err(cx.err("user", Problem::Expected("an object"))),
        None => return Err(cx.err("user", Problem::Missing)),
    };
    let actor = cx.req_str(user.username, "username")?;
    let verb = cx.req_str(raw.verb, "verb")?;
    let obj = match raw.object_ref {
        Some(Obj::Is(o)) => Some(o),
        Some(Obj::Not) => return Err(cx.err("objectRef", Problem::Expected("an object"))),
        None => None,
    };
    let (mut resource_kind, mut ns, mut name, mut sub, mut group) = (None, None, None, None, None);
    if let Some(o) = obj {
        resource_kind = cx.opt_str(o.resource, "resource")?;
        ns = cx.opt_str(o.namespace, "namespace")?;
        name = cx.opt_str(o.name, "name")?;
        sub = cx.opt_str(o.subresource, "subresource")?;
        group = cx.opt_str(o.api_group, "apiGroup")?;
    }
    let outcome = match raw.response_status {
        Some(Obj::Is(s)) => match s.code {
            None | Some(Scalar::Null) => Outcome::Success,
            Some(Scalar::U64(c)) if c < 400 => Outcome::Success,
            Some(Scalar::U64(401 | 403)) => Outcome::Denied,
            Some(Scalar::U64(_)) => Outcome::Error,
            Some(_) => {
                return Err(cx.err("code", Problem::Expected("an HTTP status code")));
            }
        },
        Some(Obj::Not) => {
            return Err(cx.err("responseStatus", Problem::Expected("an object")));
        }
        None => Outcome::Success,
    };
    let rk = resource_kind.as_deref().unwrap_or("");
    let verb = verb.as_ref();
    let ns_name = || {
        Some(Cow::Owned(format!(
            "{}/{}",
            ns.as_deref().unwrap_or(""),
            name.as_deref().unwrap_or("")
        )))
    };
    let (action, resource) =
        if rk == "pods" && matches!(sub.as_deref(), Some("exec" | "attach" | "portforward")) {
            (Action::PodExec, ns_name())
        } else if group.as_deref() == Some("rbac.authorization.k8s.io")
            && matches!(
                verb,
                "create" | "update" | "patch" | "delete" | "deletecollection" | "bind" | "escalate"
            )
        {
            (
                Action::RbacChange,
                Some(Cow::Owned(format!(
                    "{rk}/{}",
                    name.as_deref().unwrap_or("")
                ))),
            )
        } else if rk == "secrets" && sub.is_none() && matches!(verb, "get" | "list" | "watch") {
            (Action::SecretRead, ns_name())
        } else {
            (Action::Other, None)
        };
    let actor_kind = if matches_any(&principals.k8s_service, &actor) {
        ActorKind::Service
    } else if matches_any(&principals.k8s_provider, &actor) {
        ActorKind::Provider
    } else {
        ActorKind::CloudOperator
    };
    Ok(Some(Event {
        source: src,
        time,
        actor,
        actor_kind,
        role: None,
        action,
        subject: None,
        district: None,
        count: 1,
        case_ref: None,
        terminal: None,
        outcome,
        resource,
    }))
}

// ---------------------------------------------------------------------------------------------
// CloudTrail

#[derive(Deserialize)]
struct RawCt<'a> {
    #[serde(borrow, rename = "eventTime")]
    event_time: Option<Scalar<'a>>,
    #[serde(borrow, rename = "eventSource")]
    event_source: Option<Scalar<'a>>,
    #[serde(borrow, rename = "eventName")]
    event_name: Option<Scalar<'a>>,
    #[serde(borrow, rename = "errorCode")]
    error_code: Option<Scalar<'a>>,
    #[serde(borrow, rename = "userIdentity")]
    user_identity: Option<Obj<RawCtIdentity<'a>>>,
    #[serde(borrow, rename = "requestParameters")]
    request_parameters: Option<Obj<RawCtRequest<'a>>>,
    #[serde(borrow, rename = "responseElements")]
    response_elements: Option<Obj<RawCtResponse<'a>>>,
    #[serde(borrow)]
    resources: Option<Arr<Obj<RawCtResource<'a>>>>,
}

#[derive(Deserialize)]
struct RawCtIdentity<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Scalar<'a>>,
    #[serde(borrow)]
    arn: Option<Scalar<'a>>,
    #[serde(borrow, rename = "accountId")]
    account_id: Option<Scalar<'a>>,
    #[serde(borrow, rename = "userName")]
    user_name: Option<Scalar<'a>>,
    #[serde(borrow, rename = "invokedBy")]
    invoked_by: Option<Scalar<'a>>,
    #[serde(borrow, rename = "principalId")]
    principal_id: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
struct RawCtRequest<'a> {
    #[serde(borrow, rename = "bucketName")]
    bucket_name: Option<Scalar<'a>>,
    #[serde(borrow, rename = "keyId")]
    key_id: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
struct RawCtResponse<'a> {
    #[serde(borrow, rename = "ConsoleLogin")]
    console_login: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
struct RawCtResource<'a> {
    #[serde(borrow, rename = "ARN")]
    arn: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
struct RawCtFile<'a> {
    #[serde(borrow, rename = "Records")]
    records: Option<Arr<Obj<RawCt<'a>>>>,
}

/// Parses one CloudTrail record on one line (the form the agent writes after splitting a log
/// file, and the generator's form). A blank line is `Ok(None)`.
pub fn parse_cloudtrail_line<'a>(
    line: &'a [u8],
    line_no: u64,
    principals: &Principals,
) -> Result<Option<Event<'a>>, ParseError> {
    if is_blank(line) {
        return Ok(None);
    }
    let src = Source::CloudTrail;
    let raw: Obj<RawCt<'a>> =
        serde_json::from_slice(line).map_err(|e| json_error(src, line_no, None, &e))?;
    let Obj::Is(raw) = raw else {
        return Err(ParseError {
            source: src,
            line: line_no,
            record: None,
            field: None,
            problem: Problem::NotAnObject,
        });
    };
    let cx = Ctx {
        source: src,
        line: line_no,
        record: None,
    };
    cloudtrail_event(raw, &cx, principals).map(Some)
}

/// The records of one CloudTrail log file: a bad record is reported and skipped, so the
/// file's other records are still judged (one malformed entry must not hide the rest).
#[derive(Debug, Default)]
pub struct CloudTrailRecords<'a> {
    pub events: Vec<Event<'a>>,
    /// One error per record that could not be read, naming the record (1-based).
    pub errors: Vec<ParseError>,
}

/// Parses a whole CloudTrail log file (`{"Records":[...]}`, already un-gzipped). A file that is
/// not JSON or has no `Records` array is an error; a bad record inside one is listed in
/// [`CloudTrailRecords::errors`] and the others are kept.
pub fn parse_cloudtrail_file<'a>(
    text: &'a [u8],
    principals: &Principals,
) -> Result<CloudTrailRecords<'a>, ParseError> {
    let src = Source::CloudTrail;
    let file: Obj<RawCtFile<'a>> =
        serde_json::from_slice(text).map_err(|e| json_error(src, e.line() as u64, None, &e))?;
    let not_obj = ParseError {
        source: src,
        line: 1,
        record: None,
        field: Some("Records"),
        problem: Problem::Expected("an object with a Records array"),
    };
    let Obj::Is(file) = file else {
        return Err(not_obj);
    };
    let Some(Arr::Is(records)) = file.records else {
        return Err(not_obj);
    };
    let mut out = CloudTrailRecords {
        events: Vec::with_capacity(records.len()),
        errors: Vec::new(),
    };
    for (i, r) in records.into_iter().enumerate() {
        let cx = Ctx {
            source: src,
            line: 1,
            record: Some(i as u64 + 1),
        };
        let Obj::Is(r) = r else {
            out.errors.push(ParseError {
                source: src,
                line: 1,
                record: cx.record,
                field: None,
                problem: Problem::NotAnObject,
            });
            continue;
        };
        match cloudtrail_event(r, &cx, principals) {
            Ok(ev) => out.events.push(ev),
            Err(e) => out.errors.push(e),
        }
    }
    Ok(out)
}

const IAM_CHANGE_PREFIXES: &[&str] = &[
    "Create",
    "Put",
    "Attach",
    "Detach",
    "Delete",
    "Update",
    "Add",
    "Remove",
    "Set",
    "Upload",
    "Enable",
    "Deactivate",
    "ChangePassword",
    "ResetServiceSpecificCredential",
];

fn cloudtrail_event<'a>(
    raw: RawCt<'a>,
    cx: &Ctx,
    principals: &Principals,
) -> Result<Event<'a>, ParseError> {
    let time = cx.time(raw.event_time, "eventTime")?;
    let source = cx.req_str(raw.event_source, "eventSource")?;
    let name = cx.req_str(raw.event_name, "eventName")?;
    let error = cx.opt_str(raw.error_code, "errorCode")?;
    let id = match raw.user_identity {
        Some(Obj::Is(u)) => u,
        Some(Obj::Not) => return Err(cx.err("userIdentity", Problem::Expected("an object"))),
        None => return Err(cx.err("userIdentity", Problem::Missing)),
    };
    let (actor, actor_kind) = principal(id, cx, principals)?;
    let (mut bucket, mut key_id) = (None, None);
    match raw.request_parameters {
        Some(Obj::Is(r)) => {
            bucket = cx.opt_str(r.bucket_name, "bucketName")?;
            key_id = cx.opt_str(r.key_id, "keyId")?;
        }
        Some(Obj::Not) | None => {}
    }
    let console = match raw.response_elements {
        Some(Obj::Is(r)) => cx.opt_str(r.console_login, "ConsoleLogin")?,
        _ => None,
    };
    let first_resource = match raw.resources {
        Some(Arr::Is(v)) => match v.into_iter().next() {
            Some(Obj::Is(r)) => cx.opt_str(r.arn, "ARN")?,
            _ => None,
        },
        _ => None,
    };
    let mut outcome = match error.as_deref() {
        None => Outcome::Success,
        Some(c) if c.contains("AccessDenied") || c.contains("Unauthorized") => Outcome::Denied,
        Some(_) => Outcome::Error,
    };
    let n = name.as_ref();
    let (action, resource) = match source.as_ref() {
        "s3.amazonaws.com" => match n {
            "GetObject"
            | "SelectObjectContent"
            | "GetObjectTorrent"
            | "CopyObject"
            | "RestoreObject" => (Action::ObjectRead, bucket),
            "PutObject" | "DeleteObject" | "DeleteObjects" | "CompleteMultipartUpload" => {
                (Action::ObjectWrite, bucket)
            }
            _ => (Action::Other, bucket),
        },
        "kms.amazonaws.com" if matches!(n, "Decrypt" | "ReEncrypt") => {
            (Action::KmsDecrypt, first_resource.or(key_id))
        }
        "iam.amazonaws.com" if IAM_CHANGE_PREFIXES.iter().any(|p| n.starts_with(p)) => {
            (Action::IamChange, Some(name.clone()))
        }
        "signin.amazonaws.com" if n == "ConsoleLogin" => {
            if console.as_deref() == Some("Success") && error.is_none() {
                (Action::Login, None)
            } else {
                outcome = Outcome::Denied;
                (Action::LoginFailed, None)
            }
        }
        _ => (Action::Other, None),
    };
    Ok(Event {
        source: Source::CloudTrail,
        time,
        actor,
        actor_kind,
        role: None,
        action,
        subject: None,
        district: None,
        count: 1,
        case_ref: None,
        terminal: None,
        outcome,
        resource,
    })
}

/// The actor and its kind from a CloudTrail `userIdentity`.
fn principal<'a>(
    id: RawCtIdentity<'a>,
    cx: &Ctx,
    p: &Principals,
) -> Result<(Cow<'a, str>, ActorKind), ParseError> {
    let kind = cx.req_str(id.kind, "type")?;
    let arn = cx.opt_str(id.arn, "arn")?;
    let account = cx.opt_str(id.account_id, "accountId")?;
    let user = cx.opt_str(id.user_name, "userName")?;
    let invoked = cx.opt_str(id.invoked_by, "invokedBy")?;
    let principal_id = cx.opt_str(id.principal_id, "principalId")?;
    let foreign = |acct: &Option<Cow<'_, str>>| {
        !p.home_accounts.is_empty()
            && acct
                .as_deref()
                .is_some_and(|a| !p.home_accounts.iter().any(|h| h == a))
    };
    let fallback = || {
        principal_id
            .clone()
            .or_else(|| arn.clone())
            .unwrap_or(Cow::Borrowed("unknown-principal"))
    };
    let (actor, mut k) = match kind.as_ref() {
        "AWSService" => {
            let who = invoked.unwrap_or(Cow::Borrowed("unknown-service"));
            let k = if matches_any(&p.aws_services, &who) {
                ActorKind::Service
            } else {
                ActorKind::Provider
            };
            return Ok((who, k));
        }
        "AWSAccount" => {
            let who = account
                .as_deref()
                .map(|a| Cow::Owned(format!("account:{a}")))
                .unwrap_or_else(fallback);
            return Ok((who, ActorKind::Provider));
        }
        "AssumedRole" => {
            // arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
            let tail = arn
                .as_deref()
                .and_then(|a| a.split_once(":assumed-role/"))
                .map(|(_, t)| t.to_string());
            match tail.as_deref().and_then(|t| t.split_once('/')) {
                Some((role, session)) => {
                    if matches_any(&p.aws_provider_roles, role) {
                        (Cow::Owned(format!("{role}/{session}")), ActorKind::Provider)
                    } else if matches_any(&p.aws_service_roles, role) {
                        (Cow::Owned(role.to_string()), ActorKind::Service)
                    } else {
                        (Cow::Owned(session.to_string()), ActorKind::CloudOperator)
                    }
                }
                None => (fallback(), ActorKind::CloudOperator),
            }
        }
        "IAMUser" => {
            let who = user.unwrap_or_else(fallback);
            let k = if matches_any(&p.aws_service_roles, &who) {
                ActorKind::Service
            } else {
                ActorKind::CloudOperator
            };
            (who, k)
        }
        "Root" => (Cow::Borrowed("root"), ActorKind::CloudOperator),
        "FederatedUser" => {
            let who = arn
                .as_deref()
                .and_then(|a| a.split_once(":federated-user/"))
                .map(|(_, n)| Cow::Owned(n.to_string()))
                .unwrap_or_else(fallback);
            (who, ActorKind::CloudOperator)
        }
        _ => (user.unwrap_or_else(fallback), ActorKind::CloudOperator),
    };
    if foreign(&account) {
        k = ActorKind::Provider;
    }
    Ok((actor, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"time":"2026-11-02T09:12:33.120+09:00","staff_id":"S0123","role":"nurse","terminal":"T0456","action":"view","subject":"r3f9a0c1d2e4b5a6","district":"D07","records":1,"case_ref":"C2026-000123","outcome":"success","extra":{"a":[1,2,{"b":null}]}}"#;

    #[test]
    fn health_line_borrows() {
        let ev = parse_health_line(LINE.as_bytes(), 1).unwrap().unwrap();
        assert_eq!(ev.time, parse_rfc3339("2026-11-02T00:12:33Z").unwrap());
        assert!(matches!(ev.actor, Cow::Borrowed("S0123")));
        assert!(matches!(ev.subject, Some(Cow::Borrowed(_))));
        assert_eq!(ev.action, Action::View);
        assert_eq!(ev.outcome, Outcome::Success);
        assert_eq!(ev.district.as_deref(), Some("D07"));
        assert_eq!(ev.count, 1);
        assert_eq!(ev.actor_kind, ActorKind::Staff);
        // Debug never shows the resident token or the case.
        let dbg = format!("{ev:?}");
        assert!(!dbg.contains("r3f9a0c1d2e4b5a6") && !dbg.contains("C2026"));
        // Escapes are decoded (owned).
        let esc = LINE.replace("S0123", "S\\u00301");
        let ev = parse_health_line(esc.as_bytes(), 1).unwrap().unwrap();
        assert_eq!(ev.actor, "S01");
        assert!(parse_health_line(b"  \r", 7).unwrap().is_none());
    }

    #[test]
    fn fast_path_agrees_with_serde() {
        let base = LINE.replace(",\"extra\":{\"a\":[1,2,{\"b\":null}]}", "");
        let variants = [
            LINE.to_string(),
            base.clone(),
            base.replace(":", " : ")
                .replace(",", " ,\t")
                .replace('{', "{ ")
                .replace('}', "\r\n}"),
            base.replace(
                "\"records\":1",
                "\"records\":0,\"flag\":true,\"x\":null,\"y\":false",
            ),
            base.replace("\"case_ref\":\"C2026-000123\"", "\"case_ref\":null"),
            base.replace("\"role\":\"nurse\"", "\"role\":\"看護師\""),
            base.replace("\"records\":1", "\"records\":1.0"),
            base.replace("\"records\":1", "\"records\":01"),
            base.replace("\"records\":1", "\"records\":-1"),
            base.replace("S0123", "S\\u0030"),
            base.replace(
                "\"outcome\":\"success\"",
                "\"outcome\":\"success\",\"outcome\":\"denied\"",
            ),
            format!("{base} x"),
            format!("{base}\n"),
            base.replace("\"time\"", "\"time\\u0000\""),
            "{}".to_string(),
            " { } ".to_string(),
        ];
        let mut fast_taken = 0;
        for v in &variants {
            let b = v.as_bytes();
            let slow = serde_health(b, 3).and_then(|r| build_health(r, 3));
            if let Some(raw) = fast::health(b) {
                fast_taken += 1;
                assert_eq!(build_health(raw, 3), slow, "{v}");
            }
            assert_eq!(parse_health_line(b, 3).map(Option::unwrap), slow, "{v}");
        }
        assert!(fast_taken >= 7, "{fast_taken}");
        // A backslash or control character at any offset of a long string leaves the fast
        // path; a plain one of any length stays on it.
        for n in 0..40 {
            let plain = "x".repeat(n);
            let line = base.replace("\"nurse\"", &format!("\"{plain}\""));
            let raw = fast::health(line.as_bytes()).expect("plain string");
            assert!(matches!(raw.role, Some(Scalar::Str(ref r)) if r.len() == n) || n == 0);
            for bad in ["\\n", "\u{1}", "\t"] {
                for at in 0..=n {
                    let mut v = plain.clone();
                    v.insert_str(at, bad);
                    let line = base.replace("\"nurse\"", &format!("\"{v}\""));
                    assert!(fast::health(line.as_bytes()).is_none(), "{line}");
                }
            }
        }
        // Invalid UTF-8 goes to serde, which names the column.
        let mut bad = LINE.as_bytes().to_vec();
        bad[60] = 0xff;
        assert!(fast::health(&bad).is_none());
        assert!(matches!(
            parse_health_line(&bad, 1).unwrap_err().problem,
            Problem::NotJson { .. }
        ));
    }

    fn health_err(line: &str) -> ParseError {
        parse_health_line(line.as_bytes(), 42).unwrap_err()
    }

    #[test]
    fn health_errors_name_line_and_field_never_the_value() {
        let cases: &[(String, Option<&str>, &str)] = &[
            (
                LINE.replace("\"view\"", "\"peek\""),
                Some("action"),
                "one of view",
            ),
            (
                LINE.replace("2026-11-02T09:12:33.120+09:00", "02/11/2026"),
                Some("time"),
                "RFC 3339",
            ),
            (
                LINE.replace("r3f9a0c1d2e4b5a6", "123456789012"),
                Some("subject"),
                "My Number",
            ),
            (
                LINE.replace("r3f9a0c1d2e4b5a6", "r 3/9"),
                Some("subject"),
                "resident token",
            ),
            (
                LINE.replace("\"records\":1", "\"records\":-3"),
                Some("records"),
                "whole number",
            ),
            (
                LINE.replace("\"records\":1", "\"records\":\"many\""),
                Some("records"),
                "whole number",
            ),
            (
                LINE.replace("\"staff_id\":\"S0123\",", ""),
                Some("staff_id"),
                "missing",
            ),
            (
                LINE.replace("\"S0123\"", "12345"),
                Some("staff_id"),
                "a string",
            ),
            (
                LINE.replace("\"success\"", "\"maybe\""),
                Some("outcome"),
                "one of success",
            ),
            (
                LINE.replace(
                    "\"role\":\"nurse\"",
                    "\"role\":\"nurse\",\"action\":\"view\"",
                ),
                Some("action"),
                "twice",
            ),
            (LINE[..60].to_string(), None, "not valid JSON at column"),
            ("[1,2]".to_string(), None, "JSON object"),
        ];
        for (line, field, needle) in cases {
            let e = health_err(line);
            assert_eq!(e.line, 42);
            assert_eq!(e.field, *field, "{line}");
            let msg = e.to_string();
            assert!(msg.starts_with("health access log line 42"), "{msg}");
            assert!(msg.contains(needle), "{msg} lacks {needle}");
            for value in [
                "peek",
                "02/11/2026",
                "123456789012",
                "r 3/9",
                "many",
                "maybe",
                "12345",
            ] {
                assert!(!msg.contains(value), "{msg} shows a value");
            }
        }
        assert_eq!(
            health_err(&LINE.replace("r3f9a0c1d2e4b5a6", "123456789012")).reason(),
            "access_log_mynumber_in_subject"
        );
    }

    const K8S: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/kenko/secrets/db","verb":"get","user":{"username":"OP001","groups":["kenko:operators","system:authenticated"]},"sourceIPs":["10.0.0.5"],"objectRef":{"resource":"secrets","namespace":"kenko","name":"db","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-02T01:00:00.000000Z","stageTimestamp":"2026-11-02T01:00:00.010000Z"}"#;

    #[test]
    fn k8s_events() {
        let p = Principals::default();
        let ev = parse_k8s_line(K8S.as_bytes(), 1, &p).unwrap().unwrap();
        assert_eq!(ev.action, Action::SecretRead);
        assert_eq!(ev.actor_kind, ActorKind::CloudOperator);
        assert_eq!(ev.resource.as_deref(), Some("kenko/db"));
        let sa = K8S.replace("OP001", "system:serviceaccount:kenko:agent");
        let ev = parse_k8s_line(sa.as_bytes(), 1, &p).unwrap().unwrap();
        assert_eq!(ev.actor_kind, ActorKind::Service);
        let exec = K8S
            .replace(
                "\"resource\":\"secrets\"",
                "\"resource\":\"pods\",\"subresource\":\"exec\"",
            )
            .replace("\"name\":\"db\"", "\"name\":\"postgres-0\"")
            .replace("\"get\"", "\"create\"");
        let ev = parse_k8s_line(exec.as_bytes(), 1, &p).unwrap().unwrap();
        assert_eq!(ev.action, Action::PodExec);
        assert_eq!(ev.resource.as_deref(), Some("kenko/postgres-0"));
        let rbac = K8S
            .replace(
                "\"resource\":\"secrets\"",
                "\"resource\":\"clusterrolebindings\",\"apiGroup\":\"rbac.authorization.k8s.io\"",
            )
            .replace("\"get\"", "\"create\"");
        let ev = parse_k8s_line(rbac.as_bytes(), 1, &p).unwrap().unwrap();
        assert_eq!(ev.action, Action::RbacChange);
        let denied = K8S.replace("\"code\":200", "\"code\":403");
        let ev = parse_k8s_line(denied.as_bytes(), 1, &p).unwrap().unwrap();
        assert_eq!(ev.outcome, Outcome::Denied);
        let started = K8S.replace("ResponseComplete", "RequestReceived");
        assert!(parse_k8s_line(started.as_bytes(), 1, &p).unwrap().is_none());
        let e = parse_k8s_line(
            K8S.replace("\"user\":{", "\"user\":{\"x\":1,")
                .replace("\"username\":\"OP001\",", "")
                .as_bytes(),
            9,
            &p,
        )
        .unwrap_err();
        assert_eq!((e.line, e.field), (9, Some("username")));
        let e = parse_k8s_line(K8S.replace("\"user\":{\"username\":\"OP001\",\"groups\":[\"kenko:operators\",\"system:authenticated\"]}", "\"user\":\"OP001\"").as_bytes(), 9, &p).unwrap_err();
        assert_eq!(e.field, Some("user"));
        assert!(!e.to_string().contains("OP001"));
    }

    const CT: &str = r#"{"eventVersion":"1.09","userIdentity":{"type":"AssumedRole","principalId":"AROA:OP001","arn":"arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Operator_0a1b/OP001","accountId":"111122223333"},"eventTime":"2026-11-02T01:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"ap-northeast-1","requestParameters":{"bucketName":"kenko-records","key":"x/y"},"responseElements":null,"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::kenko-records/x/y"}],"eventType":"AwsApiCall","readOnly":true}"#;

    #[test]
    fn cloudtrail_events() {
        let p = Principals::default();
        let ev = parse_cloudtrail_line(CT.as_bytes(), 1, &p)
            .unwrap()
            .unwrap();
        assert_eq!(ev.actor, "OP001");
        assert_eq!(ev.actor_kind, ActorKind::CloudOperator);
        assert_eq!(ev.action, Action::ObjectRead);
        assert_eq!(ev.resource.as_deref(), Some("kenko-records"));
        let app = CT.replace("AWSReservedSSO_Operator_0a1b/OP001", "kenko-app/botocore-1");
        let ev = parse_cloudtrail_line(app.as_bytes(), 1, &p)
            .unwrap()
            .unwrap();
        assert_eq!(
            (ev.actor.as_ref(), ev.actor_kind),
            ("kenko-app", ActorKind::Service)
        );
        let org = CT.replace(
            "AWSReservedSSO_Operator_0a1b/OP001",
            "OrganizationAccountAccessRole/admin",
        );
        let ev = parse_cloudtrail_line(org.as_bytes(), 1, &p)
            .unwrap()
            .unwrap();
        assert_eq!(ev.actor_kind, ActorKind::Provider);
        let acct = r#"{"userIdentity":{"type":"AWSAccount","principalId":"X","accountId":"999988887777"},"eventTime":"2026-11-02T01:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","requestParameters":{"bucketName":"kenko-records"}}"#;
        let ev = parse_cloudtrail_line(acct.as_bytes(), 1, &p)
            .unwrap()
            .unwrap();
        assert_eq!(
            (ev.actor.as_ref(), ev.actor_kind),
            ("account:999988887777", ActorKind::Provider)
        );
        let svc = r#"{"userIdentity":{"type":"AWSService","invokedBy":"backup.amazonaws.com"},"eventTime":"2026-11-02T01:00:00Z","eventSource":"kms.amazonaws.com","eventName":"Decrypt","resources":[{"ARN":"arn:aws:kms:ap-northeast-1:111122223333:key/k1"}]}"#;
        let ev = parse_cloudtrail_line(svc.as_bytes(), 1, &p)
            .unwrap()
            .unwrap();
        assert_eq!(
            (ev.actor_kind, ev.action),
            (ActorKind::Service, Action::KmsDecrypt)
        );
        let support = svc.replace("backup.amazonaws.com", "support.amazonaws.com");
        let ev = parse_cloudtrail_line(support.as_bytes(), 1, &p)
            .unwrap()
            .unwrap();
        assert_eq!(ev.actor_kind, ActorKind::Provider);
        let login = r#"{"userIdentity":{"type":"IAMUser","userName":"OP002","accountId":"111122223333"},"eventTime":"2026-11-02T01:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","responseElements":{"ConsoleLogin":"Failure"},"errorMessage":"Failed authentication"}"#;
        let ev = parse_cloudtrail_line(login.as_bytes(), 1, &p)
            .unwrap()
            .unwrap();
        assert_eq!(
            (ev.action, ev.outcome),
            (Action::LoginFailed, Outcome::Denied)
        );
        let iam = r#"{"userIdentity":{"type":"IAMUser","userName":"OP002"},"eventTime":"2026-11-02T01:00:00Z","eventSource":"iam.amazonaws.com","eventName":"AttachRolePolicy"}"#;
        let ev = parse_cloudtrail_line(iam.as_bytes(), 1, &p)
            .unwrap()
            .unwrap();
        assert_eq!(ev.action, Action::IamChange);
        let home = Principals {
            home_accounts: vec!["111122223333".into()],
            ..Principals::default()
        };
        let other = CT.replace(
            "\"accountId\":\"111122223333\"",
            "\"accountId\":\"444455556666\"",
        );
        let ev = parse_cloudtrail_line(other.as_bytes(), 1, &home)
            .unwrap()
            .unwrap();
        assert_eq!(ev.actor_kind, ActorKind::Provider);

        let file = format!("{{\"Records\":[{CT},{iam}]}}");
        let evs = parse_cloudtrail_file(file.as_bytes(), &p).unwrap();
        assert_eq!((evs.events.len(), evs.errors.len()), (2, 0));
        // A bad record is reported by number; the records after it are still read.
        let bad = format!(
            "{{\"Records\":[{CT},{},{iam}]}}",
            iam.replace("2026-11-02T01:00:00Z", "yesterday")
        );
        let got = parse_cloudtrail_file(bad.as_bytes(), &p).unwrap();
        assert_eq!((got.events.len(), got.errors.len()), (2, 1));
        let e = &got.errors[0];
        assert_eq!((e.record, e.field), (Some(2), Some("eventTime")));
        assert!(e
            .to_string()
            .contains("record 2: field `eventTime`: expected an RFC 3339"));
        assert!(!e.to_string().contains("yesterday"));
        let e = parse_cloudtrail_line(b"{\"eventTime\":", 3, &p).unwrap_err();
        assert!(matches!(e.problem, Problem::NotJson { .. }));
        assert_eq!(e.line, 3);
    }
}
