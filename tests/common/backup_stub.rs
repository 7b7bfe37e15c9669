//! Recorded answers of the AWS Backup API for the recovery-point calls moto lacks
//! (ListRecoveryPointsByBackupVault, ListTags, DescribeRecoveryPoint, DeleteRecoveryPoint,
//! DescribeBackupVault with Vault Lock), served on loopback in the REST-JSON shapes AWS
//! Backup answers with. The agent's real aws-sdk-backup code talks to it through the
//! per-service endpoint (`KENKO_AWS_ENDPOINT_URL_BACKUP`, or `Endpoint::service_urls`); every
//! other service goes to moto. It keeps what was deleted, so listing again shows the effect.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

/// One recovery point in a vault.
#[derive(Debug, Clone)]
pub struct Point {
    pub arn: String,
    pub created: i64,
    pub bytes: i64,
    pub tags: BTreeMap<String, String>,
}

/// One vault: its lock, if any (minimum retention in days), and its points.
#[derive(Debug, Clone, Default)]
pub struct Vault {
    pub lock_days: Option<i64>,
    pub points: Vec<Point>,
}

#[derive(Default)]
struct Inner {
    vaults: BTreeMap<String, Vault>,
    deleted: Vec<String>,
}

/// The running stub; stops with the test's runtime.
pub struct BackupStub {
    pub url: String,
    state: Arc<Mutex<Inner>>,
}

impl BackupStub {
    /// Recovery points deleted so far, in order.
    pub fn deleted(&self) -> Vec<String> {
        self.state.lock().unwrap().deleted.clone()
    }
}

/// A JSON answer, as AWS Backup gives it.
fn json_reply(v: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            ("x-amzn-errortype", "ResourceNotFoundException"),
            ("content-type", "application/json"),
        ],
        json!({"Code": "ResourceNotFoundException", "Message": format!("{what} not found")})
            .to_string(),
    )
        .into_response()
}

type S = State<Arc<Mutex<Inner>>>;

async fn describe_vault(State(st): S, Path(name): Path<String>) -> Response {
    let st = st.lock().unwrap();
    let Some(v) = st.vaults.get(&name) else {
        return not_found(&name);
    };
    json_reply(json!({
        "BackupVaultName": name,
        "BackupVaultArn": format!("arn:aws:backup:ap-northeast-1:123456789012:backup-vault:{name}"),
        "Locked": v.lock_days.is_some(),
        "MinRetentionDays": v.lock_days,
        "NumberOfRecoveryPoints": v.points.len(),
    }))
}

async fn list_points(State(st): S, Path(name): Path<String>) -> Response {
    let st = st.lock().unwrap();
    let Some(v) = st.vaults.get(&name) else {
        return not_found(&name);
    };
    let points: Vec<_> = v
        .points
        .iter()
        .map(|p| {
            json!({
                "RecoveryPointArn": p.arn,
                "BackupVaultName": name,
                "CreationDate": p.created,
                "BackupSizeInBytes": p.bytes,
                "Status": "COMPLETED",
                "ResourceType": "EBS",
            })
        })
        .collect();
    json_reply(json!({"RecoveryPoints": points}))
}

async fn point(State(st): S, Path((name, arn)): Path<(String, String)>) -> Response {
    let st = st.lock().unwrap();
    match st
        .vaults
        .get(&name)
        .and_then(|v| v.points.iter().find(|p| p.arn == arn))
    {
        Some(p) => json_reply(json!({
            "RecoveryPointArn": p.arn,
            "BackupVaultName": name,
            "CreationDate": p.created,
            "BackupSizeInBytes": p.bytes,
            "Status": "COMPLETED",
        })),
        None => not_found(&arn),
    }
}

async fn delete_point(State(st): S, Path((name, arn)): Path<(String, String)>) -> Response {
    let mut st = st.lock().unwrap();
    let Some(v) = st.vaults.get_mut(&name) else {
        return not_found(&name);
    };
    let before = v.points.len();
    v.points.retain(|p| p.arn != arn);
    if v.points.len() == before {
        return not_found(&arn);
    }
    st.deleted.push(arn);
    StatusCode::OK.into_response()
}

async fn tags(State(st): S, Path(arn): Path<String>) -> Response {
    let st = st.lock().unwrap();
    let found = st
        .vaults
        .values()
        .flat_map(|v| v.points.iter())
        .find(|p| p.arn == arn);
    match found {
        Some(p) => json_reply(json!({"Tags": p.tags})),
        None => not_found(&arn),
    }
}

/// Serves `vaults` on a free loopback port (inside the current tokio runtime).
pub async fn start(vaults: BTreeMap<String, Vault>) -> BackupStub {
    let state = Arc::new(Mutex::new(Inner {
        vaults,
        deleted: vec![],
    }));
    let app = Router::new()
        .route("/backup-vaults/{name}", get(describe_vault))
        .route("/backup-vaults/{name}/recovery-points", get(list_points))
        .route("/backup-vaults/{name}/recovery-points/", get(list_points))
        .route(
            "/backup-vaults/{name}/recovery-points/{arn}",
            get(point).delete(delete_point),
        )
        .route("/tags/{arn}", get(tags))
        .route("/tags/{arn}/", get(tags))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    BackupStub { url, state }
}
