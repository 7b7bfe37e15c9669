//! Leaving leadership on shutdown: when the controller stops (SIGTERM), the lease task
//! releases the Lease (holder cleared), so the standby takes over at once instead of waiting
//! for the Lease to expire.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use kenko_test_support::{scenario, step, Reply};
use serde_json::json;

#[tokio::test]
async fn stopping_releases_the_lease_so_the_standby_need_not_wait() {
    let path = "/apis/coordination.k8s.io/v1/namespaces/kenko-system/leases/kenko-controller";
    let renewed = k8s_openapi::jiff::Timestamp::now().to_string();
    let held = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "kenko-controller", "namespace": "kenko-system"},
        "spec": {"holderIdentity": "ctrl-1", "leaseDurationSeconds": 15,
                 "renewTime": renewed, "acquireTime": renewed},
    });
    let released = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "kenko-controller", "namespace": "kenko-system"},
        "spec": {},
    });
    let steps = vec![
        // The manager finds the Lease, then reads who holds it: this replica.
        step("GET", path, Reply::Json(held.clone())),
        step("GET", path, Reply::Json(held)),
        // Stopping: the holder is cleared, then read back.
        step("PATCH", path, Reply::Json(released.clone())),
        step("GET", path, Reply::Json(released)),
    ];
    let ((), seen) = scenario(steps, |client| async move {
        let lease = kube_lease_manager::LeaseManagerBuilder::new(client, "kenko-controller")
            .with_namespace("kenko-system")
            .with_identity("ctrl-1")
            .with_duration(15)
            .with_grace(5)
            .build()
            .await
            .unwrap();
        let (mut leading, task) = lease.watch().await;
        leading.wait_for(|l| *l).await.unwrap();
        // What `run` does once the controller has stopped: every receiver is gone.
        drop(leading);
        kenko_controller::run::release_lease(task).await;
    })
    .await;
    let release = &seen[2].body;
    assert!(release["spec"]["holderIdentity"].is_null(), "{release}");
    assert!(release["spec"]
        .as_object()
        .unwrap()
        .contains_key("holderIdentity"));
}
