//! How Kubernetes user names and AWS principals are sorted into actor kinds (patterns with `*`).

/// How Kubernetes user names and AWS principals are sorted into [`ActorKind`]s. Patterns are
/// [`glob`]s: `*` anywhere stands for any run of characters.
#[derive(Clone, Debug)]
pub struct Principals {
    /// Kubernetes users that are workloads. Default `system:*` (service accounts, nodes,
    /// control-plane components).
    pub k8s_service: Vec<String>,
    /// Kubernetes users that are the provider's own components. Default `eks:*`, `aws:*`.
    pub k8s_provider: Vec<String>,
    /// IAM roles (assumed-role name) or IAM users that are the city's workloads. Default
    /// `kenko-app`, `kenko-agent`, `kenko-controller`, `AWSServiceRoleFor*` (service-linked
    /// roles) and `AWSBackupDefaultServiceRole`.
    pub aws_service_roles: Vec<String>,
    /// IAM roles through which the provider or the state reaches in. Checked before
    /// `aws_service_roles`. Default `OrganizationAccountAccessRole` (the organisation's
    /// management account: the Government Cloud administration) and
    /// `AWSServiceRoleForSupport`.
    pub aws_provider_roles: Vec<String>,
    /// AWS services (`invokedBy` of an `AWSService` identity) that act for the city. Any other
    /// AWS service principal is the provider. Default: backup, S3 (replication), CloudTrail,
    /// CloudWatch Logs, EC2, EKS, RDS, Elastic Load Balancing.
    pub aws_services: Vec<String>,
    /// The city's AWS accounts. A principal of any other account is the provider. Empty (the
    /// default) turns the check off.
    pub home_accounts: Vec<String>,
}

impl Default for Principals {
    fn default() -> Self {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
        Principals {
            k8s_service: v(&["system:*"]),
            k8s_provider: v(&["eks:*", "aws:*"]),
            aws_service_roles: v(&[
                "kenko-app",
                "kenko-agent",
                "kenko-controller",
                "AWSServiceRoleFor*",
                "AWSBackupDefaultServiceRole",
            ]),
            aws_provider_roles: v(&["OrganizationAccountAccessRole", "AWSServiceRoleForSupport"]),
            aws_services: v(&[
                "backup.amazonaws.com",
                "s3.amazonaws.com",
                "cloudtrail.amazonaws.com",
                "logs.amazonaws.com",
                "ec2.amazonaws.com",
                "eks.amazonaws.com",
                "rds.amazonaws.com",
                "elasticloadbalancing.amazonaws.com",
            ]),
            home_accounts: Vec::new(),
        }
    }
}

/// Whether `name` matches one of the patterns ([`glob`]).
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| glob(p, name))
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters (none
/// included) anywhere in the pattern (`*-db-*` matches `hachioji-db-0`) and every other
/// character stands for itself. Linear in practice: one backtrack point, the last `*`.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and the name position it currently absorbs up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}
