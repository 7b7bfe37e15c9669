//! A scripted mock Kubernetes API server for tests (the kube-rs controller-rs pattern).
//!
//! A test writes the requests it expects, in order, with the reply to each; the code under
//! test gets a real `kube::Client` whose transport is the script. Each request is checked
//! against the next step (method, path, required query parameters, and the body where it
//! matters); a request out of order, one beyond the script, or a step never requested fails
//! the test. What was sent comes back as [`Seen`] for further assertions.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use serde_json::{json, Value};

/// The server side of the mock transport.
pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// How long a step waits for its request, and the end for the client to go away.
const WAIT: Duration = Duration::from_secs(10);

/// How the mock answers one expected request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This JSON.
    Json(Value),
    /// The request's own body back (what the API server returns for an apply or a create),
    /// with these fields merged in at the top level (e.g. a status).
    Echo(Value),
    /// 404 with a Kubernetes `Status` body.
    NotFound,
    /// 409 AlreadyExists with a Kubernetes `Status` body (a create of an existing object).
    AlreadyExists,
}

impl Reply {
    /// The request's body back, unchanged.
    pub fn echo() -> Reply {
        Reply::Echo(json!({}))
    }
}

impl From<Value> for Reply {
    fn from(v: Value) -> Reply {
        Reply::Json(v)
    }
}

/// One expected request and the reply to it.
#[derive(Debug, Clone)]
pub struct Step {
    pub method: String,
    pub path: String,
    /// Query parameters that must be present (`key=value`).
    pub query: Vec<&'static str>,
    /// The JSON body the request must carry, when it matters.
    pub body: Option<Value>,
    /// The reply's HTTP status (ignored for [`Reply::NotFound`] and [`Reply::AlreadyExists`]).
    pub status: u16,
    pub reply: Reply,
}

/// Expects `method path` and answers `reply` (a `serde_json::Value` is a JSON reply).
pub fn step(method: impl AsRef<str>, path: impl Into<String>, reply: impl Into<Reply>) -> Step {
    Step {
        method: method.as_ref().to_string(),
        path: path.into(),
        query: vec![],
        body: None,
        status: 200,
        reply: reply.into(),
    }
}

/// A request as it was received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Path and query, as sent.
    pub uri: String,
    /// Empty when the request had none.
    pub content_type: String,
    /// `Null` when the request had no (JSON) body.
    pub body: Value,
}

/// A client whose transport is the returned handle.
pub fn mock() -> (kube::Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

fn merge(into: &mut Value, extra: &Value) {
    if let (Some(a), Some(b)) = (into.as_object_mut(), extra.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
}

/// Serves the script in order, then waits for every client to be dropped; panics on a
/// request out of script, beyond it, or a step never requested.
pub async fn serve(mut handle: Handle, steps: Vec<Step>) -> Vec<Seen> {
    let mut steps: VecDeque<Step> = steps.into();
    let mut seen = Vec::new();
    while let Some(s) = steps.pop_front() {
        let i = seen.len() + 1;
        let next = tokio::time::timeout(WAIT, handle.next_request()).await;
        let (req, send) = match next {
            Ok(Some(r)) => r,
            Ok(None) => {
                let missing: Vec<String> = std::iter::once(&s)
                    .chain(steps.iter())
                    .map(|s| format!("{} {}", s.method, s.path))
                    .collect();
                panic!("request #{i}: the client went away before these requests: {missing:?}")
            }
            Err(_) => panic!(
                "request #{i}: expected {} {}, got nothing",
                s.method, s.path
            ),
        };
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let uri = req.uri().to_string();
        assert_eq!(
            (method.as_str(), path.as_str()),
            (s.method.as_str(), s.path.as_str()),
            "request #{i} out of script: {uri}"
        );
        for q in &s.query {
            assert!(
                query.split('&').any(|p| p == *q),
                "request #{i}: {uri} lacks {q}"
            );
        }
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if let Some(want) = &s.body {
            assert_eq!(&body, want, "request #{i}: body of {uri}");
        }
        let (status, reply) = match &s.reply {
            Reply::Json(v) => (s.status, v.clone()),
            Reply::Echo(extra) => {
                let mut b = body.clone();
                merge(&mut b, extra);
                (s.status, b)
            }
            Reply::NotFound => (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
            ),
            Reply::AlreadyExists => (
                409,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409, "message": "already exists"}),
            ),
        };
        send.send_response(
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                .unwrap(),
        );
        seen.push(Seen {
            method,
            path,
            query,
            uri,
            content_type,
            body,
        });
    }
    match tokio::time::timeout(WAIT, handle.next_request()).await {
        Ok(None) => {}
        Ok(Some((req, _))) => panic!("unexpected request {} {}", req.method(), req.uri()),
        Err(_) => panic!("the client was not dropped after the script"),
    }
    seen
}

/// Runs `f` with a client against the script; returns its result and the requests seen.
/// `f` must drop every clone of the client before it returns.
pub async fn scenario<T, F, Fut>(steps: Vec<Step>, f: F) -> (T, Vec<Seen>)
where
    F: FnOnce(kube::Client) -> Fut,
    Fut: Future<Output = T>,
{
    let (client, handle) = mock();
    let server = tokio::spawn(serve(handle, steps));
    let result = f(client).await;
    let seen = match server.await {
        Ok(seen) => seen,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    (result, seen)
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    async fn get(client: &kube::Client, path: &str) -> Result<Value, kube::Error> {
        client
            .request::<Value>(http::Request::get(path).body(vec![]).unwrap())
            .await
    }

    #[tokio::test]
    async fn answers_the_script_and_reports_what_was_sent() {
        let steps = vec![
            step("GET", "/api/v1/namespaces/a", json!({"kind": "Namespace"})),
            step("GET", "/api/v1/namespaces/b", Reply::NotFound),
        ];
        let (r, seen) = scenario(steps, |c| async move {
            (
                get(&c, "/api/v1/namespaces/a?x=1").await,
                get(&c, "/api/v1/namespaces/b").await,
            )
        })
        .await;
        assert_eq!(r.0.unwrap()["kind"], "Namespace");
        assert!(matches!(r.1, Err(kube::Error::Api(e)) if e.code == 404));
        assert_eq!(seen[0].query, "x=1");
        assert_eq!(seen[1].uri, "/api/v1/namespaces/b");
    }

    #[tokio::test]
    #[should_panic(expected = "out of script")]
    async fn a_request_out_of_order_fails() {
        let steps = vec![step("GET", "/api/v1/namespaces/a", json!({}))];
        let _ = scenario(
            steps,
            |c| async move { get(&c, "/api/v1/namespaces/b").await },
        )
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "unexpected request")]
    async fn a_request_beyond_the_script_fails() {
        let steps = vec![step("GET", "/api/v1/namespaces/a", json!({}))];
        let _ = scenario(steps, |c| async move {
            let _ = get(&c, "/api/v1/namespaces/a").await;
            get(&c, "/api/v1/namespaces/a").await
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "went away before these requests")]
    async fn a_step_never_requested_fails() {
        let steps = vec![
            step("GET", "/api/v1/namespaces/a", json!({})),
            step("DELETE", "/api/v1/namespaces/a", json!({})),
        ];
        let _ = scenario(
            steps,
            |c| async move { get(&c, "/api/v1/namespaces/a").await },
        )
        .await;
    }
}
