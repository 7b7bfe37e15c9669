//! Condition types and the stable reasons shared by status conditions, Kubernetes Events and
//! metric labels (one name for one fact, wherever an operator meets it).

pub mod condition {
    pub const READY: &str = "Ready";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEGRADED: &str = "Degraded";
    pub const RESIDENCY_COMPLIANT: &str = "ResidencyCompliant";
    pub const BACKUP_CONFIGURED: &str = "BackupConfigured";
    pub const DECOMMISSIONING: &str = "Decommissioning";
    /// Whether the stack's intake (`NAME-intake`) takes its deliveries in.
    pub const INTAKE_HEALTHY: &str = "IntakeHealthy";
}

pub mod reason {
    /// Everything applied and available.
    pub const RECONCILED: &str = "Reconciled";
    /// Children applied; waiting for them to become available.
    pub const APPLYING: &str = "Applying";
    pub const SUSPENDED: &str = "Suspended";
    pub const RESIDENCY_OK: &str = "InJapan";
    pub const REGION_NOT_ALLOWED: &str = "RegionNotAllowed";
    pub const BACKUP_SAME_REGION: &str = "BackupInSameRegion";
    pub const RETENTION_TOO_SHORT: &str = "RetentionTooShort";
    pub const STORAGE_CLASS_OUTSIDE_JAPAN: &str = "StorageClassOutsideJapan";
    pub const STORAGE_CLASS_NOT_ALLOWED: &str = "StorageClassNotAllowed";
    pub const STORAGE_CLASS_MISSING: &str = "StorageClassMissing";
    /// The last account audit found a copy or a path outside the rules (a bucket abroad, a
    /// replication or backup copy leaving Japan, an internet gateway...).
    pub const AUDIT_VIOLATION: &str = "AuditFoundViolation";
    /// The last account audit could not check everything (a region or API did not answer).
    pub const AUDIT_INCOMPLETE: &str = "AuditIncomplete";
    /// BackupConfigured: the last account audit (`backup.coverage`) found every data location
    /// of the stack selected by a backup plan, with a recent recovery point copied to the
    /// other Japanese region.
    pub const BACKUP_COVERED: &str = "BackupCovered";
    /// A data location no backup plan selects (or no resource was found for it at all, such
    /// as a volume without the CSI driver's claim tags).
    pub const NO_BACKUP_PLAN: &str = "NoBackupPlan";
    /// A selected location without a completed recovery point newer than its plan's schedule
    /// plus a margin.
    pub const NO_RECENT_RECOVERY_POINT: &str = "NoRecentRecoveryPoint";
    /// A recent recovery point that has no copy in the other Japanese region.
    pub const NO_CROSS_REGION_COPY: &str = "NoCrossRegionCopy";
    /// The reasons the account audit reports for a stack's backups (anything else it says is
    /// not believed); `AUDIT_INCOMPLETE` is also the controller's own when there is no
    /// recent audit of the stack.
    pub const BACKUP_REPORTED: &[&str] = &[
        BACKUP_COVERED,
        NO_BACKUP_PLAN,
        NO_RECENT_RECOVERY_POINT,
        NO_CROSS_REGION_COPY,
        AUDIT_INCOMPLETE,
    ];
    pub const APPLY_FAILED: &str = "ApplyFailed";
    pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
    pub const ERASING: &str = "Erasing";
    pub const CERTIFIED: &str = "Certified";
    pub const ERASURE_FAILED: &str = "ErasureFailed";
    pub const ERASURE_BLOCKED: &str = "ErasureBlocked";
    pub const NOT_DECOMMISSIONING: &str = "NotDecommissioning";
    pub const SELF_APPROVAL: &str = "SelfApprovalRefused";
    /// A stack's egress (endpoints or external database) names a range outside the private
    /// ones: nothing is applied.
    pub const EGRESS_NOT_PRIVATE: &str = "EgressNotPrivate";
    /// The spec names a data location that is not a valid erasure target (admitted under an
    /// older CRD): the stack is kept, nothing is requested.
    pub const LOCATIONS_INVALID: &str = "DataLocationsInvalid";
    /// Another stack uses one of this stack's data locations (a bucket or a KMS key): erasing
    /// it would destroy that stack's data, so the decommissioning waits.
    pub const LOCATION_SHARED: &str = "LocationShared";
    /// No trusted signer is registered (the ConfigMap kenko-erasure-signers), so no
    /// certificate can release a stack.
    pub const NO_TRUSTED_SIGNERS: &str = "NoTrustedSigners";

    /// IntakeHealthy: the last round went through.
    pub const INTAKE_OK: &str = "IntakeOk";
    /// The stack's store has no resident register yet (every row would be returned).
    pub const REGISTER_MISSING: &str = "RegisterMissing";
    pub const DATABASE_UNREACHABLE: &str = "DatabaseUnreachable";
    pub const INBOX_UNREACHABLE: &str = "InboxUnreachable";
    /// More than a fifth of the rows taken since the intake started were returned.
    pub const HIGH_RETURN_RATE: &str = "HighReturnRate";
    /// A round failed for another reason (the message says which).
    pub const INTAKE_FAILING: &str = "IntakeFailing";
    /// The controller could not read the intake's status (not running, not ready, or its
    /// answer was not a status).
    pub const INTAKE_NOT_REPORTING: &str = "IntakeNotReporting";
    /// The intake has not finished a round yet.
    pub const INTAKE_STARTING: &str = "IntakeStarting";
    /// The reasons the intake itself reports (anything else it says is not believed).
    pub const INTAKE_REPORTED: &[&str] = &[
        INTAKE_OK,
        INTAKE_STARTING,
        REGISTER_MISSING,
        DATABASE_UNREACHABLE,
        INBOX_UNREACHABLE,
        HIGH_RETURN_RATE,
        INTAKE_FAILING,
    ];

    /// The reasons an operator acts on (each has a runbook; a test checks it).
    pub const PROBLEMS: &[&str] = &[
        REGISTER_MISSING,
        DATABASE_UNREACHABLE,
        INBOX_UNREACHABLE,
        HIGH_RETURN_RATE,
        INTAKE_FAILING,
        INTAKE_NOT_REPORTING,
        REGION_NOT_ALLOWED,
        BACKUP_SAME_REGION,
        RETENTION_TOO_SHORT,
        STORAGE_CLASS_OUTSIDE_JAPAN,
        STORAGE_CLASS_NOT_ALLOWED,
        STORAGE_CLASS_MISSING,
        AUDIT_VIOLATION,
        AUDIT_INCOMPLETE,
        NO_BACKUP_PLAN,
        NO_RECENT_RECOVERY_POINT,
        NO_CROSS_REGION_COPY,
        APPLY_FAILED,
        AWAITING_APPROVAL,
        ERASING,
        ERASURE_FAILED,
        ERASURE_BLOCKED,
        SELF_APPROVAL,
        EGRESS_NOT_PRIVATE,
        LOCATIONS_INVALID,
        LOCATION_SHARED,
        NO_TRUSTED_SIGNERS,
    ];
}
