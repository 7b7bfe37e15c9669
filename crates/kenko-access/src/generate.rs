//! A deterministic (seeded) month of a city's activity, with anomalies injected at known
//! places, and the scoring of alerts against that ground truth.
//!
//! The city: residents in districts (地区), staff in four roles with caseloads by district and
//! registered terminals, working office hours on business days (a few arrive early, a few stay
//! late, some are on leave, clerks register the month's intake in its first days), plus the
//! cluster's and the AWS account's normal traffic: service accounts, the health application's
//! role reading and writing the records bucket, nightly backups, operators looking at pods and
//! logging in to the console. Every value is synthetic.
//!
//! Three outputs: the health system's access log (JSON lines, `docs/access-log-format.md`), the
//! Kubernetes audit log (`audit.k8s.io/v1` events, one per line) and CloudTrail records (one
//! per line). Each is in time order. The generator writes; it does nothing else.

use std::io::{self, Write};

use crate::calendar::{civil_from_days, Calendar, Date, JST_OFFSET_SECS};
use crate::detect::Alert;
use crate::roster::{Person, PersonKind, Roster, Scope, Status, Terminals};
use crate::Rule;

/// Changes whenever the same spec would generate different output (benchmarks cache by it).
pub const VERSION: u32 = 3;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Spec {
    pub seed: u64,
    pub first_day: Date,
    pub days: u32,
    pub residents: u32,
    pub districts: u32,
    /// Active staff of the health department.
    pub staff: u32,
    /// Retired staff still in the roster.
    pub retired: u32,
    /// People of the cloud operations contractor (one more, retired, is added).
    pub operators: u32,
    /// Mean health-system events of a full-time staff member on a working day.
    pub events_per_staff_day: u32,
    /// Inject the anomalies.
    pub inject: bool,
}

impl Spec {
    /// A month (November 2026) of a 340,000-resident city with 300 staff: about 20 million
    /// health-system events (4,000 a working day each: every screen and call is logged) and
    /// 0.4 million Kubernetes and CloudTrail events.
    pub fn city(seed: u64) -> Spec {
        Spec {
            seed,
            first_day: Date::new(2026, 11, 1).expect("a valid date"),
            days: 30,
            residents: 340_000,
            districts: 13,
            staff: 300,
            retired: 12,
            operators: 12,
            events_per_staff_day: 4000,
            inject: true,
        }
    }

    /// The same month, small enough for a test (40 staff, 400 events a day each).
    pub fn small(seed: u64) -> Spec {
        Spec {
            residents: 20_000,
            staff: 40,
            retired: 3,
            operators: 8,
            events_per_staff_day: 400,
            ..Spec::city(seed)
        }
    }
}

/// One injected anomaly: the rule that must find it, rules that may also fire for the same
/// actor around it, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    pub rule: Rule,
    pub also: Vec<Rule>,
    pub actor: String,
    /// UTC epoch seconds.
    pub start: i64,
    pub end: i64,
    pub what: &'static str,
}

/// What was generated.
#[derive(Clone, Debug)]
pub struct Generated {
    pub roster: Roster,
    pub truth: Vec<Injected>,
    pub health_events: u64,
    pub k8s_events: u64,
    pub cloudtrail_events: u64,
    /// Staff (not operators) in the roster who work: the denominator of staff-days.
    pub staff: u32,
    pub days: u32,
}

impl Generated {
    /// Active staff × days.
    pub fn staff_days(&self) -> u64 {
        u64::from(self.staff) * u64::from(self.days)
    }
}

// ---------------------------------------------------------------------------------------------

/// SplitMix64: small, fast, and the same on every platform and version.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n.max(1))) >> 64) as u64
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }
    /// Exponential with the given mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }
    /// Geometric number of events (at least 1) with the given mean.
    fn geometric(&mut self, mean: f64) -> u32 {
        1 + self.exp(mean - 1.0).floor() as u32
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn sub_seed(seed: u64, a: u64, b: u64) -> u64 {
    mix(mix(seed ^ 0xA5A5_5A5A_1234_5678).wrapping_add(a.wrapping_mul(0x1000_0000_01B3)) ^ b)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Nurse,
    Clerk,
    Supervisor,
    Admin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Nurse => "public_health_nurse",
            Role::Clerk => "clerk",
            Role::Supervisor => "supervisor",
            Role::Admin => "system_admin",
        }
    }
    /// Share of the mean event rate.
    fn rate(self) -> f64 {
        match self {
            Role::Nurse | Role::Clerk => 1.0,
            Role::Supervisor => 0.25,
            Role::Admin => 0.3,
        }
    }
    /// Distinct residents an hour at an average pace (the log's verbosity, events per
    /// resident, follows from `events_per_staff_day`).
    fn residents_per_hour(self) -> f64 {
        match self {
            Role::Nurse => 35.0,
            Role::Clerk => 90.0,
            Role::Supervisor => 8.0,
            Role::Admin => 15.0,
        }
    }
}

/// A person who appears in the health log.
struct Actor {
    id: String,
    role: Role,
    /// Districts of the caseload; empty = all.
    districts: Vec<u32>,
    /// Indices into the terminal table.
    terminals: Vec<u16>,
    /// Personal speed.
    pace: f64,
}

const A_VIEW: u8 = 0;
const A_SEARCH: u8 = 1;
const A_UPDATE: u8 = 2;
const A_EXPORT: u8 = 3;
const A_PRINT: u8 = 4;
const A_LOGIN: u8 = 5;
const A_LOGIN_FAILED: u8 = 6;
const ACTIONS: [&str; 7] = [
    "view",
    "search",
    "update",
    "export",
    "print",
    "login",
    "login_failed",
];
const NONE: u32 = u32::MAX;

/// One health-system event before it is written.
#[derive(Clone, Copy)]
struct HEv {
    t_ms: i64,
    actor: u32,
    resident: u32,
    case: u32,
    records: u16,
    terminal: u16,
    action: u8,
    denied: bool,
}

struct World {
    spec: Spec,
    actors: Vec<Actor>,
    terminals: Vec<String>,
    /// Actor index of each operator (k8s/AWS people), and the retired one last.
    operators: Vec<String>,
    /// Health-log actors who are not staff: (id, role as the health system logs it).
    extra: Vec<(String, String)>,
    cal: Calendar,
}

impl World {
    fn token(&self, resident: u32) -> [u8; 17] {
        let h = mix(self.spec.seed ^ 0x7265_7369_6465_6e74 ^ u64::from(resident));
        let mut out = [b'r'; 17];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for i in 0..16 {
            out[1 + i] = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
        }
        out
    }

    fn district_of(&self, resident: u32) -> u32 {
        resident % self.spec.districts
    }

    /// A resident of a district.
    fn resident_in(&self, rng: &mut Rng, district: u32) -> u32 {
        let d = self.spec.districts;
        let per = self.spec.residents / d;
        district + d * rng.below(u64::from(per)) as u32
    }

    fn resident_for(&self, rng: &mut Rng, a: &Actor) -> u32 {
        if a.districts.is_empty() {
            rng.below(u64::from(self.spec.residents)) as u32
        } else {
            let d = a.districts[rng.below(a.districts.len() as u64) as usize];
            self.resident_in(rng, d)
        }
    }

    fn resident_outside(&self, rng: &mut Rng, a: &Actor) -> u32 {
        loop {
            let r = rng.below(u64::from(self.spec.residents)) as u32;
            if !a.districts.contains(&self.district_of(r)) {
                return r;
            }
        }
    }
}

fn build_world(spec: &Spec) -> (World, Vec<Person>) {
    let mut rng = Rng::new(sub_seed(spec.seed, 1, 0));
    let mut actors = Vec::new();
    let mut terminals = Vec::new();
    let mut people = Vec::new();
    let n = spec.staff + spec.retired;
    for i in 0..n {
        let num = i + 1;
        let q = (f64::from(i) + 0.5) / f64::from(spec.staff.max(1));
        let role = match q {
            _ if i >= spec.staff => Role::Clerk,
            q if q < 0.45 => Role::Nurse,
            q if q < 0.85 => Role::Clerk,
            q if q < 0.93 => Role::Supervisor,
            _ => Role::Admin,
        };
        let districts = match role {
            Role::Nurse => vec![i % spec.districts],
            Role::Clerk => vec![i % spec.districts, (i + 5) % spec.districts],
            Role::Supervisor | Role::Admin => vec![],
        };
        let mut terms = vec![terminals.len() as u16];
        terminals.push(format!("T{num:04}"));
        if role == Role::Nurse && rng.chance(0.4) {
            terms.push(terminals.len() as u16);
            terminals.push(format!("M{num:04}"));
        }
        let retired = i >= spec.staff;
        let id = format!("S{num:04}");
        people.push(Person {
            id: id.clone(),
            role: role.name().to_string(),
            kind: PersonKind::Staff,
            status: if retired {
                Status::Retired
            } else {
                Status::Active
            },
            retired_on: retired
                .then(|| Date::from_days(spec.first_day.days() - 10 - i64::from(i % 20))),
            scope: if districts.is_empty() {
                Scope::All
            } else {
                Scope::Districts(districts.iter().map(|d| district_name(*d).into()).collect())
            },
            terminals: Terminals::Listed(
                terms
                    .iter()
                    .map(|&t| terminals[t as usize].as_str().into())
                    .collect(),
            ),
        });
        actors.push(Actor {
            id,
            role,
            districts,
            terminals: terms,
            pace: rng.uniform(0.6, 1.5),
        });
    }
    let mut operators = Vec::new();
    for i in 0..=spec.operators {
        let id = format!("OP{:03}", i + 1);
        let retired = i == spec.operators;
        people.push(Person {
            id: id.clone(),
            role: "operator".into(),
            kind: PersonKind::Operator,
            status: if retired {
                Status::Retired
            } else {
                Status::Active
            },
            retired_on: None,
            scope: Scope::Districts(vec![]),
            terminals: Terminals::Any,
        });
        operators.push(id);
    }
    let world = World {
        spec: spec.clone(),
        actors,
        terminals,
        extra: vec![
            ("S9001".into(), "clerk".into()),
            ("S9002".into(), "clerk".into()),
            (
                operators[5.min(operators.len() - 2)].clone(),
                "operator".into(),
            ),
        ],
        operators,
        cal: Calendar::default(),
    };
    (world, people)
}

fn district_name(d: u32) -> String {
    format!("D{:02}", d + 1)
}

/// One staff member's working day.
fn staff_day(
    w: &World,
    a_idx: u32,
    day: i64,
    business_index: usize,
    out: &mut Vec<HEv>,
    case_seq: &mut u32,
) {
    let a = &w.actors[a_idx as usize];
    let mut rng = Rng::new(sub_seed(w.spec.seed, 2 + u64::from(a_idx), day as u64));
    if !rng.chance(0.93) {
        return; // on leave
    }
    let midnight = day * 86_400 - JST_OFFSET_SECS;
    let arrive = midnight + 8 * 3600 + 10 * 60 + rng.range(0, 30 * 60);
    let leave = if rng.chance(0.07) {
        midnight + 18 * 3600 + rng.range(0, 60 * 60)
    } else {
        midnight + 17 * 3600 + 15 * 60 + rng.range(-15 * 60, 15 * 60)
    };
    let intake = a.role == Role::Clerk && (1..=3).contains(&business_index);
    let day_factor = rng.uniform(0.85, 1.15) * if intake { 1.2 } else { 1.0 };
    let base_per_hour = f64::from(w.spec.events_per_staff_day) / 8.25 * a.role.rate();
    let per_hour = base_per_hour * a.pace * day_factor;
    // Events per resident: the same at any pace, so distinct residents scale with the pace.
    let rph = a.role.residents_per_hour() * if intake { 1.25 } else { 1.0 };
    let case_len = (base_per_hour / rph).max(1.5);
    // About 30 prints a day, and 3 exports for clerks, whatever the log's verbosity.
    let per_day = f64::from(w.spec.events_per_staff_day.max(100));
    let p_print = 30.0 / per_day;
    let p_export = if a.role == Role::Clerk {
        3.0 / per_day
    } else {
        0.0
    };
    let term = a.terminals[if a.terminals.len() > 1 && rng.chance(0.3) {
        1
    } else {
        0
    }];
    let mut t_ms = arrive * 1000;
    if rng.chance(0.03) {
        out.push(HEv {
            t_ms: t_ms - 20_000,
            actor: a_idx,
            resident: NONE,
            case: NONE,
            records: 0,
            terminal: term,
            action: A_LOGIN_FAILED,
            denied: true,
        });
    }
    out.push(HEv {
        t_ms,
        actor: a_idx,
        resident: NONE,
        case: NONE,
        records: 0,
        terminal: term,
        action: A_LOGIN,
        denied: false,
    });
    let (mut resident, mut case, mut left) = (NONE, NONE, 0u32);
    loop {
        let local = (t_ms / 1000 - midnight) / 60;
        let lunch = (12 * 60..13 * 60).contains(&local);
        let rate = if lunch { per_hour * 0.3 } else { per_hour };
        t_ms += (rng.exp(3_600_000.0 / rate.max(1.0)) as i64).max(1);
        if t_ms >= leave * 1000 {
            break;
        }
        if left == 0 {
            let outside = !a.districts.is_empty() && rng.chance(0.03);
            resident = if outside {
                w.resident_outside(&mut rng, a)
            } else {
                w.resident_for(&mut rng, a)
            };
            case = if outside || rng.chance(0.6) {
                *case_seq += 1;
                *case_seq
            } else {
                NONE
            };
            left = rng.geometric(case_len);
        }
        left -= 1;
        let r = rng.f64();
        let (action, subject, records) = if r < 0.15 {
            (A_SEARCH, NONE, 1 + rng.below(20) as u16)
        } else if r < 0.27 {
            (A_UPDATE, resident, 1)
        } else if r < 0.27 + p_print {
            (A_PRINT, resident, 1 + rng.below(5) as u16)
        } else if r < 0.27 + p_print + p_export {
            (A_EXPORT, NONE, 10 + rng.below(91) as u16)
        } else {
            (A_VIEW, resident, 1)
        };
        out.push(HEv {
            t_ms,
            actor: a_idx,
            resident: subject,
            case: if subject == NONE { NONE } else { case },
            records,
            terminal: term,
            action,
            denied: rng.chance(0.001),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

fn push_num(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = 20;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = 20 - i;
    for _ in digits..width {
        buf.push(b'0');
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// `YYYY-MM-DDTHH:MM:SS.mmm` of epoch milliseconds shifted by `offset_secs`.
fn push_time(buf: &mut Vec<u8>, t_ms: i64, offset_secs: i64) {
    let local = t_ms + offset_secs * 1000;
    let secs = local.div_euclid(1000);
    let d = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400) as u64;
    push_num(buf, d.year as u64, 4);
    buf.push(b'-');
    push_num(buf, u64::from(d.month), 2);
    buf.push(b'-');
    push_num(buf, u64::from(d.day), 2);
    buf.push(b'T');
    push_num(buf, s / 3600, 2);
    buf.push(b':');
    push_num(buf, s / 60 % 60, 2);
    buf.push(b':');
    push_num(buf, s % 60, 2);
    buf.push(b'.');
    push_num(buf, local.rem_euclid(1000) as u64, 3);
}

fn utc(t_ms: i64) -> String {
    let mut b = Vec::with_capacity(32);
    push_time(&mut b, t_ms, 0);
    b.push(b'Z');
    String::from_utf8(b).expect("digits and punctuation")
}

fn health_line(w: &World, e: &HEv, buf: &mut Vec<u8>) {
    let a = &w.actors_or_extra(e.actor);
    buf.extend_from_slice(b"{\"time\":\"");
    push_time(buf, e.t_ms, JST_OFFSET_SECS);
    buf.extend_from_slice(b"+09:00\",\"staff_id\":\"");
    buf.extend_from_slice(a.0.as_bytes());
    buf.extend_from_slice(b"\",\"role\":\"");
    buf.extend_from_slice(a.1.as_bytes());
    buf.extend_from_slice(b"\",\"terminal\":\"");
    buf.extend_from_slice(w.terminals[e.terminal as usize].as_bytes());
    buf.extend_from_slice(b"\",\"action\":\"");
    buf.extend_from_slice(ACTIONS[e.action as usize].as_bytes());
    buf.push(b'"');
    if e.resident != NONE {
        buf.extend_from_slice(b",\"subject\":\"");
        buf.extend_from_slice(&w.token(e.resident));
        buf.extend_from_slice(b"\",\"district\":\"D");
        push_num(buf, u64::from(w.district_of(e.resident)) + 1, 2);
        buf.push(b'"');
    }
    buf.extend_from_slice(b",\"records\":");
    push_num(buf, u64::from(e.records), 1);
    if e.case != NONE {
        buf.extend_from_slice(b",\"case_ref\":\"C");
        push_num(buf, u64::from(e.case), 7);
        buf.push(b'"');
    }
    buf.extend_from_slice(if e.denied {
        b",\"outcome\":\"denied\"}\n".as_slice()
    } else {
        b",\"outcome\":\"success\"}\n".as_slice()
    });
}

impl World {
    /// (id, role) of an actor of the health log; indices past the staff are injected
    /// strangers and operators.
    fn actors_or_extra(&self, i: u32) -> (&str, &str) {
        let i = i as usize;
        if i < self.actors.len() {
            (&self.actors[i].id, self.actors[i].role.name())
        } else {
            let (id, role) = &self.extra[i - self.actors.len()];
            (id, role)
        }
    }
}

// Health-log actors who are not staff, in `World::extra`.
const X_UNKNOWN: usize = 0;
const X_UNKNOWN_FAILS: usize = 1;
const X_OPERATOR: usize = 2;

const ACCOUNT: &str = "111122223333";

/// The names kenko itself gives, so the defaults are tested against them: the HealthStack
/// `hachioji` in its namespace, the controller's children (`STACK-db-0`, `STACK-app-…`,
/// `STACK-db-credentials`, `STACK-data-key`: `kenko_api::StackNames`) and Terraform's records
/// bucket (`NAME-records-ACCOUNT-REGION`). The agent's tests check them against both.
pub const STACK_NAMESPACE: &str = "hachioji";
pub const DB_POD: &str = "hachioji-db-0";
pub const APP_POD: &str = "hachioji-app-7f9c5d";
pub const DB_SECRET: &str = "hachioji-db-credentials";
pub const DATA_KEY_SECRET: &str = "hachioji-data-key";
pub const RECORDS_BUCKET: &str = "kenko-prod-records-111122223333-ap-northeast-1";

struct CloudEv {
    t_ms: i64,
    line: String,
}

#[allow(clippy::too_many_arguments)]
fn k8s_line(
    t_ms: i64,
    user: &str,
    groups: &str,
    verb: &str,
    resource: &str,
    subresource: Option<&str>,
    api_group: &str,
    ns: &str,
    name: Option<&str>,
    code: u16,
    audit_id: u64,
) -> CloudEv {
    let mut obj = format!("{{\"resource\":\"{resource}\",\"namespace\":\"{ns}\"");
    if let Some(n) = name {
        obj.push_str(&format!(",\"name\":\"{n}\""));
    }
    if let Some(s) = subresource {
        obj.push_str(&format!(",\"subresource\":\"{s}\""));
    }
    if !api_group.is_empty() {
        obj.push_str(&format!(",\"apiGroup\":\"{api_group}\""));
    }
    obj.push_str(",\"apiVersion\":\"v1\"}");
    let uri = format!(
        "/apis/{}/namespaces/{ns}/{resource}{}",
        if api_group.is_empty() {
            "v1"
        } else {
            api_group
        },
        name.map(|n| format!("/{n}")).unwrap_or_default()
    );
    let line = format!(
        "{{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"Metadata\",\"auditID\":\"{audit_id:016x}\",\"stage\":\"ResponseComplete\",\"requestURI\":\"{uri}\",\"verb\":\"{verb}\",\"user\":{{\"username\":\"{user}\",\"groups\":[{groups}]}},\"sourceIPs\":[\"10.20.0.{}\"],\"userAgent\":\"kubectl/v1.33.0\",\"objectRef\":{obj},\"responseStatus\":{{\"metadata\":{{}},\"code\":{code}}},\"requestReceivedTimestamp\":\"{}000Z\",\"stageTimestamp\":\"{}000Z\",\"annotations\":{{\"authorization.k8s.io/decision\":\"allow\",\"authorization.k8s.io/reason\":\"\"}}}}\n",
        audit_id % 200 + 10,
        utc(t_ms).trim_end_matches('Z'),
        utc(t_ms + 7).trim_end_matches('Z'),
    );
    CloudEv { t_ms, line }
}

/// `identity` is the userIdentity object's JSON.
#[allow(clippy::too_many_arguments)]
fn ct_line(
    t_ms: i64,
    identity: &str,
    source: &str,
    name: &str,
    params: &str,
    response: &str,
    resources: &str,
    id: u64,
) -> CloudEv {
    let category = if source == "s3.amazonaws.com" && matches!(name, "GetObject" | "PutObject") {
        "Data"
    } else {
        "Management"
    };
    let line = format!(
        "{{\"eventVersion\":\"1.09\",\"userIdentity\":{identity},\"eventTime\":\"{}Z\",\"eventSource\":\"{source}\",\"eventName\":\"{name}\",\"awsRegion\":\"ap-northeast-1\",\"sourceIPAddress\":\"10.0.{}.{}\",\"userAgent\":\"aws-sdk-rust/1.3\",\"requestParameters\":{params},\"responseElements\":{response},\"requestID\":\"{id:016X}\",\"eventID\":\"{:016x}\",\"readOnly\":{},\"resources\":{resources},\"eventType\":\"AwsApiCall\",\"managementEvent\":{},\"recipientAccountId\":\"{ACCOUNT}\",\"eventCategory\":\"{category}\"}}\n",
        &utc(t_ms)[..19],
        id % 4,
        id % 250 + 2,
        mix(id),
        name.starts_with("Get") || name.starts_with("Describe") || name.starts_with("List") || name == "Decrypt",
        category == "Management",
    );
    CloudEv { t_ms, line }
}

fn role_identity(role: &str, session: &str) -> String {
    format!(
        "{{\"type\":\"AssumedRole\",\"principalId\":\"AROAEXAMPLE:{session}\",\"arn\":\"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}\",\"accountId\":\"{ACCOUNT}\",\"sessionContext\":{{\"sessionIssuer\":{{\"type\":\"Role\",\"userName\":\"{role}\"}}}}}}"
    )
}

const OPERATOR_ROLE: &str = "AWSReservedSSO_KenkoOperator_5f1c2d";
const KEY_ARN: &str = "arn:aws:kms:ap-northeast-1:111122223333:key/0c1d2e3f-records";

fn s3_get(t_ms: i64, identity: &str, bucket: &str, n: u64) -> CloudEv {
    let key = format!("records/2026/obj-{:08x}", mix(n) as u32);
    ct_line(
        t_ms,
        identity,
        "s3.amazonaws.com",
        "GetObject",
        &format!("{{\"bucketName\":\"{bucket}\",\"key\":\"{key}\"}}"),
        "null",
        &format!("[{{\"type\":\"AWS::S3::Object\",\"ARN\":\"arn:aws:s3:::{bucket}/{key}\"}}]"),
        n,
    )
}

fn kms_decrypt(t_ms: i64, identity: &str, n: u64) -> CloudEv {
    ct_line(
        t_ms,
        identity,
        "kms.amazonaws.com",
        "Decrypt",
        "{\"encryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"}",
        "null",
        &format!(
            "[{{\"accountId\":\"{ACCOUNT}\",\"type\":\"AWS::KMS::Key\",\"ARN\":\"{KEY_ARN}\"}}]"
        ),
        n,
    )
}

/// The cluster's and the account's normal traffic of one day.
fn cloud_day(w: &World, day: i64, k8s: &mut Vec<CloudEv>, ct: &mut Vec<CloudEv>) {
    let mut rng = Rng::new(sub_seed(w.spec.seed, 9_999, day as u64));
    let midnight_ms = (day * 86_400 - JST_OFFSET_SECS) * 1000;
    let sa = "\"system:serviceaccounts\",\"system:serviceaccounts:kenko\",\"system:authenticated\"";
    let mut id = (day as u64) << 32;
    let mut next = || {
        id += 1;
        id
    };
    // Workloads, day and night.
    let mut t = midnight_ms + rng.range(0, 30_000);
    while t < midnight_ms + 86_400_000 {
        k8s.push(k8s_line(
            t,
            "system:serviceaccount:kenko:kenko-controller",
            sa,
            "list",
            "healthstacks",
            None,
            "kenko.example.jp",
            STACK_NAMESPACE,
            None,
            200,
            next(),
        ));
        if rng.chance(0.5) {
            k8s.push(k8s_line(
                t + 500,
                "system:serviceaccount:kenko:kenko-agent",
                sa,
                "get",
                "configmaps",
                None,
                "",
                STACK_NAMESPACE,
                Some("kenko-agent"),
                200,
                next(),
            ));
        }
        if rng.chance(0.05) {
            k8s.push(k8s_line(
                t + 900,
                "system:serviceaccount:kenko:kenko-app",
                sa,
                "get",
                "secrets",
                None,
                "",
                STACK_NAMESPACE,
                Some(DB_SECRET),
                200,
                next(),
            ));
        }
        t += 30_000 + rng.range(-3_000, 3_000);
    }
    // The provider's add-on manager keeps its cluster roles (not an alert: no person).
    k8s.push(k8s_line(
        midnight_ms + 3 * 3_600_000,
        "eks:addon-manager",
        "\"system:authenticated\"",
        "patch",
        "clusterroles",
        None,
        "rbac.authorization.k8s.io",
        "",
        Some("eks:podsecuritypolicy:privileged"),
        200,
        next(),
    ));
    // The application reads and writes records, decrypting with the records key.
    let business = w.cal.is_business_day(day);
    let app = role_identity("kenko-app", "kenko-app-session");
    let (from, to, step) = if business {
        (8 * 3600 + 1800, 18 * 3600, 25_000)
    } else {
        (9 * 3600, 10 * 3600, 120_000)
    };
    let mut t = midnight_ms + from * 1000;
    while t < midnight_ms + to * 1000 {
        let n = next();
        if rng.chance(0.7) {
            ct.push(s3_get(t, &app, RECORDS_BUCKET, n));
        } else {
            ct.push(ct_line(
                t,
                &app,
                "s3.amazonaws.com",
                "PutObject",
                "{\"bucketName\":\"kenko-prod-records-111122223333-ap-northeast-1\",\"key\":\"records/new\"}",
                "null",
                "[]",
                n,
            ));
        }
        if rng.chance(0.3) {
            ct.push(kms_decrypt(t + 40, &app, next()));
        }
        t += step + rng.range(-5_000, 5_000);
    }
    // Nightly backup at 02:00.
    let backup = role_identity("AWSBackupDefaultServiceRole", "AWSBackup-a1b2");
    for i in 0..200 {
        let t = midnight_ms + 2 * 3_600_000 + i * 4_000;
        ct.push(s3_get(t, &backup, RECORDS_BUCKET, next()));
        if i % 10 == 0 {
            ct.push(kms_decrypt(
                t + 100,
                "{\"type\":\"AWSService\",\"invokedBy\":\"backup.amazonaws.com\"}",
                next(),
            ));
        }
    }
    // Operators on business days: console login, a look at pods and logs, describe calls.
    if business {
        let og = "\"kenko:operators\",\"system:authenticated\"";
        for op in &w.operators[..w.operators.len() - 1] {
            if !rng.chance(0.6) {
                continue;
            }
            let start = midnight_ms + (9 * 3600 + rng.range(0, 8 * 3600)) * 1000;
            let ident = role_identity(OPERATOR_ROLE, op);
            ct.push(ct_line(
                start,
                &ident,
                "signin.amazonaws.com",
                "ConsoleLogin",
                "null",
                "{\"ConsoleLogin\":\"Success\"}",
                "[]",
                next(),
            ));
            for j in 0..rng.range(10, 40) {
                let t = start + j * rng.range(20_000, 120_000);
                match rng.below(5) {
                    0 => k8s.push(k8s_line(
                        t,
                        op,
                        og,
                        "get",
                        "pods",
                        Some("log"),
                        "",
                        STACK_NAMESPACE,
                        Some(APP_POD),
                        200,
                        next(),
                    )),
                    1 => k8s.push(k8s_line(
                        t,
                        op,
                        og,
                        "get",
                        "deployments",
                        None,
                        "apps",
                        STACK_NAMESPACE,
                        Some("hachioji-app"),
                        200,
                        next(),
                    )),
                    2 => ct.push(ct_line(
                        t,
                        &ident,
                        "ec2.amazonaws.com",
                        "DescribeInstances",
                        "{}",
                        "null",
                        "[]",
                        next(),
                    )),
                    3 if rng.chance(0.1) => k8s.push(k8s_line(
                        t,
                        op,
                        og,
                        "create",
                        "pods",
                        Some("exec"),
                        "",
                        STACK_NAMESPACE,
                        Some(APP_POD),
                        101,
                        next(),
                    )),
                    _ => k8s.push(k8s_line(
                        t,
                        op,
                        og,
                        "list",
                        "pods",
                        None,
                        "",
                        STACK_NAMESPACE,
                        None,
                        200,
                        next(),
                    )),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Generates the month into the three writers and returns the roster and the ground truth.
pub fn generate<H: Write, K: Write, C: Write>(
    spec: &Spec,
    health: &mut H,
    k8s: &mut K,
    cloudtrail: &mut C,
) -> io::Result<Generated> {
    let (mut w, people) = build_world(spec);
    let roster = Roster::from_people(people).expect("generated ids are unique");
    // Extra terminals of injections.
    let t_stranger = w.terminals.len() as u16;
    w.terminals.push("T9042".into());
    let t_unknown = w.terminals.len() as u16;
    w.terminals.push("T9001".into());
    let first = spec.first_day.days();
    let days: Vec<i64> = (0..i64::from(spec.days)).map(|i| first + i).collect();
    let business: Vec<i64> = days
        .iter()
        .copied()
        .filter(|&d| w.cal.is_business_day(d))
        .collect();
    let closed_weekday = days.iter().copied().find(|&d| w.cal.is_weekday_closure(d));
    let saturday = days
        .iter()
        .copied()
        .find(|&d| crate::calendar::weekday_of_days(d) == crate::calendar::Weekday::Sat);
    let plan = if spec.inject {
        plan(
            &w,
            &business,
            closed_weekday,
            saturday,
            t_stranger,
            t_unknown,
        )
    } else {
        Vec::new()
    };
    let mut truth = Vec::new();
    let (mut nh, mut nk, mut nc) = (0u64, 0u64, 0u64);
    let mut hev: Vec<HEv> = Vec::new();
    let mut kev: Vec<CloudEv> = Vec::new();
    let mut cev: Vec<CloudEv> = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut case_seq = 0u32;
    for &day in &days {
        hev.clear();
        kev.clear();
        cev.clear();
        if let Some(bi) = business.iter().position(|&b| b == day) {
            for a in 0..spec.staff {
                staff_day(&w, a, day, bi, &mut hev, &mut case_seq);
            }
        }
        cloud_day(&w, day, &mut kev, &mut cev);
        for p in plan.iter().filter(|p| p.day == day) {
            let mut rng = Rng::new(sub_seed(spec.seed, 77, p.start_ms as u64));
            truth.push(inject(
                &w,
                p,
                &mut rng,
                &mut hev,
                &mut kev,
                &mut cev,
                &mut case_seq,
            ));
        }
        hev.sort_by_key(|e| e.t_ms);
        kev.sort_by_key(|e| e.t_ms);
        cev.sort_by_key(|e| e.t_ms);
        for e in &hev {
            health_line(&w, e, &mut buf);
            if buf.len() > (1 << 20) - 512 {
                health.write_all(&buf)?;
                buf.clear();
            }
        }
        health.write_all(&buf)?;
        buf.clear();
        for e in &kev {
            k8s.write_all(e.line.as_bytes())?;
        }
        for e in &cev {
            cloudtrail.write_all(e.line.as_bytes())?;
        }
        nh += hev.len() as u64;
        nk += kev.len() as u64;
        nc += cev.len() as u64;
    }
    Ok(Generated {
        roster,
        truth,
        health_events: nh,
        k8s_events: nk,
        cloudtrail_events: nc,
        staff: spec.staff,
        days: spec.days,
    })
}

/// Where each anomaly goes.
struct Plan {
    kind: Kind,
    day: i64,
    start_ms: i64,
    actor: u32,
}

#[derive(Clone, Copy)]
enum Kind {
    BulkAbsolute,
    BulkBaseline,
    Export,
    PrintVolume,
    NightUse,
    ClosedDayUse,
    WeekendUse,
    RetiredUse,
    UnknownUse(u16),
    StrangeTerminal(u16),
    OutsideCaseload,
    FailedBurst,
    FailedBurstUnknown(u16),
    RbacChange,
    DbExec,
    SecretRead,
    IamChange,
    OperatorS3Read,
    StateKmsDecrypt,
    CrossAccountRead,
    OperatorInHealthApp,
    VolumeSpike,
    VolumeSpike2,
    RetiredOperator,
}

fn plan(
    w: &World,
    business: &[i64],
    closed_weekday: Option<i64>,
    saturday: Option<i64>,
    t_stranger: u16,
    t_unknown: u16,
) -> Vec<Plan> {
    let bd = |k: usize| business[k.min(business.len() - 1)];
    let at = |day: i64, h: i64, m: i64| (day * 86_400 - JST_OFFSET_SECS + h * 3600 + m * 60) * 1000;
    // Distinct staff by role, in a fixed order.
    let of = |role: Role, nth: usize| -> u32 {
        w.actors[..w.spec.staff as usize]
            .iter()
            .enumerate()
            .filter(|(_, a)| a.role == role)
            .nth(nth)
            .map(|(i, _)| i as u32)
            .expect("enough staff of each role")
    };
    let retired = w.spec.staff; // first retired staff member
    let op = |i: usize| i as u32;
    let mut v = vec![
        (Kind::BulkAbsolute, bd(3), 14, 0, of(Role::Nurse, 0)),
        (Kind::BulkBaseline, bd(12), 10, 0, of(Role::Supervisor, 0)),
        (Kind::Export, bd(5), 10, 0, of(Role::Clerk, 0)),
        (Kind::PrintVolume, bd(14), 15, 0, of(Role::Nurse, 1)),
        (Kind::NightUse, bd(8), 22, 10, of(Role::Nurse, 2)),
        (Kind::RetiredUse, bd(10), 10, 0, retired),
        (Kind::UnknownUse(t_unknown), bd(7), 15, 0, u32::MAX),
        (
            Kind::StrangeTerminal(t_stranger),
            bd(2),
            11,
            0,
            of(Role::Nurse, 3),
        ),
        (Kind::OutsideCaseload, bd(11), 14, 0, of(Role::Nurse, 4)),
        (Kind::FailedBurst, bd(15), 8, 40, of(Role::Clerk, 1)),
        (Kind::FailedBurstUnknown(t_unknown), bd(6), 12, 30, u32::MAX),
        (Kind::RbacChange, bd(1), 3, 0, op(0)),
        (Kind::DbExec, bd(9), 14, 0, op(1)),
        (Kind::SecretRead, bd(13), 11, 0, op(2)),
        (Kind::IamChange, bd(16), 16, 0, op(3)),
        (Kind::OperatorS3Read, bd(12), 13, 0, op(4)),
        (Kind::StateKmsDecrypt, bd(17), 10, 0, u32::MAX),
        (Kind::CrossAccountRead, bd(4), 2, 0, u32::MAX),
        (Kind::OperatorInHealthApp, bd(6), 11, 0, op(5)),
        (Kind::VolumeSpike, bd(11), 10, 0, of(Role::Nurse, 5)),
        (Kind::VolumeSpike2, bd(17), 14, 0, of(Role::Clerk, 2)),
        (
            Kind::RetiredOperator,
            bd(15),
            10,
            0,
            (w.operators.len() - 1) as u32,
        ),
    ];
    if let Some(d) = closed_weekday {
        v.push((Kind::ClosedDayUse, d, 10, 0, of(Role::Clerk, 3)));
    }
    if let Some(d) = saturday {
        v.push((Kind::WeekendUse, d, 9, 0, of(Role::Nurse, 6)));
    }
    v.into_iter()
        .map(|(kind, day, h, m, actor)| Plan {
            kind,
            day,
            start_ms: at(day, h, m),
            actor,
        })
        .collect()
}

/// Adds one anomaly's events and returns its ground truth.
fn inject(
    w: &World,
    p: &Plan,
    rng: &mut Rng,
    hev: &mut Vec<HEv>,
    kev: &mut Vec<CloudEv>,
    cev: &mut Vec<CloudEv>,
    case_seq: &mut u32,
) -> Injected {
    let t0 = p.start_ms;
    let ev = |t_ms: i64, actor: u32, action: u8, resident: u32, terminal: u16| HEv {
        t_ms,
        actor,
        resident,
        case: NONE,
        records: 1,
        terminal,
        action,
        denied: false,
    };
    // A session of `n` views spread over `minutes`, each of a new resident in the caseload.
    let session =
        |hev: &mut Vec<HEv>, actor: u32, n: u32, minutes: i64, terminal: u16, rng: &mut Rng| {
            hev.push(HEv {
                records: 0,
                ..ev(t0 - 30_000, actor, A_LOGIN, NONE, terminal)
            });
            for i in 0..n {
                let t = t0 + i64::from(i) * minutes * 60_000 / i64::from(n.max(1));
                let r = if (actor as usize) < w.actors.len() {
                    w.resident_for(rng, &w.actors[actor as usize])
                } else {
                    rng.below(u64::from(w.spec.residents)) as u32
                };
                hev.push(ev(t, actor, A_VIEW, r, terminal));
            }
            t0 + minutes * 60_000
        };
    let truth = |rule: Rule, also: &[Rule], actor: &str, end_ms: i64, what| Injected {
        rule,
        also: also.to_vec(),
        actor: actor.to_string(),
        start: t0 / 1000,
        end: end_ms / 1000,
        what,
    };
    let sid = |i: u32| w.actors[i as usize].id.clone();
    let term = |i: u32| w.actors[i as usize].terminals[0];
    let og = "\"kenko:operators\",\"system:authenticated\"";
    let opname = |i: u32| w.operators[i as usize].clone();
    let next_id = rng.next();
    match p.kind {
        Kind::BulkAbsolute => {
            let end = session(hev, p.actor, 700, 40, term(p.actor), rng);
            truth(
                Rule::BulkRead,
                &[Rule::VolumeAnomaly],
                &sid(p.actor),
                end,
                "700 residents in 40 minutes",
            )
        }
        Kind::BulkBaseline => {
            let end = session(hev, p.actor, 160, 50, term(p.actor), rng);
            truth(
                Rule::BulkRead,
                &[Rule::VolumeAnomaly],
                &sid(p.actor),
                end,
                "160 residents in an hour by a supervisor who reads about 10",
            )
        }
        Kind::Export => {
            for i in 0..3 {
                let mut e = ev(t0 + i * 600_000, p.actor, A_EXPORT, NONE, term(p.actor));
                e.records = 800;
                hev.push(e);
            }
            truth(
                Rule::ExportVolume,
                &[],
                &sid(p.actor),
                t0 + 1_200_000,
                "2,400 records exported",
            )
        }
        Kind::PrintVolume => {
            let a = &w.actors[p.actor as usize];
            for i in 0..120 {
                let r = w.resident_for(rng, a);
                let mut e = ev(t0 + i * 20_000, p.actor, A_PRINT, r, term(p.actor));
                e.records = 12;
                *case_seq += 1;
                e.case = *case_seq;
                hev.push(e);
            }
            truth(
                Rule::ExportVolume,
                &[Rule::VolumeAnomaly, Rule::BulkRead],
                &sid(p.actor),
                t0 + 2_400_000,
                "1,440 records of 120 residents printed",
            )
        }
        Kind::NightUse => {
            let end = session(hev, p.actor, 50, 30, term(p.actor), rng);
            truth(
                Rule::OffHours,
                &[Rule::VolumeAnomaly],
                &sid(p.actor),
                end,
                "use at 22:10 on a weekday",
            )
        }
        Kind::ClosedDayUse => {
            let end = session(hev, p.actor, 30, 30, term(p.actor), rng);
            truth(
                Rule::OffHours,
                &[Rule::VolumeAnomaly],
                &sid(p.actor),
                end,
                "use on a national holiday",
            )
        }
        Kind::WeekendUse => {
            let end = session(hev, p.actor, 25, 20, term(p.actor), rng);
            truth(
                Rule::OffHours,
                &[Rule::VolumeAnomaly],
                &sid(p.actor),
                end,
                "use on a Saturday",
            )
        }
        Kind::RetiredUse => {
            let end = session(hev, p.actor, 20, 15, term(p.actor), rng);
            truth(
                Rule::RetiredAccount,
                &[],
                &sid(p.actor),
                end,
                "a retired account logs in and reads",
            )
        }
        Kind::UnknownUse(t) => {
            let actor = (w.actors.len() + X_UNKNOWN) as u32;
            let end = session(hev, actor, 15, 10, t, rng);
            truth(
                Rule::UnknownAccount,
                &[],
                &w.extra[X_UNKNOWN].0,
                end,
                "an account HR never issued",
            )
        }
        Kind::StrangeTerminal(t) => {
            let end = session(hev, p.actor, 25, 20, t, rng);
            truth(
                Rule::UnregisteredTerminal,
                &[],
                &sid(p.actor),
                end,
                "a terminal registered to nobody",
            )
        }
        Kind::OutsideCaseload => {
            let a = &w.actors[p.actor as usize];
            for i in 0..15 {
                let r = w.resident_outside(rng, a);
                hev.push(ev(t0 + i * 60_000, p.actor, A_VIEW, r, term(p.actor)));
            }
            truth(
                Rule::OutsideCaseload,
                &[],
                &sid(p.actor),
                t0 + 900_000,
                "15 residents of other districts, no case",
            )
        }
        Kind::FailedBurst => {
            for i in 0..8 {
                let mut e = ev(
                    t0 + i * 30_000,
                    p.actor,
                    A_LOGIN_FAILED,
                    NONE,
                    term(p.actor),
                );
                e.records = 0;
                e.denied = true;
                hev.push(e);
            }
            truth(
                Rule::FailedLoginBurst,
                &[],
                &sid(p.actor),
                t0 + 240_000,
                "8 failed logins in 4 minutes",
            )
        }
        Kind::FailedBurstUnknown(t) => {
            let actor = (w.actors.len() + X_UNKNOWN_FAILS) as u32;
            for i in 0..10 {
                let mut e = ev(t0 + i * 30_000, actor, A_LOGIN_FAILED, NONE, t);
                e.records = 0;
                e.denied = true;
                hev.push(e);
            }
            truth(
                Rule::FailedLoginBurst,
                &[],
                &w.extra[X_UNKNOWN_FAILS].0,
                t0 + 300_000,
                "10 failed logins for an id that does not exist",
            )
        }
        Kind::RbacChange => {
            let u = opname(p.actor);
            kev.push(k8s_line(
                t0,
                &u,
                og,
                "create",
                "clusterrolebindings",
                None,
                "rbac.authorization.k8s.io",
                "",
                Some("tmp-admin"),
                201,
                next_id,
            ));
            truth(
                Rule::PrivilegeChange,
                &[],
                &u,
                t0,
                "a cluster-admin binding created at 03:00",
            )
        }
        Kind::DbExec => {
            let u = opname(p.actor);
            kev.push(k8s_line(
                t0,
                &u,
                og,
                "create",
                "pods",
                Some("exec"),
                "",
                STACK_NAMESPACE,
                Some(DB_POD),
                101,
                next_id,
            ));
            truth(
                Rule::PrivilegeChange,
                &[],
                &u,
                t0,
                "exec into the database pod",
            )
        }
        Kind::SecretRead => {
            let u = opname(p.actor);
            kev.push(k8s_line(
                t0,
                &u,
                og,
                "get",
                "secrets",
                None,
                "",
                STACK_NAMESPACE,
                Some(DATA_KEY_SECRET),
                200,
                next_id,
            ));
            truth(
                Rule::PrivilegeChange,
                &[],
                &u,
                t0,
                "a person read the data key secret",
            )
        }
        Kind::IamChange => {
            let u = opname(p.actor);
            cev.push(ct_line(t0, &role_identity(OPERATOR_ROLE, &u), "iam.amazonaws.com", "AttachRolePolicy", "{\"roleName\":\"kenko-app\",\"policyArn\":\"arn:aws:iam::aws:policy/AdministratorAccess\"}", "null", "[]", next_id));
            truth(
                Rule::PrivilegeChange,
                &[],
                &u,
                t0,
                "AdministratorAccess attached to the app role",
            )
        }
        Kind::OperatorS3Read => {
            let u = opname(p.actor);
            let ident = role_identity(OPERATOR_ROLE, &u);
            for i in 0..3 {
                cev.push(s3_get(
                    t0 + i * 5_000,
                    &ident,
                    RECORDS_BUCKET,
                    next_id + i as u64,
                ));
            }
            truth(
                Rule::ProviderDataRead,
                &[],
                &u,
                t0 + 10_000,
                "an operator downloaded records",
            )
        }
        Kind::StateKmsDecrypt => {
            let ident = role_identity("OrganizationAccountAccessRole", "ga-admin");
            for i in 0..2 {
                cev.push(kms_decrypt(t0 + i * 5_000, &ident, next_id + i as u64));
            }
            truth(
                Rule::ProviderDataRead,
                &[Rule::PrivilegeChange],
                "OrganizationAccountAccessRole/ga-admin",
                t0 + 5_000,
                "the organisation's admin role decrypted with the records key",
            )
        }
        Kind::CrossAccountRead => {
            let ident = "{\"type\":\"AWSAccount\",\"principalId\":\"AIDAEXAMPLE\",\"accountId\":\"999988887777\"}";
            for i in 0..5 {
                cev.push(s3_get(
                    t0 + i * 2_000,
                    ident,
                    RECORDS_BUCKET,
                    next_id + i as u64,
                ));
            }
            truth(
                Rule::ProviderDataRead,
                &[],
                "account:999988887777",
                t0 + 8_000,
                "another account read the records bucket",
            )
        }
        Kind::OperatorInHealthApp => {
            // The operator signs in to the health system with their own id.
            let idx = (w.actors.len() + X_OPERATOR) as u32;
            let end = session(hev, idx, 10, 10, 0, rng);
            truth(
                Rule::ProviderDataRead,
                &[Rule::OutsideCaseload, Rule::UnregisteredTerminal],
                &w.extra[X_OPERATOR].0,
                end,
                "a cloud operator used the health system",
            )
        }
        Kind::VolumeSpike | Kind::VolumeSpike2 => {
            let a = &w.actors[p.actor as usize];
            let per_hour = f64::from(w.spec.events_per_staff_day) / 8.25 * a.role.rate() * a.pace;
            let n = (per_hour * 4.0) as i64;
            let residents: Vec<u32> = (0..5).map(|_| w.resident_for(rng, a)).collect();
            *case_seq += 1;
            for i in 0..n {
                let mut e = ev(
                    t0 + i * 3_000_000 / n,
                    p.actor,
                    A_VIEW,
                    residents[(i % 5) as usize],
                    term(p.actor),
                );
                e.case = *case_seq;
                hev.push(e);
            }
            truth(
                Rule::VolumeAnomaly,
                &[],
                &sid(p.actor),
                t0 + 3_600_000,
                "four times the usual hourly volume on five residents",
            )
        }
        Kind::RetiredOperator => {
            let u = opname(p.actor);
            kev.push(k8s_line(
                t0,
                &u,
                og,
                "list",
                "pods",
                None,
                "",
                STACK_NAMESPACE,
                None,
                200,
                next_id,
            ));
            truth(
                Rule::RetiredAccount,
                &[],
                &u,
                t0,
                "a retired operator used the cluster",
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scoring

/// Precision and recall of one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleScore {
    pub rule: Rule,
    /// Anomalies injected for this rule.
    pub injected: u32,
    /// ... of which an alert of this rule found.
    pub found: u32,
    /// Alerts of this rule.
    pub alerts: u32,
    /// ... that match an injected anomaly (its rule or an allowed companion).
    pub true_alerts: u32,
}

impl RuleScore {
    /// 1.0 when there were no alerts.
    pub fn precision(&self) -> f64 {
        if self.alerts == 0 {
            1.0
        } else {
            f64::from(self.true_alerts) / f64::from(self.alerts)
        }
    }

    /// 1.0 when nothing was injected.
    pub fn recall(&self) -> f64 {
        if self.injected == 0 {
            1.0
        } else {
            f64::from(self.found) / f64::from(self.injected)
        }
    }
}

/// Alerts against the ground truth.
#[derive(Clone, Debug)]
pub struct Score {
    pub per_rule: Vec<RuleScore>,
    /// Alerts matching no injected anomaly.
    pub false_alerts: Vec<Alert>,
    /// Injected anomalies no alert of their rule found.
    pub missed: Vec<Injected>,
}

/// Slack around an injected anomaly's window, seconds.
pub const MATCH_SLACK_SECS: i64 = 3600;

fn overlaps(a: &Alert, i: &Injected) -> bool {
    a.actor == i.actor
        && a.window_start <= i.end + MATCH_SLACK_SECS
        && a.window_end >= i.start - MATCH_SLACK_SECS
}

/// Scores alerts (final states, one per group) against the truth.
pub fn score(truth: &[Injected], alerts: &[Alert]) -> Score {
    let mut per_rule: Vec<RuleScore> = Rule::ALL
        .iter()
        .map(|&rule| RuleScore {
            rule,
            injected: 0,
            found: 0,
            alerts: 0,
            true_alerts: 0,
        })
        .collect();
    let mut missed = Vec::new();
    for i in truth {
        let s = &mut per_rule[i.rule as usize];
        s.injected += 1;
        if alerts.iter().any(|a| a.rule == i.rule && overlaps(a, i)) {
            s.found += 1;
        } else {
            missed.push(i.clone());
        }
    }
    let mut false_alerts = Vec::new();
    for a in alerts {
        let s = &mut per_rule[a.rule as usize];
        s.alerts += 1;
        let ok = truth
            .iter()
            .any(|i| (i.rule == a.rule || i.also.contains(&a.rule)) && overlaps(a, i));
        if ok {
            s.true_alerts += 1;
        } else {
            false_alerts.push(a.clone());
        }
    }
    Score {
        per_rule,
        false_alerts,
        missed,
    }
}
