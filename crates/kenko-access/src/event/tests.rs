//! Each input's parser: valid lines, every field's error, and what errors never contain.

use super::health::{build_health, fast, serde_health};
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

/// 100,000 levels of `[` or `{"a":` where a line starts, in a known field, in an unknown field
/// and inside a CloudTrail file's record: each is one malformed line (or file) with a reason,
/// never a stack overflow. serde_json's recursion limit guards the typed levels, and every
/// container kenko does not read is skipped by its iterative `IgnoredAny`.
#[test]
fn deeply_nested_json_is_malformed_and_never_overflows() {
    const DEPTH: usize = 100_000;
    let arrays = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let objects = format!("{}1{}", "{\"a\":".repeat(DEPTH), "}".repeat(DEPTH));
    let open = "[".repeat(DEPTH);
    let p = Principals::default();
    let mut lines: Vec<(Source, String, bool)> = Vec::new();
    for deep in [&arrays, &objects, &open] {
        let balanced = deep != &open;
        for (source, base) in [
            (Source::Health, LINE),
            (Source::K8sAudit, K8S),
            (Source::CloudTrail, CT),
        ] {
            lines.push((source, deep.clone(), false));
            // In a field the parser reads, and in one it skips.
            let field = match source {
                Source::Health => "\"subject\":",
                Source::K8sAudit => "\"verb\":",
                Source::CloudTrail => "\"eventName\":",
            };
            let at = base.find(field).unwrap() + field.len();
            let end = at + base[at..].find([',', '}']).unwrap();
            lines.push((
                source,
                format!("{}{deep}{}", &base[..at], &base[end..]),
                false,
            ));
            // A well-formed value in a field nobody reads changes nothing.
            lines.push((
                source,
                base.replacen('{', &format!("{{\"x\":{deep},"), 1),
                balanced,
            ));
        }
    }
    for (source, line, ok) in &lines {
        let r = match source {
            Source::Health => parse_health_line(line.as_bytes(), 3).map(|_| ()),
            Source::K8sAudit => parse_k8s_line(line.as_bytes(), 3, &p).map(|_| ()),
            Source::CloudTrail => parse_cloudtrail_line(line.as_bytes(), 3, &p).map(|_| ()),
        };
        if *ok {
            assert!(r.is_ok(), "{source:?}: {r:?}");
            continue;
        }
        let e = r.unwrap_err();
        assert!(
            ["access_log_not_json", "access_log_invalid_field"].contains(&e.reason()),
            "{source:?}: {e}"
        );
        assert_eq!(e.line, 3);
        assert!(e.to_string().len() < 200, "one short line: {e}");
    }
    // A CloudTrail file whose second record nests without end: the file is refused, whole.
    let file = format!("{{\"Records\":[{CT},{{\"eventName\":{arrays}}},{CT}]}}");
    let recs = parse_cloudtrail_file(file.as_bytes(), &p).unwrap();
    assert_eq!((recs.events.len(), recs.errors.len()), (2, 1));
    let file = format!("{{\"Records\":[{CT},{open}]}}");
    assert_eq!(
        parse_cloudtrail_file(file.as_bytes(), &p)
            .unwrap_err()
            .reason(),
        "access_log_not_json"
    );
}

/// A line past [`crate::feed::MAX_LINE_BYTES`] is refused unparsed with its own reason and the
/// lines around it are read.
#[test]
fn a_line_past_the_limit_is_skipped_and_the_rest_is_read() {
    let long = format!(
        "{}\n",
        LINE.replace("S0123", &"S".repeat(crate::feed::MAX_LINE_BYTES))
    );
    let text = format!("{LINE}\n{long}{LINE}\n");
    let mut det = crate::Detector::new(
        crate::Config::default(),
        crate::Roster::parse("id,role,status,retired_on,scope,terminals\nS0123,public_health_nurse,active,,D07,T0456\n").unwrap(),
        crate::Calendar::default(),
    );
    let mut errors = Vec::new();
    let counts = crate::feed::feed(
        &mut det,
        &Principals::default(),
        &[crate::feed::LineBatch {
            source: Source::Health,
            bytes: text.as_bytes(),
            first_line: 10,
            stack: None,
        }],
        Vec::new(),
        |e| errors.push(e.clone()),
    );
    assert_eq!((counts.events[0], counts.errors[0]), (2, 1));
    assert_eq!(errors[0].reason(), "access_log_line_too_long");
    assert_eq!(errors[0].line, 12);
    assert_eq!(
        errors[0].to_string(),
        "health access log line 12: longer than 4194304 bytes; skipped unread"
    );
}
