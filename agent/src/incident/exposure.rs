//! Which items of personal data an alert puts at risk, and what its count counts: the one
//! mapping from an access alert's rule and detail to the report's 項目 and 本人の数.
//!
//! The health system's record (the resident's 氏名, 性別, 生年月日, 住所, 団体内宛名番号 and the
//! vaccination fields) is what a person using the health system sees; the intake files in the
//! records buckets carry the 個人番号 too; kenko's store holds 氏名 and 住所 as tokens and the
//! 個人番号 encrypted, so a read of the database or of a key is a risk to all of them.

/// An item of personal data the report names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataItem {
    MyNumber,
    Name,
    Sex,
    BirthDate,
    Address,
    AtenaNumber,
    VaccinationRecord,
}

impl DataItem {
    pub const ALL: [DataItem; 7] = [
        DataItem::MyNumber,
        DataItem::Name,
        DataItem::Sex,
        DataItem::BirthDate,
        DataItem::Address,
        DataItem::AtenaNumber,
        DataItem::VaccinationRecord,
    ];

    /// The key in the incident file and in `--json`.
    pub fn key(self) -> &'static str {
        match self {
            DataItem::MyNumber => "my_number",
            DataItem::Name => "name",
            DataItem::Sex => "sex",
            DataItem::BirthDate => "birth_date",
            DataItem::Address => "address",
            DataItem::AtenaNumber => "atena_number",
            DataItem::VaccinationRecord => "vaccination_record",
        }
    }

    pub fn from_key(key: &str) -> Option<DataItem> {
        DataItem::ALL.into_iter().find(|i| i.key() == key)
    }

    /// The item as the report names it.
    pub fn label(self) -> &'static str {
        match self {
            DataItem::MyNumber => "個人番号",
            DataItem::Name => "氏名",
            DataItem::Sex => "性別",
            DataItem::BirthDate => "生年月日",
            DataItem::Address => "住所",
            DataItem::AtenaNumber => "団体内宛名番号",
            DataItem::VaccinationRecord => {
                "予防接種記録(接種日、接種場所、ワクチン、ロット番号、接種量、予診・接種医師名、委託料等)"
            }
        }
    }
}

/// How sure kenko's records make it that an item was exposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Likelihood {
    /// The alert's events touch records holding it: 漏えい等が発生したおそれがある.
    Likely,
    /// Only if the access went further than the alert shows: 要確認.
    Possible,
}

impl Likelihood {
    pub fn label(self) -> &'static str {
        match self {
            Likelihood::Likely => "発生したおそれあり",
            Likelihood::Possible => "要確認(アクセスの内容による)",
        }
    }
}

/// What an alert's count counts, and so what it says of 本人の数.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CountKind {
    /// Distinct residents in the rule's sliding window (its highest): at least this many
    /// people; the whole period may have more.
    DistinctResidents,
    /// Records exported or printed in one JST day (its highest): at most this many people
    /// that day (one person may have several records).
    Records,
    /// Events (actions): not a number of people.
    Events,
    /// Failed logins: no record read.
    FailedLogins,
    /// A read of the store, a bucket or a key: every record it holds may be concerned; kenko's
    /// alert does not count people.
    WholeStore,
}

impl CountKind {
    pub fn key(self) -> &'static str {
        match self {
            CountKind::DistinctResidents => "distinct_residents",
            CountKind::Records => "records",
            CountKind::Events => "events",
            CountKind::FailedLogins => "failed_logins",
            CountKind::WholeStore => "whole_store",
        }
    }

    /// The estimate of 本人の数 from the count, in the report's words; None when the count is
    /// no estimate of people.
    pub fn estimate(self, count: u64) -> Option<String> {
        match self {
            CountKind::DistinctResidents => Some(format!(
                "推計 {count} 人以上(kenko が数えた、監視期間内の一つの時間窓で閲覧等された異なる本人の数の最大値。期間全体の本人の数はこれを上回り得る)"
            )),
            CountKind::Records => Some(format!(
                "推計 最大 {count} 人(kenko が数えた、1日に出力・印刷された記録の件数の最大値。1人に複数の記録があり得るため本人の数はこれ以下)"
            )),
            CountKind::Events | CountKind::FailedLogins | CountKind::WholeStore => None,
        }
    }

    pub fn what(self) -> &'static str {
        match self {
            CountKind::DistinctResidents => "異なる本人の数(時間窓内の最大値)",
            CountKind::Records => "出力・印刷された記録の件数(1日の最大値)",
            CountKind::Events => "操作の件数(本人の数ではない)",
            CountKind::FailedLogins => "ログイン失敗の回数(本人の数ではない)",
            CountKind::WholeStore => "該当する操作の件数(保存された記録の全件が対象となり得る)",
        }
    }
}

/// What an alert says of the data at risk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposure {
    /// Where the data was: the report's words.
    pub source: &'static str,
    pub items: Vec<(DataItem, Likelihood)>,
    pub count: CountKind,
    /// What the report must add to the list.
    pub note: &'static str,
}

impl Exposure {
    /// How likely the 個人番号 (特定個人情報) is concerned; None when not at all.
    pub fn my_number(&self) -> Option<Likelihood> {
        self.items
            .iter()
            .find(|(i, _)| *i == DataItem::MyNumber)
            .map(|(_, l)| *l)
    }
}

const HEALTH_RECORD: &str = "健康管理システムの予防接種記録(住民の宛名情報を含む)";

fn all(l: Likelihood) -> Vec<(DataItem, Likelihood)> {
    DataItem::ALL.into_iter().map(|i| (i, l)).collect()
}

/// The health system's record: likely everything but the 個人番号, which only if the screen
/// or the output shows it.
fn health_record(l: Likelihood) -> Vec<(DataItem, Likelihood)> {
    DataItem::ALL
        .into_iter()
        .map(|i| {
            if i == DataItem::MyNumber {
                (i, Likelihood::Possible)
            } else {
                (i, l)
            }
        })
        .collect()
}

/// The one mapping: an alert's rule and detail to the data at risk and what its count counts.
pub fn exposure(rule: &str, detail: &str) -> Exposure {
    use Likelihood::{Likely, Possible};
    match (rule, detail) {
        ("access.bulk_read", _) => Exposure {
            source: HEALTH_RECORD,
            items: health_record(Likely),
            count: CountKind::DistinctResidents,
            note: "個人番号は、閲覧された画面に個人番号が表示される場合に限り対象(要確認)。",
        },
        ("access.outside_caseload", _) => Exposure {
            source: HEALTH_RECORD,
            items: health_record(Likely),
            count: CountKind::Events,
            note: "担当地区外の本人の記録。個人番号は画面に表示される場合に限り対象(要確認)。",
        },
        ("access.export_volume", _) => Exposure {
            source: "健康管理システムから出力・印刷された予防接種記録",
            items: health_record(Likely),
            count: CountKind::Records,
            note: "出力・印刷された帳票・ファイルの所在と回収の状況を確認すること。個人番号は帳票に含まれる場合に限り対象(要確認)。",
        },
        ("access.volume_anomaly" | "access.off_hours" | "access.unregistered_terminal", _) => {
            Exposure {
                source: HEALTH_RECORD,
                items: health_record(Possible),
                count: CountKind::Events,
                note: "操作が閲覧・出力を含むかはアクセスログで確認すること。",
            }
        }
        ("access.retired_account" | "access.unknown_account", _) => Exposure {
            source: "アカウントが利用したシステム(健康管理システム、クラスタ又はクラウド)",
            items: all(Possible),
            count: CountKind::Events,
            note: "退職者又は名簿にないアカウントによる操作。何に触れたかはアクセスログで確認すること。",
        },
        ("access.failed_login_burst", _) => Exposure {
            source: "健康管理システムのログイン",
            items: Vec::new(),
            count: CountKind::FailedLogins,
            note: "ログインの失敗のみで、記録の閲覧は検知されていない。その後にログインが成功していないか確認すること。",
        },
        ("access.privilege_change", "db_pod_exec" | "secret_read") => Exposure {
            source: "kenko の記録ストア(データベース)又はその鍵・認証情報",
            items: all(Possible),
            count: CountKind::WholeStore,
            note: "ストアの氏名・住所はトークン、個人番号は暗号化されている。データ鍵が漏えいしていなければ平文は得られない。鍵の扱いを確認すること。",
        },
        ("access.privilege_change", _) => Exposure {
            source: "権限の設定(Kubernetes RBAC 又は AWS IAM)",
            items: all(Possible),
            count: CountKind::Events,
            note: "権限の変更そのものは個人情報の閲覧ではない。変更後の権限による操作を確認すること。",
        },
        ("access.provider_data_read", "s3_object_read") => Exposure {
            source: "記録用 S3 バケット(納品された予防接種記録ファイル、記録のバックアップ)",
            items: all(Likely),
            count: CountKind::WholeStore,
            note: "納品ファイルには個人番号と基本4情報が含まれる。読まれたオブジェクトを CloudTrail で特定すること。",
        },
        ("access.provider_data_read", "kms_decrypt") => Exposure {
            source: "記録を保護する KMS 鍵",
            items: all(Possible),
            count: CountKind::WholeStore,
            note: "鍵の復号操作。これにより読まれ得た記録を確認すること。",
        },
        ("access.provider_data_read", _) => Exposure {
            source: HEALTH_RECORD,
            items: health_record(Likely),
            count: CountKind::Events,
            note: "運用事業者(クラウド事業者)による業務データの利用。",
        },
        _ => Exposure {
            source: "不明(kenko が知らない規則)",
            items: all(Possible),
            count: CountKind::Events,
            note: "アラートの規則から項目を判断できない。",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &[&str] = &[
        "access.bulk_read",
        "access.export_volume",
        "access.off_hours",
        "access.retired_account",
        "access.unknown_account",
        "access.unregistered_terminal",
        "access.outside_caseload",
        "access.failed_login_burst",
        "access.privilege_change",
        "access.provider_data_read",
        "access.volume_anomaly",
    ];

    #[test]
    fn every_rule_of_the_monitor_is_mapped() {
        for r in RULES {
            let e = exposure(r, "x");
            assert!(!e.source.starts_with("不明"), "{r} has no mapping");
        }
        assert!(exposure("access.new_rule", "x").source.starts_with("不明"));
    }

    #[test]
    fn a_bulk_read_of_the_health_records_exposes_the_record_and_maybe_the_my_number() {
        let e = exposure("access.bulk_read", "distinct_residents");
        for i in [
            DataItem::Name,
            DataItem::BirthDate,
            DataItem::Address,
            DataItem::VaccinationRecord,
        ] {
            assert!(e.items.contains(&(i, Likelihood::Likely)), "{i:?}");
        }
        assert_eq!(e.my_number(), Some(Likelihood::Possible));
        assert_eq!(e.count, CountKind::DistinctResidents);
        assert!(e.count.estimate(412).unwrap().contains("412 人以上"));
    }

    #[test]
    fn a_records_bucket_read_exposes_the_my_number() {
        let e = exposure("access.provider_data_read", "s3_object_read");
        assert_eq!(e.my_number(), Some(Likelihood::Likely));
        assert_eq!(e.count.estimate(3), None);
    }

    #[test]
    fn failed_logins_expose_nothing_and_count_no_one() {
        let e = exposure("access.failed_login_burst", "failed_logins");
        assert!(e.items.is_empty());
        assert_eq!(e.my_number(), None);
        assert_eq!(e.count.estimate(9), None);
    }

    #[test]
    fn exports_are_an_upper_bound() {
        let e = exposure("access.export_volume", "export");
        assert!(e.count.estimate(1500).unwrap().contains("最大 1500 人"));
    }

    #[test]
    fn item_keys_round_trip() {
        for i in DataItem::ALL {
            assert_eq!(DataItem::from_key(i.key()), Some(i));
        }
        assert_eq!(DataItem::from_key("shoe_size"), None);
    }
}
