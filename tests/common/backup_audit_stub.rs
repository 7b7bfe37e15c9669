//! Recorded answers of the AWS Backup API for the backup-coverage audit (`backup.coverage`),
//! which moto lacks: ListBackupSelections, GetBackupSelection, ListRecoveryPointsByBackupVault
//! and ListCopyJobs (with ListBackupVaults, ListBackupPlans and GetBackupPlan beside them, so one
//! endpoint answers every AWS Backup call of the sweep). Served on loopback in the REST-JSON
//! shapes AWS Backup answers with, per region (read from the request's SigV4 credential scope);
//! the agent's real aws-sdk-backup code reaches it through `KENKO_AWS_ENDPOINT_URL_BACKUP`, and
//! every other service goes to moto.
//!
//! An answer is recorded by (region, path); a vault or plan listing not recorded is empty, any
//! other path not recorded is a 404 `ResourceNotFoundException`. Listings filtered by
//! `resourceArn` keep only the entries whose `ResourceArn` is it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// (region, path without a trailing `/`) → the JSON answer.
pub type Answers = BTreeMap<(String, String), Value>;

/// The running stub; stops with the runtime it was started in.
pub struct BackupAuditStub {
    pub url: String,
}

/// The region of a SigV4-signed request: `Credential=KEY/DATE/REGION/SERVICE/aws4_request`.
fn region(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or_default()
        .to_string()
}

/// A query parameter, percent-decoded.
fn param(uri: &Uri, name: &str) -> Option<String> {
    let raw = uri
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn answer(State(answers): State<Arc<Answers>>, headers: HeaderMap, uri: Uri) -> Response {
    let path = uri.path().trim_end_matches('/').to_string();
    let key = (region(&headers), path.clone());
    let Some(mut v) = answers.get(&key).cloned().or_else(|| match path.as_str() {
        "/backup-vaults" => Some(json!({"BackupVaultList": []})),
        "/backup/plans" => Some(json!({"BackupPlansList": []})),
        _ => None,
    }) else {
        return (
            StatusCode::NOT_FOUND,
            [
                ("x-amzn-errortype", "ResourceNotFoundException"),
                ("content-type", "application/json"),
            ],
            json!({"Code": "ResourceNotFoundException", "Message": format!("{} {path} not recorded", key.0)})
                .to_string(),
        )
            .into_response();
    };
    if let Some(arn) = param(&uri, "resourceArn") {
        for list in ["RecoveryPoints", "CopyJobs"] {
            if let Some(items) = v.get_mut(list).and_then(Value::as_array_mut) {
                items.retain(|i| i["ResourceArn"] == *arn.as_str());
            }
        }
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Serves `answers` on a free loopback port (inside the current tokio runtime, which must keep
/// running while the agent asks: a multi-threaded one when the test blocks on the binary).
pub async fn start(answers: Answers) -> BackupAuditStub {
    let app = Router::new().fallback(answer).with_state(Arc::new(answers));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    BackupAuditStub { url }
}
