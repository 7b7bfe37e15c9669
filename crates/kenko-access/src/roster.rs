//! The staff roster: who may use the system. One entry per person (staff of the city and
//! people of the ASP / cloud operations contractor), from HR's list.
//!
//! CSV (a header naming the columns, any order):
//!
//! ```text
//! id,role,status,retired_on,scope,terminals
//! S0001,public_health_nurse,active,,D01;D02,T0001;T0002
//! S0002,supervisor,active,,*,T0003
//! S0107,clerk,retired,2026-10-31,D05,T0107
//! OP001,operator,active,,,*
//! ```
//!
//! or TOML (`[[person]]` tables with the same keys; `scope` and `terminals` are arrays or `"*"`).
//!
//! - `status`: `active` or `retired`. `retired_on` (JST date, optional) is the first day the
//!   account may no longer be used; `retired` without a date means from any time, `active` with
//!   a date means a planned retirement.
//! - `scope` (the caseload): district codes separated by `;`, or `*` for every district; empty
//!   means none (an operator).
//! - `terminals`: registered terminal ids separated by `;`, or `*` for any (operators, who do not
//!   use the health system's terminals).
//! - role `operator` marks a person of the cloud operations contractor: their Kubernetes and
//!   AWS actions are checked against the roster, and any use of the health system is a read of
//!   business data by a cloud operator.
//!
//! Errors name the line (or the entry) and the field, never a value.

use std::fmt;

use rustc_hash::FxHashMap;

use crate::calendar::Date;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Active,
    Retired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PersonKind {
    Staff,
    Operator,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Districts(Vec<Box<str>>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminals {
    Any,
    Listed(Vec<Box<str>>),
}

/// One person of the roster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub id: String,
    pub role: String,
    pub kind: PersonKind,
    pub status: Status,
    pub retired_on: Option<Date>,
    pub scope: Scope,
    pub terminals: Terminals,
}

impl Person {
    /// Whether the account may no longer be used on this JST day (days since 1970-01-01).
    #[inline]
    pub fn is_retired_on_day(&self, jst_day: i64) -> bool {
        match (self.status, self.retired_on) {
            (_, Some(d)) => jst_day >= d.days(),
            (Status::Retired, None) => true,
            (Status::Active, None) => false,
        }
    }

    /// Whether a resident of this district is in the person's caseload.
    #[inline]
    pub fn in_scope(&self, district: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Districts(d) => d.iter().any(|x| &**x == district),
        }
    }

    /// Whether the terminal is registered for the person.
    #[inline]
    pub fn terminal_registered(&self, terminal: &str) -> bool {
        match &self.terminals {
            Terminals::Any => true,
            Terminals::Listed(t) => t.iter().any(|x| &**x == terminal),
        }
    }
}

/// A roster that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct RosterError {
    /// 1-based line (CSV, or a TOML syntax error).
    pub line: Option<usize>,
    /// 1-based `[[person]]` entry (TOML).
    pub entry: Option<usize>,
    pub field: Option<&'static str>,
    pub problem: &'static str,
}

impl fmt::Display for RosterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("roster")?;
        if let Some(l) = self.line {
            write!(f, " line {l}")?;
        }
        if let Some(e) = self.entry {
            write!(f, " person {e}")?;
        }
        if let Some(field) = self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl RosterError {
    pub fn reason(&self) -> &'static str {
        "roster_invalid"
    }
}

/// The roster, indexed by id.
#[derive(Clone, Debug, Default)]
pub struct Roster {
    people: Vec<Person>,
    index: FxHashMap<String, u32>,
}

const COLUMNS: [&str; 6] = ["id", "role", "status", "retired_on", "scope", "terminals"];

impl Roster {
    /// A roster from people (later duplicates are an error).
    pub fn from_people(people: Vec<Person>) -> Result<Roster, RosterError> {
        let mut r = Roster::default();
        for (i, p) in people.into_iter().enumerate() {
            r.push(p, None, Some(i + 1))?;
        }
        Ok(r)
    }

    fn push(
        &mut self,
        p: Person,
        line: Option<usize>,
        entry: Option<usize>,
    ) -> Result<(), RosterError> {
        if self.index.contains_key(&p.id) {
            return Err(RosterError {
                line,
                entry,
                field: Some("id"),
                problem: "appears twice",
            });
        }
        self.index.insert(p.id.clone(), self.people.len() as u32);
        self.people.push(p);
        Ok(())
    }

    /// CSV or TOML, told apart by the first meaningful line (`[` starts TOML).
    pub fn parse(text: &str) -> Result<Roster, RosterError> {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        match first {
            Some(l) if l.starts_with('[') => Roster::parse_toml(text),
            _ => Roster::parse_csv(text),
        }
    }

    pub fn parse_csv(text: &str) -> Result<Roster, RosterError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let (hline, header) = lines.next().ok_or(RosterError {
            line: None,
            entry: None,
            field: None,
            problem: "empty: expected a header line naming id, role, status, scope, terminals",
        })?;
        let herr = |field, problem| RosterError {
            line: Some(hline),
            entry: None,
            field,
            problem,
        };
        let names = split_csv(header).ok_or_else(|| herr(None, "unbalanced quotes"))?;
        let mut col = [usize::MAX; 6];
        for (i, n) in names.iter().enumerate() {
            let Some(c) = COLUMNS.iter().position(|c| c == &n.trim()) else {
                return Err(herr(
                    None,
                    "unknown column: expected only id, role, status, retired_on, scope, terminals",
                ));
            };
            if col[c] != usize::MAX {
                return Err(herr(Some(COLUMNS[c]), "column appears twice"));
            }
            col[c] = i;
        }
        for (c, name) in COLUMNS.iter().enumerate() {
            if col[c] == usize::MAX && *name != "retired_on" {
                return Err(herr(Some(COLUMNS[c]), "column missing from the header"));
            }
        }
        let mut r = Roster::default();
        for (line, l) in lines {
            let err = |field: Option<&'static str>, problem| RosterError {
                line: Some(line),
                entry: None,
                field,
                problem,
            };
            let f = split_csv(l).ok_or_else(|| err(None, "unbalanced quotes"))?;
            if f.len() != names.len() {
                return Err(err(
                    None,
                    "wrong number of fields: expected one per header column",
                ));
            }
            let get = |c: usize| f.get(col[c]).map(|s| s.trim()).unwrap_or("");
            let p = person(
                get(0),
                get(1),
                get(2),
                get(3),
                Some(get(4))
                    .filter(|s| *s == "*")
                    .map_or_else(|| List::Items(split_list(get(4))), |_| List::All),
                Some(get(5))
                    .filter(|s| *s == "*")
                    .map_or_else(|| List::Items(split_list(get(5))), |_| List::All),
            )
            .map_err(|(field, problem)| err(Some(field), problem))?;
            r.push(p, Some(line), None)?;
        }
        Ok(r)
    }

    pub fn parse_toml(text: &str) -> Result<Roster, RosterError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| RosterError {
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            entry: None,
            field: None,
            problem: "not valid TOML",
        })?;
        let top = |problem| RosterError {
            line: None,
            entry: None,
            field: Some("person"),
            problem,
        };
        if table.keys().any(|k| k != "person") {
            return Err(RosterError {
                line: None,
                entry: None,
                field: None,
                problem: "unknown key: expected only [[person]] tables",
            });
        }
        let Some(list) = table.get("person") else {
            return Ok(Roster::default());
        };
        let list = list
            .as_array()
            .ok_or_else(|| top("expected [[person]] tables"))?;
        let mut r = Roster::default();
        for (i, v) in list.iter().enumerate() {
            let entry = i + 1;
            let err = |field, problem| RosterError {
                line: None,
                entry: Some(entry),
                field,
                problem,
            };
            let t = v.as_table().ok_or_else(|| err(None, "expected a table"))?;
            if t.keys().any(|k| !COLUMNS.contains(&k.as_str())) {
                return Err(err(
                    None,
                    "unknown key: expected only id, role, status, retired_on, scope, terminals",
                ));
            }
            let s = |name: &'static str| -> Result<&str, RosterError> {
                match t.get(name) {
                    None => Ok(""),
                    Some(toml::Value::String(s)) => Ok(s.trim()),
                    Some(_) => Err(err(Some(name), "expected a string")),
                }
            };
            let list = |name: &'static str| -> Result<List, RosterError> {
                match t.get(name) {
                    None => Ok(List::Items(Vec::new())),
                    Some(toml::Value::String(s)) if s.trim() == "*" => Ok(List::All),
                    Some(toml::Value::String(s)) => Ok(List::Items(split_list(s))),
                    Some(toml::Value::Array(a)) => a
                        .iter()
                        .map(|x| {
                            x.as_str()
                                .map(|s| s.trim().into())
                                .ok_or_else(|| err(Some(name), "expected an array of strings"))
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(List::Items),
                    Some(_) => Err(err(Some(name), "expected an array of strings or \"*\"")),
                }
            };
            let p = person(
                s("id")?,
                s("role")?,
                s("status")?,
                s("retired_on")?,
                list("scope")?,
                list("terminals")?,
            )
            .map_err(|(field, problem)| err(Some(field), problem))?;
            r.push(p, None, Some(entry))?;
        }
        Ok(r)
    }

    /// The person's index and entry.
    #[inline]
    pub fn get(&self, id: &str) -> Option<(u32, &Person)> {
        let i = *self.index.get(id)?;
        Some((i, &self.people[i as usize]))
    }

    #[inline]
    pub fn person(&self, index: u32) -> &Person {
        &self.people[index as usize]
    }

    pub fn people(&self) -> &[Person] {
        &self.people
    }

    pub fn len(&self) -> usize {
        self.people.len()
    }

    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// The roster as CSV (the form [`Roster::parse_csv`] reads).
    pub fn to_csv(&self) -> String {
        let mut s = String::from("id,role,status,retired_on,scope,terminals\n");
        for p in &self.people {
            let join = |v: &[Box<str>]| v.iter().map(|x| &**x).collect::<Vec<_>>().join(";");
            let scope = match &p.scope {
                Scope::All => "*".to_string(),
                Scope::Districts(d) => join(d),
            };
            let terminals = match &p.terminals {
                Terminals::Any => "*".to_string(),
                Terminals::Listed(t) => join(t),
            };
            s.push_str(&format!(
                "{},{},{},{},{},{}\n",
                p.id,
                p.role,
                match p.status {
                    Status::Active => "active",
                    Status::Retired => "retired",
                },
                p.retired_on.map(|d| d.to_string()).unwrap_or_default(),
                scope,
                terminals
            ));
        }
        s
    }
}

enum List {
    All,
    Items(Vec<Box<str>>),
}

fn split_list(s: &str) -> Vec<Box<str>> {
    s.split(';')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(Into::into)
        .collect()
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|c| c.is_ascii_graphic() && !matches!(c, b',' | b';' | b'"'))
}

fn person(
    id: &str,
    role: &str,
    status: &str,
    retired_on: &str,
    scope: List,
    terminals: List,
) -> Result<Person, (&'static str, &'static str)> {
    if id.is_empty() {
        return Err(("id", "missing"));
    }
    if !valid_id(id) {
        return Err((
            "id",
            "expected printable ASCII without spaces, commas or semicolons",
        ));
    }
    if role.is_empty() {
        return Err(("role", "missing"));
    }
    let status = match status {
        "active" => Status::Active,
        "retired" => Status::Retired,
        "" => return Err(("status", "missing")),
        _ => return Err(("status", "expected active or retired")),
    };
    let retired_on = match retired_on {
        "" => None,
        s => Some(Date::parse(s).ok_or(("retired_on", "expected a date YYYY-MM-DD"))?),
    };
    let scope = match scope {
        List::All => Scope::All,
        List::Items(v) => Scope::Districts(v),
    };
    let terminals = match terminals {
        List::All => Terminals::Any,
        List::Items(v) => Terminals::Listed(v),
    };
    let kind = if role.eq_ignore_ascii_case("operator") {
        PersonKind::Operator
    } else {
        PersonKind::Staff
    };
    Ok(Person {
        id: id.to_string(),
        role: role.to_string(),
        kind,
        status,
        retired_on,
        scope,
        terminals,
    })
}

/// Splits one CSV line (RFC 4180 quoting within the line). None on unbalanced quotes.
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
            at_start = true;
        } else {
            cur.push(c);
            at_start = false;
        }
    }
    if quoted {
        return None;
    }
    out.push(cur);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "\
id,role,status,retired_on,scope,terminals
# a comment
S0001,public_health_nurse,active,,D01;D02,T0001;T0002
S0002,supervisor,active,,*,T0003
S0107,clerk,retired,2026-10-31,D05,T0107
\"OP001\",operator,active,,,*
";

    #[test]
    fn csv_roster() {
        let r = Roster::parse(CSV).unwrap();
        assert_eq!(r.len(), 4);
        let (_, p) = r.get("S0001").unwrap();
        assert!(p.in_scope("D02") && !p.in_scope("D03"));
        assert!(p.terminal_registered("T0002") && !p.terminal_registered("T0003"));
        assert_eq!(p.kind, PersonKind::Staff);
        let (_, s) = r.get("S0002").unwrap();
        assert!(s.in_scope("D13"));
        let (_, ret) = r.get("S0107").unwrap();
        let d = Date::new(2026, 10, 31).unwrap().days();
        assert!(!ret.is_retired_on_day(d - 1) && ret.is_retired_on_day(d));
        let (_, op) = r.get("OP001").unwrap();
        assert_eq!(op.kind, PersonKind::Operator);
        assert!(op.terminal_registered("anything") && !op.in_scope("D01"));
        assert!(r.get("S9999").is_none());
        // Round trip.
        let again = Roster::parse_csv(&r.to_csv()).unwrap();
        assert_eq!(again.people(), r.people());
    }

    #[test]
    fn toml_roster() {
        let t = r#"
[[person]]
id = "S0001"
role = "public_health_nurse"
status = "active"
scope = ["D01", "D02"]
terminals = ["T0001"]

[[person]]
id = "OP001"
role = "operator"
status = "retired"
terminals = "*"
"#;
        let r = Roster::parse(t).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r.get("S0001").unwrap().1.in_scope("D01"));
        assert!(r.get("OP001").unwrap().1.is_retired_on_day(0));
    }

    #[test]
    fn errors_name_line_and_field_never_the_value() {
        let cases = [
            (
                CSV.replace("retired,2026", "gone,2026"),
                Some(5),
                Some("status"),
                "active or retired",
            ),
            (
                CSV.replace("2026-10-31", "31/10/2026"),
                Some(5),
                Some("retired_on"),
                "YYYY-MM-DD",
            ),
            (
                CSV.replace("S0002,", "S0001,"),
                Some(4),
                Some("id"),
                "twice",
            ),
            (CSV.replace(",T0003", ""), Some(4), None, "number of fields"),
            (
                CSV.replace("terminals\n", "terminal\n"),
                Some(1),
                None,
                "unknown column",
            ),
            (
                CSV.replace(",terminals\n", "\n"),
                Some(1),
                Some("terminals"),
                "missing",
            ),
            (
                CSV.replace("supervisor", ""),
                Some(4),
                Some("role"),
                "missing",
            ),
        ];
        for (text, line, field, needle) in cases {
            let e = Roster::parse(&text).unwrap_err();
            assert_eq!((e.line, e.field), (line, field), "{e}");
            let msg = e.to_string();
            assert!(msg.contains(needle), "{msg}");
            for v in ["gone", "31/10/2026", "S0001", "T0003"] {
                assert!(!msg.contains(v), "{msg}");
            }
        }
        let e = Roster::parse("[[person]]\nid = \"S1\"\nrole = \"x\"\nstatus = 3\n").unwrap_err();
        assert_eq!((e.entry, e.field), (Some(1), Some("status")));
        let e = Roster::parse("[[person]]\nid = \n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(e.to_string(), "roster line 2: not valid TOML");
    }
}
