//! One backup selection tag (`kenko_api::names::BACKUP_SELECTION_TAG`) in the three places that
//! must agree: Terraform's backup selection, the records bucket Terraform tags, and the sample
//! StorageClass that tags every EBS volume it creates. If they drift apart the plan selects
//! nothing of the stack, and `backup.coverage` reports `NoBackupPlan`.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use std::path::PathBuf;

use kenko_api::names::BACKUP_SELECTION_TAG;
use kenko_infra_tests::manifests::load_objects;
use kenko_infra_tests::{backup_selection_tag, load_tree, Module, Violation};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn module(dir: &str) -> Module {
    load_tree(&root().join("terraform"), "terraform")
        .unwrap()
        .into_iter()
        .find(|m| m.dir == dir)
        .unwrap_or_else(|| panic!("no terraform/{dir}"))
}

const SC_FILE: &str = "manifests/samples/storageclass.yaml";

fn storage_class() -> Value {
    let objects = load_objects(&root().join(SC_FILE), SC_FILE).unwrap();
    objects
        .into_iter()
        .find(|o| o.value["kind"] == "StorageClass")
        .unwrap()
        .value
}

fn rules(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(|v| v.rule).collect()
}

#[test]
fn terraform_the_records_bucket_and_the_storage_class_use_the_one_backup_tag() {
    assert_eq!(BACKUP_SELECTION_TAG, ("kenko:backup", "true"));
    let v = backup_selection_tag(
        &module("modules/backup"),
        &module("modules/storage"),
        (SC_FILE, &storage_class()),
        BACKUP_SELECTION_TAG,
    );
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn each_place_drifting_apart_is_reported() {
    let (backup, storage, sc) = (
        module("modules/backup"),
        module("modules/storage"),
        storage_class(),
    );
    // The constant changed, and none of the three follows.
    let v = backup_selection_tag(&backup, &storage, (SC_FILE, &sc), ("kenko:backup", "yes"));
    assert_eq!(
        rules(&v),
        [
            "backup-selection-tag",
            "records-backup-tag",
            "storageclass-backup-tag"
        ]
    );
    // The StorageClass without the parameter.
    let mut bare = sc.clone();
    bare["parameters"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| !k.starts_with("tagSpecification"));
    let v = backup_selection_tag(&backup, &storage, (SC_FILE, &bare), BACKUP_SELECTION_TAG);
    assert_eq!(rules(&v), ["storageclass-backup-tag"]);
    assert_eq!(v[0].address, "StorageClass gp3-tokyo");
    // A selection on another tag, and a records bucket without the tag.
    let other = Module::snippet(
        "modules/backup",
        r#"
resource "aws_backup_selection" "tagged" {
  name = "x"
  selection_tag {
    type  = "STRINGEQUALS"
    key   = "backup"
    value = "true"
  }
}
"#,
    );
    let untagged = Module::snippet(
        "modules/storage",
        r#"
resource "aws_s3_bucket" "records" {
  bucket = "records"
  tags   = merge({ "a" = "b" }, { "kenko:data" = "records" })
}
"#,
    );
    let v = backup_selection_tag(&other, &untagged, (SC_FILE, &sc), BACKUP_SELECTION_TAG);
    assert_eq!(rules(&v), ["backup-selection-tag", "records-backup-tag"]);
    // No selection at all.
    let none = Module::snippet("modules/backup", "");
    let v = backup_selection_tag(&none, &storage, (SC_FILE, &sc), BACKUP_SELECTION_TAG);
    assert_eq!(rules(&v), ["backup-selection-tag"]);
}
