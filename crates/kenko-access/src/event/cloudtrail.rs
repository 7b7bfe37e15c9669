//! CloudTrail: one record per line, or a whole log file `{"Records":[...]}`.

use super::*;

#[derive(Deserialize)]
pub(super) struct RawCt<'a> {
    #[serde(borrow, rename = "eventTime")]
    pub(super) event_time: Option<Scalar<'a>>,
    #[serde(borrow, rename = "eventSource")]
    pub(super) event_source: Option<Scalar<'a>>,
    #[serde(borrow, rename = "eventName")]
    pub(super) event_name: Option<Scalar<'a>>,
    #[serde(borrow, rename = "errorCode")]
    pub(super) error_code: Option<Scalar<'a>>,
    #[serde(borrow, rename = "userIdentity")]
    pub(super) user_identity: Option<Obj<RawCtIdentity<'a>>>,
    #[serde(borrow, rename = "requestParameters")]
    pub(super) request_parameters: Option<Obj<RawCtRequest<'a>>>,
    #[serde(borrow, rename = "responseElements")]
    pub(super) response_elements: Option<Obj<RawCtResponse<'a>>>,
    #[serde(borrow)]
    pub(super) resources: Option<Arr<Obj<RawCtResource<'a>>>>,
}

#[derive(Deserialize)]
pub(super) struct RawCtIdentity<'a> {
    #[serde(borrow, rename = "type")]
    pub(super) kind: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) arn: Option<Scalar<'a>>,
    #[serde(borrow, rename = "accountId")]
    pub(super) account_id: Option<Scalar<'a>>,
    #[serde(borrow, rename = "userName")]
    pub(super) user_name: Option<Scalar<'a>>,
    #[serde(borrow, rename = "invokedBy")]
    pub(super) invoked_by: Option<Scalar<'a>>,
    #[serde(borrow, rename = "principalId")]
    pub(super) principal_id: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
pub(super) struct RawCtRequest<'a> {
    #[serde(borrow, rename = "bucketName")]
    pub(super) bucket_name: Option<Scalar<'a>>,
    #[serde(borrow, rename = "keyId")]
    pub(super) key_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(super) key: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
pub(super) struct RawCtResponse<'a> {
    #[serde(borrow, rename = "ConsoleLogin")]
    pub(super) console_login: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
pub(super) struct RawCtResource<'a> {
    #[serde(borrow, rename = "ARN")]
    pub(super) arn: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
pub(super) struct RawCtFile<'a> {
    #[serde(borrow, rename = "Records")]
    pub(super) records: Option<Arr<Obj<RawCt<'a>>>>,
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
    let (raw, cx) = object_line::<RawCt<'a>>(line, Source::CloudTrail, line_no)?;
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

pub(super) const IAM_CHANGE_PREFIXES: &[&str] = &[
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

pub(super) fn cloudtrail_event<'a>(
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
    let (mut bucket, mut key_id, mut object) = (None, None, None);
    match raw.request_parameters {
        Some(Obj::Is(r)) => {
            bucket = cx.opt_str(r.bucket_name, "bucketName")?;
            key_id = cx.opt_str(r.key_id, "keyId")?;
            object = cx.opt_str(r.key, "key")?;
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
        // The object key only of S3 events (it says which stack's prefix was touched).
        object: if source.as_ref() == "s3.amazonaws.com" {
            object
        } else {
            None
        },
        resource,
        stack: None,
    })
}

/// The actor and its kind from a CloudTrail `userIdentity`.
pub(super) fn principal<'a>(
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
