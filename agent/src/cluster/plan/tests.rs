//! The agent's pure decisions: the gate, who erases what (volumes by their kind), job ids,
//! and the request's phase and reason.

use super::*;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, HostPathVolumeSource, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, PersistentVolumeClaimSpec, PersistentVolumeSpec, VolumeNodeAffinity,
};
use kenko_api::{ErasureMethod, ErasureRequestSpec, VerifyMode};

fn request(approved_by: Option<&str>) -> ErasureRequest {
    let mut r = ErasureRequest::new(
        "decommission-hachioji",
        ErasureRequestSpec {
            targets: vec![
                "pvc:hachioji-data".into(),
                "dir:/var/lib/kenko/old".into(),
                "s3://hachioji-records".into(),
                "kms:arn:aws:kms:ap-northeast-1:123456789012:key/k".into(),
            ],
            method: ErasureMethod::Clear,
            verification: VerifyMode::Full,
            requested_by: "operator-a".into(),
            approved_by: approved_by.map(String::from),
            stack: Some("hachioji".into()),
            stack_uid: Some("5f0c7d2e-8a1b".into()),
        },
    );
    r.metadata.namespace = Some("city".into());
    r.metadata.uid = Some("0b9c1d2e-3f4a-5b6c".into());
    r
}

#[test]
fn only_a_request_approved_by_someone_else_runs() {
    assert_eq!(gate(&request(None)), Gate::AwaitingApproval);
    assert_eq!(gate(&request(Some(" "))), Gate::AwaitingApproval);
    assert_eq!(gate(&request(Some("operator-a"))), Gate::SelfApproved);
    assert_eq!(gate(&request(Some("auditor-b"))), Gate::Run);
    let mut done = request(Some("auditor-b"));
    done.status = Some(kenko_api::ErasureRequestStatus {
        phase: ErasurePhase::Certified,
        ..Default::default()
    });
    assert_eq!(gate(&done), Gate::Finished);
}

fn pv(source: &str, affinity: &[(&str, &str)]) -> PersistentVolume {
    let mut spec = PersistentVolumeSpec {
        node_affinity: Some(VolumeNodeAffinity {
            required: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(
                        affinity
                            .iter()
                            .map(|(k, v)| NodeSelectorRequirement {
                                key: k.to_string(),
                                operator: "In".into(),
                                values: Some(vec![v.to_string()]),
                            })
                            .collect(),
                    ),
                    match_fields: None,
                }],
            }),
        }),
        ..Default::default()
    };
    match source {
        "hostPath" => {
            spec.host_path = Some(HostPathVolumeSource {
                path: "/mnt/disks/hachioji-data".into(),
                type_: None,
            })
        }
        driver => {
            spec.csi = Some(CSIPersistentVolumeSource {
                driver: driver.into(),
                volume_handle: "vol-0123456789abcdef0".into(),
                ..Default::default()
            })
        }
    }
    PersistentVolume {
        spec: Some(spec),
        ..Default::default()
    }
}

fn bound() -> Option<PersistentVolumeClaim> {
    Some(PersistentVolumeClaim {
        spec: Some(PersistentVolumeClaimSpec {
            volume_name: Some("pv-1".into()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[test]
fn a_volume_is_erased_by_its_node_or_as_an_ebs_volume_by_the_cloud_agent() {
    let facts = |volume| VolumeFacts {
        claim: bound(),
        volume,
    };
    assert_eq!(
        resolve_volume(
            "hachioji-data",
            &facts(Some(pv(
                "hostPath",
                &[("kubernetes.io/hostname", "node-1")]
            ))),
            "/host",
            "ap-northeast-1"
        ),
        Resolved::Erase {
            owner: Owner::Node("node-1".into()),
            engine: "dir:/host/mnt/disks/hachioji-data".parse().unwrap(),
        }
    );
    assert_eq!(
        resolve_volume(
            "hachioji-data",
            &facts(Some(pv(
                EBS_CSI_DRIVER,
                &[("topology.ebs.csi.aws.com/zone", "ap-northeast-3a")]
            ))),
            "/host",
            "ap-northeast-1"
        ),
        Resolved::Erase {
            owner: Owner::Cloud,
            engine: "ebs-volume:ap-northeast-3/vol-0123456789abcdef0"
                .parse()
                .unwrap(),
        },
        "the region is the volume's zone's"
    );
    let reason = |r: Resolved| match r {
        Resolved::Refuse { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        reason(resolve_volume(
            "x",
            &facts(Some(pv("nfs.csi.k8s.io", &[]))),
            "",
            "ap-northeast-1"
        )),
        "erase_volume_unsupported"
    );
    assert_eq!(
        reason(resolve_volume(
            "x",
            &facts(Some(pv("hostPath", &[]))),
            "",
            "ap-northeast-1"
        )),
        "erase_volume_no_node"
    );
    assert_eq!(
        reason(resolve_volume("x", &VolumeFacts::default(), "", "r")),
        "erase_pvc_missing"
    );
    assert_eq!(
        reason(resolve_volume(
            "x",
            &VolumeFacts {
                claim: Some(PersistentVolumeClaim::default()),
                volume: None
            },
            "",
            "r"
        )),
        "erase_pvc_unbound"
    );
    assert_eq!(
        reason(resolve_volume("x", &facts(None), "", "r")),
        "erase_pv_missing"
    );
}

#[test]
fn targets_go_to_their_node_or_the_cloud_agent_and_shared_keys_are_refused() {
    let mut r = request(Some("auditor-b"));
    let t = |s: &str| s.parse::<Target>().unwrap();
    assert!(matches!(
        resolve(&r, &t("dir:/var/lib/kenko/old")),
        Resolved::Refuse {
            reason: "erase_no_node",
            ..
        }
    ));
    r.metadata.annotations = Some([(NODE_ANNOTATION.to_string(), "node-2".to_string())].into());
    assert_eq!(
        resolve(&r, &t("dir:/var/lib/kenko/old")),
        Resolved::Erase {
            owner: Owner::Node("node-2".into()),
            engine: t("dir:/var/lib/kenko/old")
        }
    );
    for cloud in [
        "s3://hachioji-records",
        "backup-vault:ap-northeast-3/kenko-prod-osaka",
        "kms:arn:aws:kms:ap-northeast-1:123456789012:key/k",
    ] {
        assert!(matches!(
            resolve(&r, &t(cloud)),
            Resolved::Erase {
                owner: Owner::Cloud,
                ..
            }
        ));
    }
    // The agent's own data key is never erased for one stack.
    assert!(matches!(
        resolve(&r, &t("datakey:records")),
        Resolved::Refuse {
            reason: "erase_shared_key_refused",
            ..
        }
    ));
    let mut standalone = r.clone();
    standalone.spec.stack = None;
    assert!(matches!(
        resolve(&standalone, &t("datakey:records")),
        Resolved::Erase { .. }
    ));
    assert!(matches!(
        resolve(
            &standalone,
            &t("backup-vault:ap-northeast-3/kenko-prod-osaka")
        ),
        Resolved::Refuse {
            reason: "erase_stack_unnamed",
            ..
        }
    ));
    assert_eq!(
        stack_selector(&r).unwrap().pvcs,
        vec!["hachioji-data", "data-hachioji-db-0"]
    );
}

#[test]
fn job_ids_are_stable_per_request_and_target_and_differ_for_a_retry() {
    let r = request(Some("auditor-b"));
    let a = job_id(&r, "pvc:hachioji-data");
    assert_eq!(a, job_id(&r, "pvc:hachioji-data"));
    assert!(
        a.starts_with("city-decommission-hachioji-0b9c1d2e-pvc-"),
        "{a}"
    );
    assert_ne!(a, job_id(&r, "s3://hachioji-records"));
    let mut retry = r.clone();
    retry.metadata.uid = Some("7e6d5c4b-aaaa".into());
    assert_ne!(a, job_id(&retry, "pvc:hachioji-data"));
    assert_eq!(
        certificate_resource_name("000007-City_Job.json"),
        "000007-city-job"
    );
}

fn res(t: &str, p: ErasurePhase, reason: Option<&str>) -> TargetResult {
    TargetResult {
        target: t.into(),
        phase: p,
        reason: reason.map(String::from),
        message: reason.map(|r| format!("because {r}")),
        ..Default::default()
    }
}

#[test]
fn one_failed_target_never_stops_the_others_and_the_first_failure_names_the_reason() {
    let targets: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    use ErasurePhase::*;
    assert_eq!(overall(&targets, &[]), Approved);
    assert_eq!(overall(&targets, &[res("a", Running, None)]), Running);
    assert_eq!(
        overall(&targets, &[res("b", Failed, Some("x"))]),
        Running,
        "a and c are still to be erased"
    );
    let done = [
        res("a", Certified, None),
        res("b", Blocked, Some("erase_blocked")),
        res("c", Certified, None),
    ];
    assert_eq!(overall(&targets, &done), Blocked);
    let failed = [
        res("c", Failed, Some("aws_api_failed")),
        res("a", Certified, None),
        res("b", Failed, Some("erase_pvc_missing")),
    ];
    assert_eq!(overall(&targets, &failed), Failed);
    let (reason, message) = summary(&targets, &failed).unwrap();
    assert_eq!(reason, "erase_pvc_missing", "b comes first in the spec");
    assert_eq!(
        message,
        "2 of 3 targets failed; first b: because erase_pvc_missing"
    );
    assert_eq!(summary(&targets, &done).unwrap().0, "erase_blocked");
    assert_eq!(summary(&targets, &[res("a", Certified, None)]), None);
    assert_eq!(
        overall(
            &targets,
            &[
                res("a", Certified, None),
                res("b", Certified, None),
                res("c", Certified, None)
            ]
        ),
        Certified
    );
}

#[test]
fn a_long_many_line_error_becomes_one_bounded_line_in_the_status() {
    let long = format!(
        "DescribeVolumes on vol-1: service error\n{}",
        "x".repeat(5000)
    );
    let targets = vec!["ebs-volume:ap-northeast-1/vol-1".to_string()];
    let r = TargetResult {
        target: targets[0].clone(),
        phase: ErasurePhase::Failed,
        reason: Some("aws_api_failed".into()),
        message: Some(kenko_api::status_message(&long)),
        ..Default::default()
    };
    assert!(r.message.as_ref().unwrap().len() <= kenko_api::MAX_MESSAGE);
    let (_, message) = summary(&targets, &[r]).unwrap();
    assert!(message.len() <= kenko_api::MAX_MESSAGE);
    assert!(!message.contains('\n'));
}
