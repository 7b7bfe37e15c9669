//! kenko's node agent as a library: the binary (`main.rs`) only parses flags and calls in here,
//! so the end-to-end tests and benchmarks drive the same code.

#![warn(unreachable_pub)]

pub mod access;
#[cfg(feature = "cloud")]
pub mod account_audit;
pub mod certs;
#[cfg(feature = "cloud")]
pub mod cluster;
pub mod config;
pub mod crashpoint;
pub mod crypto;
pub mod demo;
pub mod erase;
pub mod evidence;
pub mod fsutil;
pub mod incident;
pub mod intake;
pub mod keysource;
pub mod logfmt;
pub mod metrics;
pub mod register;
pub mod retention;
pub mod shutdown;
pub mod telemetry;

/// What a build without the `cloud` feature answers when asked for something that needs AWS or
/// the cluster (an S3 inbox, a KMS key, a cloud erasure target, `run --cluster`, the residency
/// audit): what was asked and how to get a build that does it. Never silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} needs AWS or Kubernetes, and this kenko-agent was built without them: use the kenko-agent image, or build with `cargo build --release -p kenko-agent --features cloud`")]
pub struct NoCloud {
    pub what: String,
}

impl NoCloud {
    pub fn new(what: impl Into<String>) -> NoCloud {
        NoCloud { what: what.into() }
    }

    pub fn reason(&self) -> &'static str {
        "cloud_not_built"
    }
}

/// Every `reason()` an operator can meet from the agent's errors (the label of
/// `kenko_intake_failures_total`, the `[reason: ...]` of a failed command). Each must be
/// explained in `runbooks/` (checked by `tests/runbooks.rs`).
pub const FAILURE_REASONS: &[&str] = &[
    "io_failed",
    "cloud_not_built",
    "file_changed",
    "inbox_symlink",
    "inbox_not_regular_file",
    "inbox_hard_link",
    "inbox_orphan_marker",
    "inbox_name_not_utf8",
    "store_unavailable",
    "store_migration_failed",
    "store_query_failed",
    "store_url_invalid",
    "register_changed",
    "register_empty",
    "register_shrinks",
    "register_unreadable",
    "register_undecodable",
    "register_bad_header",
    "register_bad_row",
    "register_delta_gap",
    "register_delta_raced",
    "retention_io_failed",
    "retention_plan_invalid",
    "incident_alert_unknown",
    "incident_alert_file_unreadable",
    "incident_file_unreadable",
    "incident_file_invalid",
    "incident_output_failed",
    "evidence_period_invalid",
    "evidence_source_unreadable",
    "evidence_residency_invalid",
    "evidence_ledger_unavailable",
    "evidence_output_failed",
    "evidence_public_key_invalid",
    "evidence_unreadable",
    "evidence_manifest_invalid",
    "evidence_signature_invalid",
    "evidence_wrong_signer",
    "evidence_tampered",
    "evidence_file_missing",
    "evidence_file_added",
    "datakey_unreadable",
    "datakey_malformed",
    "datakey_permissions",
    "datakey_mismatch",
    "datakey_unavailable",
    "datakey_missing",
    "master_invalid",
    "master_syntax",
    "master_empty",
    "config_invalid",
    "inbox_watch_failed",
    "inbox_unreachable",
    "inbox_delivery_vanished",
    "retry_not_returned",
    "retry_already_loaded",
    "certificate_unreadable",
    "certificate_public_key_invalid",
    "certificate_malformed",
    "certificate_not_canonical",
    "certificate_unknown_format",
    "certificate_unsigned",
    "certificate_bad_signature",
    "certificate_wrong_signer",
    "certificate_bad_validation",
    "certificate_failed_verification",
    "certificate_chain_broken",
    "certificate_byte_order_mark",
    "certificate_not_utf8",
    "certificate_escaped_character",
    "certificate_duplicate_key",
    "certificate_control_character",
    "certificate_bidi_control",
    "certificate_invisible_character",
    "certificate_not_nfc",
    "certificate_non_ascii_identifier",
    "render_font_missing",
    "render_font_invalid",
    "render_font_missing_glyphs",
    "render_pdf_failed",
    "erase_target_unsupported",
    "erase_method_unsupported",
    "erase_io_failed",
    "erase_verification_failed",
    "erase_checkpoint_mismatch",
    "erase_checkpoint_tampered",
    "erase_checkpoint_missing",
    "erase_target_changed",
    "erase_copy_on_write",
    "erase_device_in_use",
    "erase_purge_unsupported",
    "erase_stack_unnamed",
    "erase_volume_in_use",
    "erase_pvc_missing",
    "erase_pvc_unbound",
    "erase_pv_missing",
    "erase_volume_no_node",
    "erase_volume_unsupported",
    "erase_no_node",
    "erase_shared_key_refused",
    "erase_blocked",
    "certificate_too_large",
    "cluster_api_failed",
    "cluster_task_failed",
    "aws_api_failed",
    "certificate_nothing_to_finalize",
    "certificate_finalize_pending",
    "erase_deletion_cancelled",
    "access_not_configured",
    "access_input_failed",
    "access_checkpoint_invalid",
    "access_checkpoint_failed",
    "access_chain_failed",
    "access_alert_output_failed",
    "access_alertmanager_failed",
    "access_events_failed",
    "access_cloudtrail_s3_failed",
    "access_cloudwatch_failed",
    "access_log_not_json",
    "access_log_invalid_field",
    "access_log_mynumber_in_subject",
    "access_log_line_too_long",
    "chain_broken",
    "chain_day_removed",
    "chain_digest_altered",
    "chain_digest_mismatch",
    "chain_record_altered",
    "chain_record_out_of_order",
    "chain_records_removed",
    "chain_tail_removed",
    "segment_changed",
    "segment_removed",
    "segment_reordered",
    "roster_invalid",
    "cloudtrail_file_unreadable",
    "cloudtrail_file_too_large",
    "audit_log_tampered",
];
