//! The vaccine master (ワクチンマスタ): vaccine codes, the doses allowed for each, and the
//! public fee by examination category. A default ships in `vaccine-master.toml`; a city
//! replaces it through the agent's configuration.

use serde::Deserialize;

/// A vaccine of the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vaccine {
    pub code: String,
    pub name_ja: String,
    pub name_en: String,
    /// Allowed doses in hundredths of a mL (0.5 mL = 50).
    pub doses_centi_ml: Vec<u32>,
    /// Public fee (yen) for 診察区分 接種.
    pub fee_vaccination: u32,
    /// Public fee (yen) for 診察区分 予診のみ.
    pub fee_prescreen: u32,
}

/// Why a master file could not be used. `source` names the file.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("{source_name}: not valid TOML for a vaccine master: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: vaccine #{index} ({code}): {what}")]
    Invalid {
        source_name: String,
        index: usize,
        code: String,
        what: String,
    },
    #[error("{source_name}: the master lists no vaccine")]
    Empty { source_name: String },
}

impl MasterError {
    pub fn reason(&self) -> &'static str {
        match self {
            MasterError::Syntax { .. } => "master_syntax",
            MasterError::Invalid { .. } => "master_invalid",
            MasterError::Empty { .. } => "master_empty",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MasterFile {
    // Defaulted so a file without any `[[vaccine]]` is reported as empty, not as a syntax error.
    #[serde(default)]
    vaccine: Vec<VaccineEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VaccineEntry {
    code: String,
    name_ja: String,
    name_en: String,
    doses_ml: Vec<String>,
    fee: Fee,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fee {
    vaccination: u32,
    prescreen: u32,
}

/// The vaccine master, looked up by code.
#[derive(Debug, Clone)]
pub struct VaccineMaster {
    vaccines: Vec<Vaccine>,
}

/// The master that ships with kenko.
pub const DEFAULT_MASTER_TOML: &str = include_str!("../vaccine-master.toml");

impl VaccineMaster {
    /// The master that ships with kenko.
    pub fn default_master() -> VaccineMaster {
        Self::from_toml(DEFAULT_MASTER_TOML, "vaccine-master.toml (built in)")
            .expect("the built-in vaccine master is valid")
    }

    /// Reads a master; `source_name` (a path) is used in errors. Codes must be unique and
    /// non-empty, doses valid decimals (`0.5`), at least one dose each.
    pub fn from_toml(text: &str, source_name: &str) -> Result<VaccineMaster, MasterError> {
        let file: MasterFile = toml::from_str(text).map_err(|e| MasterError::Syntax {
            source_name: source_name.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        if file.vaccine.is_empty() {
            return Err(MasterError::Empty {
                source_name: source_name.to_owned(),
            });
        }
        let mut vaccines: Vec<Vaccine> = Vec::with_capacity(file.vaccine.len());
        for (i, entry) in file.vaccine.into_iter().enumerate() {
            let invalid = |what: String| MasterError::Invalid {
                source_name: source_name.to_owned(),
                index: i + 1,
                code: entry.code.clone(),
                what,
            };
            if entry.code.is_empty() {
                return Err(invalid("the code is empty".to_owned()));
            }
            // Row values are compared after NFKC and trimming; a code that is not already in
            // that form could never match.
            if crate::normalize::nfkc_trim(&entry.code) != entry.code.as_str() {
                return Err(invalid(
                    "the code must be NFKC-normal with no surrounding white space".to_owned(),
                ));
            }
            if let Some(j) = vaccines.iter().position(|v| v.code == entry.code) {
                return Err(invalid(format!(
                    "the code is also used by vaccine #{}",
                    j + 1
                )));
            }
            if entry.doses_ml.is_empty() {
                return Err(invalid("doses_ml lists no dose".to_owned()));
            }
            let mut doses_centi_ml = Vec::with_capacity(entry.doses_ml.len());
            for dose in &entry.doses_ml {
                match parse_dose_centi_ml(dose) {
                    Some(d) if d > 0 => doses_centi_ml.push(d),
                    _ => {
                        return Err(invalid(format!(
                            "dose {dose:?} is not a positive amount in mL with at most 2 decimals"
                        )))
                    }
                }
            }
            vaccines.push(Vaccine {
                code: entry.code,
                name_ja: entry.name_ja,
                name_en: entry.name_en,
                doses_centi_ml,
                fee_vaccination: entry.fee.vaccination,
                fee_prescreen: entry.fee.prescreen,
            });
        }
        Ok(VaccineMaster { vaccines })
    }

    pub fn get(&self, code: &str) -> Option<&Vaccine> {
        self.vaccines.iter().find(|v| v.code == code)
    }

    pub fn vaccines(&self) -> &[Vaccine] {
        &self.vaccines
    }
}

/// Parses a dose such as `0.5`, `0.5mL`, `0.5ml`, `.5` into hundredths of a mL.
pub fn parse_dose_centi_ml(s: &str) -> Option<u32> {
    let number = match s.len().checked_sub(2) {
        Some(at) if s.is_char_boundary(at) && s[at..].eq_ignore_ascii_case("ml") => {
            s[..at].trim_end()
        }
        _ => s,
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let has_point = number.len() != whole.len();
    if (whole.is_empty() && frac.is_empty())
        || (has_point && frac.is_empty())
        || frac.len() > 2
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u32 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut centi: u32 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    if frac.len() == 1 {
        centi *= 10;
    }
    whole.checked_mul(100)?.checked_add(centi)
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn doses() {
        for (s, want) in [
            ("0.5", 50),
            (".5", 50),
            ("1", 100),
            ("0.25", 25),
            ("0.03", 3),
            ("0.5mL", 50),
            ("0.5ml", 50),
            ("0.5ML", 50),
            ("0.5 mL", 50),
            ("1.0", 100),
            ("0", 0),
        ] {
            assert_eq!(parse_dose_centi_ml(s), Some(want), "{s}");
        }
        for s in [
            "",
            ".",
            "mL",
            "0.125",
            "1.",
            "0,5",
            "-0.5",
            "+0.5",
            "0.5cc",
            "1.2.3",
            "0.5mLmL",
            "半",
            "99999999999",
        ] {
            assert_eq!(parse_dose_centi_ml(s), None, "{s:?}");
        }
    }

    #[test]
    fn default_master_loads() {
        let m = VaccineMaster::default_master();
        let inf = m.get("INF").unwrap();
        assert_eq!(inf.doses_centi_ml, vec![50]);
        assert_eq!((inf.fee_vaccination, inf.fee_prescreen), (4730, 2970));
        assert_eq!(m.get("BCG").unwrap().doses_centi_ml, vec![3]);
        assert_eq!(m.get("COV").unwrap().doses_centi_ml, vec![30, 50]);
        assert!(m.get("inf").is_none());
        assert_eq!(m.vaccines().len(), 12);
    }

    const ONE: &str = "[[vaccine]]\ncode = \"INF\"\nname_ja = \"x\"\nname_en = \"x\"\n";

    fn err(text: &str) -> MasterError {
        VaccineMaster::from_toml(text, "/etc/kenko/master.toml").unwrap_err()
    }

    #[test]
    fn broken_masters_give_clear_errors() {
        let e = err("[[vaccine]\ncode = 1");
        assert_eq!(e.reason(), "master_syntax");
        assert!(
            e.to_string()
                .starts_with("/etc/kenko/master.toml: not valid TOML"),
            "{e}"
        );

        let e = err(&format!(
            "{ONE}doses_ml = [\"0.5\"]\nfee = {{ vaccination = 1, prescreen = 1 }}\ncolour = 1\n"
        ));
        assert_eq!(e.reason(), "master_syntax");
        assert!(e.to_string().contains("colour"), "{e}");

        let e = err("# nothing\n");
        assert_eq!(e.reason(), "master_empty");
        assert_eq!(
            e.to_string(),
            "/etc/kenko/master.toml: the master lists no vaccine"
        );

        let e = err(&format!(
            "{ONE}doses_ml = [\"0.5\", \"abc\"]\nfee = {{ vaccination = 1, prescreen = 1 }}\n"
        ));
        assert_eq!(e.reason(), "master_invalid");
        assert_eq!(
            e.to_string(),
            "/etc/kenko/master.toml: vaccine #1 (INF): dose \"abc\" is not a positive amount in mL with at most 2 decimals"
        );

        let e = err(&format!(
            "{ONE}doses_ml = [\"0\"]\nfee = {{ vaccination = 1, prescreen = 1 }}\n"
        ));
        assert_eq!(e.reason(), "master_invalid");

        let e = err(&format!(
            "{ONE}doses_ml = []\nfee = {{ vaccination = 1, prescreen = 1 }}\n"
        ));
        assert!(e.to_string().contains("no dose"), "{e}");

        let entry =
            format!("{ONE}doses_ml = [\"0.5\"]\nfee = {{ vaccination = 1, prescreen = 1 }}\n");
        let e = err(&format!("{entry}{entry}"));
        assert_eq!(
            e.to_string(),
            "/etc/kenko/master.toml: vaccine #2 (INF): the code is also used by vaccine #1"
        );

        let e = err(&entry.replace("\"INF\"", "\"\""));
        assert!(
            e.to_string().contains("vaccine #1 (): the code is empty"),
            "{e}"
        );

        let e = err(&entry.replace("\"INF\"", "\" INF\""));
        assert!(e.to_string().contains("NFKC"), "{e}");
    }
}
