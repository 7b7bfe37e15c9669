//! The records' data key, end to end with the real binary: under each stack's own KMS key
//! (envelope encryption against the local AWS emulator, two stacks on two PostgreSQL
//! databases), a crypto-erase of one stack's key leaves it unreadable and the other stack
//! working; and a key file lost or replaced after data was stored is refused, never
//! silently recreated.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use std::process::{Command, Output};

use common::moto::{credentials, start_moto, Moto};
use common::{generate, Workspace};
use kenko_aws::Endpoint;
use kenko_sample::SampleEncoding;

struct Stack {
    ws: Workspace,
    key_arn: String,
    name: &'static str,
}

impl Stack {
    fn cmd(&self, moto: &Moto) -> Command {
        let mut c = self.ws.cmd();
        c.env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "ap-northeast-1")
            .env("KENKO_AWS_ENDPOINT_URL", &moto.url)
            .env("KENKO_KMS_KEY_ARN", &self.key_arn)
            .env("KENKO_STACK", self.name);
        c
    }

    fn run(&self, moto: &Moto, args: &[&str]) -> Output {
        self.cmd(moto).args(args).output().unwrap()
    }

    fn run_ok(&self, moto: &Moto, args: &[&str]) -> Output {
        let out = self.run(moto, args);
        assert!(
            out.status.success(),
            "{} kenko-agent {args:?} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn meta(&self, key: &str) -> Option<String> {
        let mut c = postgres::Client::connect(&self.ws.database_url, postgres::NoTls).unwrap();
        c.query_opt("SELECT value FROM kenko_meta WHERE key = $1", &[&key])
            .unwrap()
            .map(|r| r.get(0))
    }
}

fn run_once(stack: &Stack, moto: &Moto) -> serde_json::Value {
    let out = stack.run_ok(moto, &["intake", "run-once", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn kms_key(moto: &Moto, description: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ep = Endpoint {
        region: "ap-northeast-1".into(),
        endpoint_url: Some(moto.url.clone()),
        service_urls: vec![],
    };
    rt.block_on(async {
        let kms = kenko_aws::kms_client(&ep, "ap-northeast-1").await;
        let key = kms
            .create_key()
            .description(description)
            .send()
            .await
            .unwrap();
        key.key_metadata().unwrap().arn().unwrap().to_string()
    })
}

#[test]
fn each_stack_under_its_own_kms_key_and_crypto_erasing_one_leaves_the_other_readable() {
    credentials();
    let moto = start_moto();
    let stacks = [
        Stack {
            ws: Workspace::postgres(),
            key_arn: kms_key(&moto, "kenko stack hachioji"),
            name: "health/hachioji",
        },
        Stack {
            ws: Workspace::postgres(),
            key_arn: kms_key(&moto, "kenko stack koshigaya"),
            name: "health/koshigaya",
        },
    ];
    let mut registers = Vec::new();
    for (i, s) in stacks.iter().enumerate() {
        let residents = kenko_sample::generate_residents(300, 10 + i as u64);
        let csv = s.ws.dir.path().join("residents.csv");
        let mut f = std::fs::File::create(&csv).unwrap();
        kenko_sample::write_resident_csv(&mut f, &residents).unwrap();
        s.run_ok(&moto, &["residents", "import", csv.to_str().unwrap()]);
        let g = generate(&residents, 200, SampleEncoding::Cp932, 0.0, 20 + i as u64);
        s.ws.deliver("2301234567_202410_1.csv", &g.bytes);
        let summary = run_once(s, &moto);
        assert_eq!(summary["file_summaries"][0]["accepted"], 200, "{summary}");
        // No clear copy of the key anywhere but memory: no key file, the wrapped key and the
        // KMS key's name beside the records.
        assert!(!s.ws.data.join("keys/records.key").exists());
        assert_eq!(s.meta("data_key_kms_key").as_deref(), Some(&s.key_arn[..]));
        let wrapped = s.meta("data_key_wrapped").unwrap();
        assert!(wrapped.len() > 64 && hex::decode(&wrapped).is_ok());
        assert_eq!(s.meta("data_key_id").unwrap().len(), 16);
        registers.push(residents);
    }
    // The two stacks' keys differ (tokens made under one never match the other's).
    assert_ne!(stacks[0].meta("data_key_id"), stacks[1].meta("data_key_id"));

    // A later start unwraps the same key: a second delivery matches the register made at
    // the first start (a different key would return every row as a mismatch).
    let g = generate(&registers[0], 150, SampleEncoding::Cp932, 0.0, 31);
    stacks[0].ws.deliver("2301234567_202410_2.csv", &g.bytes);
    assert_matched_the_register(&run_once(&stacks[0], &moto), 150);

    // One stack's database opened with the other's KMS key is refused.
    let crossed = Stack {
        ws: stacks[0].ws.on_same_database(),
        key_arn: stacks[1].key_arn.clone(),
        name: "health/hachioji",
    };
    let out = crossed.run(&moto, &["intake", "run-once"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("datakey_mismatch"), "{err}");

    // The wrapped key copied into another stack's context does not unwrap: the encryption
    // context binds it to its stack.
    let renamed = Stack {
        ws: stacks[0].ws.on_same_database(),
        key_arn: stacks[0].key_arn.clone(),
        name: "health/koshigaya",
    };
    let out = renamed.run(&moto, &["intake", "run-once"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("datakey_unavailable"), "{err}");

    // Crypto-erase the first stack: its KMS key scheduled for deletion.
    let erase = Command::new(common::agent_bin())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "ap-northeast-1")
        .env("KENKO_AWS_ENDPOINT_URL", &moto.url)
        .arg("--data-dir")
        .arg(stacks[0].ws.dir.path().join("eraser"))
        .args([
            "erase",
            "--name",
            "hachioji decommission",
            "--method",
            "crypto",
            "--kms-pending-days",
            "7",
            "--target",
        ])
        .arg(format!("kms:{}", stacks[0].key_arn))
        .output()
        .unwrap();
    assert!(
        erase.status.success(),
        "{}",
        String::from_utf8_lossy(&erase.stderr)
    );

    // The erased stack cannot unwrap its data key any more: nothing it stored is readable,
    // and the agent says why in one line, naming the key and no resident.
    let g = generate(&registers[0], 50, SampleEncoding::Cp932, 0.0, 32);
    stacks[0].ws.deliver("2301234567_202410_3.csv", &g.bytes);
    let out = stacks[0].run(&moto, &["intake", "run-once"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("datakey_unavailable"), "{err}");
    assert!(err.contains(&stacks[0].key_arn), "{err}");
    for r in &registers[0] {
        if let Some(m) = &r.mynumber {
            assert!(!err.contains(m.as_str()), "a My Number in the error");
        }
        assert!(!err.contains(&r.name), "a name in the error");
    }
    // The wrapped key is still in the database (and in every backup of it): useless now.
    assert!(stacks[0].meta("data_key_wrapped").is_some());

    // The other stack is untouched: it unwraps its key and takes its next delivery.
    let g = generate(&registers[1], 120, SampleEncoding::Cp932, 0.0, 33);
    stacks[1].ws.deliver("2301234567_202410_2.csv", &g.bytes);
    assert_matched_the_register(&run_once(&stacks[1], &moto), 120);
}

/// Every row of a clean later delivery matched the register imported under the stack's key
/// (a row of a random month may repeat one already loaded: a duplicate, never a mismatch).
fn assert_matched_the_register(summary: &serde_json::Value, rows: u64) {
    let file = &summary["file_summaries"][0];
    let reasons = file["reasons"].as_object().unwrap();
    assert!(
        reasons.keys().all(|r| r == "duplicate_of_loaded"),
        "{summary}"
    );
    assert_eq!(file["rows"], rows, "{summary}");
    assert!(file["accepted"].as_u64().unwrap() >= rows - 10, "{summary}");
}

#[test]
fn a_key_file_lost_or_replaced_after_data_was_stored_is_refused_never_recreated() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(200, 5);
    let key = ws.data.join("keys/records.key");
    assert!(key.exists());

    // Lost: the agent does not make a new one (that would return every row as a mismatch).
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let g = generate(&residents, 100, SampleEncoding::Utf8, 0.0, 6);
    ws.deliver("2301234567_202410_1.csv", &g.bytes);
    let out = ws.run(&["intake", "run-once"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("datakey_missing"), "{err}");
    assert!(!key.exists(), "a new key file was made");
    assert!(ws.inbox().join("2301234567_202410_1.csv").exists());

    // Replaced by another 32-byte key: refused by its id, nothing loaded or returned.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .unwrap();
        std::io::Write::write_all(&mut f, &[7u8; 32]).unwrap();
    }
    let out = ws.run(&["intake", "run-once"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("datakey_mismatch"), "{err}");
    assert!(ws.inbox().join("2301234567_202410_1.csv").exists());
    assert!(!ws.data.join("returned/2301234567_202410_1.csv").exists());

    // The right key back: the file is taken as if nothing happened.
    std::fs::remove_file(&key).unwrap();
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .unwrap();
        std::io::Write::write_all(&mut f, &saved).unwrap();
    }
    let summary = ws.run_once_json();
    assert_eq!(summary["file_summaries"][0]["accepted"], 100, "{summary}");
}
