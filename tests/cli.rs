//! The `pulsedb` command line: import (bad lines reported and skipped),
//! export (readable by import), info, search, and its exit codes.

use std::process::{Command, Output};

fn pulsedb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pulsedb"))
        .args(args)
        .output()
        .expect("run pulsedb")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn import_export_round_trip_with_bad_lines_reported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"content": "retry the flaky test with one thread", "domain": ["testing"]}"#,
            r#"{"content": 12"#,
            r#"{"content": ""}"#,
            "",
            r#"{"content": "cache the cargo target directory", "experience_type": {"type": "tech_insight", "technology": "cargo", "insight": "cache"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let db_s = db.to_str().unwrap();
    let out = pulsedb(&[
        "import",
        "--db",
        db_s,
        "--collective",
        "team",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "imported 2, rejected 2");
    let err = text(&out.stderr);
    assert!(err.contains("line 2") && err.contains("line 3"), "{err}");

    let info = pulsedb(&["info", "--db", db_s]);
    assert!(info.status.success());
    let table = text(&info.stdout);
    assert!(
        table.contains("team") && table.contains("schema version"),
        "{table}"
    );

    let exported = dir.path().join("out.jsonl");
    let out = pulsedb(&[
        "export",
        "--db",
        db_s,
        "--collective",
        "team",
        "--out",
        exported.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&exported)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["content"], "retry the flaky test with one thread");
    assert_eq!(lines[0]["embedding"].as_array().unwrap().len(), 384);
    assert_eq!(lines[1]["experience_type"]["type"], "tech_insight");

    // The export is readable by import, vectors included (no embedder needed).
    let copy = dir.path().join("b.db");
    let out = pulsedb(&[
        "import",
        "--db",
        copy.to_str().unwrap(),
        "--collective",
        "copy",
        "--embedder",
        "none",
        exported.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "imported 2, rejected 0");

    let found = pulsedb(&[
        "search",
        "--db",
        copy.to_str().unwrap(),
        "--collective",
        "copy",
        "-k",
        "1",
        "tests fail at random",
    ]);
    assert!(found.status.success(), "{}", text(&found.stderr));
    let table = text(&found.stdout);
    assert!(table.contains("retry the flaky test"), "{table}");
    assert!(!table.contains("cargo"), "k = 1: {table}");
}

#[test]
fn exit_codes_say_usage_or_failure() {
    assert_eq!(pulsedb(&["serve"]).status.code(), Some(2), "missing --db");
    assert_eq!(pulsedb(&["no-such-command"]).status.code(), Some(2));
    assert!(pulsedb(&["--help"]).status.success());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let made = pulsedb(&[
        "import",
        "--db",
        db.to_str().unwrap(),
        "--collective",
        "team",
        empty.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let out = pulsedb(&[
        "search",
        "--db",
        db.to_str().unwrap(),
        "--collective",
        "nope",
        "anything",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nope"), "{err}");
}

/// A 384-d vector for line `i`: a few non-zero components.
fn embedding(i: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; 384];
    v[i % 384] = 1.0;
    v[(i * 7 + 3) % 384] += 0.5;
    v[(i / 384) % 384] += 0.25;
    v
}

/// `n` import lines: most new experiences of every type, some whole
/// records (as an export writes them) with reinforcements and archived.
fn import_lines(n: usize) -> String {
    let types = [
        serde_json::json!({"type": "difficulty", "description": "d", "severity": "high"}),
        serde_json::json!({"type": "solution", "approach": "a", "worked": true}),
        serde_json::json!({"type": "fact", "statement": "s", "source": "src"}),
        serde_json::json!({"type": "generic"}),
    ];
    let mut out = String::new();
    for i in 0..n {
        let mut line = serde_json::json!({
            "content": format!("experience {i}: ünïcode and \"quotes\""),
            "embedding": embedding(i),
            "experience_type": types[i % types.len()],
            "importance": (i % 10) as f32 / 10.0,
            "domain": [format!("d{}", i % 5)],
            "tags": {"k": format!("v{}", i % 3)},
            "source_agent": format!("agent-{}", i % 4),
        });
        if i % 10 == 0 {
            let at = 1_700_000_000_000i64 + i as i64;
            line["id"] = pulsedb::ExperienceId::new().to_string().into();
            line["timestamp"] = at.into();
            line["last_reinforced"] = (at + 5).into();
            line["applications"] = 3.into();
            line["archived"] = (i % 20 == 0).into();
        }
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// Export lines without `collective_id` (a new file's collective has a new id).
fn exported(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("collective_id");
            v
        })
        .collect()
}

fn import(db: &std::path::Path, file: &std::path::Path) -> Output {
    pulsedb(&[
        "import",
        "--db",
        db.to_str().unwrap(),
        "--collective",
        "team",
        "--embedder",
        "none",
        file.to_str().unwrap(),
    ])
}

fn export(db: &std::path::Path, file: &std::path::Path) -> Output {
    pulsedb(&[
        "export",
        "--db",
        db.to_str().unwrap(),
        "--collective",
        "team",
        "--out",
        file.to_str().unwrap(),
    ])
}

#[test]
fn export_import_export_of_10_000_is_identical_and_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, import_lines(10_000)).unwrap();
    let out = import(&a, &input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "imported 10000, rejected 0");

    let (first, second) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let out = export(&a, &first);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = import(&b, &first);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "imported 10000, rejected 0");
    let out = export(&b, &second);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let (xs, ys) = (exported(&first), exported(&second));
    assert_eq!(xs.len(), 10_000);
    assert_eq!(xs, ys, "a re-imported export exports the same");
    // Whole records kept their ids, times, counters and archived flag.
    let restored = xs.iter().filter(|x| x["applications"] == 3).count();
    assert_eq!(restored, 1000);
    assert_eq!(xs.iter().filter(|x| x["archived"] == true).count(), 500);

    // Importing the same export again refuses every line by its number.
    let out = import(&b, &first);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "imported 0, rejected 10000");
    assert!(text(&out.stderr).contains("line 10000: "));

    for db in [&a, &b] {
        let out = pulsedb(&["check", "--db", db.to_str().unwrap()]);
        let report = text(&out.stdout);
        assert!(out.status.success(), "{report}{}", text(&out.stderr));
        assert!(report.contains("10000 experiences"), "{report}");
        assert!(report.trim_end().ends_with("ok"), "{report}");
    }

    let out = pulsedb(&["compact", "--db", b.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("change log: removed"));
    let out = pulsedb(&["check", "--db", b.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let again = dir.path().join("c.jsonl");
    assert!(export(&b, &again).status.success());
    assert_eq!(exported(&again), xs, "compaction changes no record");
}

#[test]
fn check_fails_on_a_damaged_file_and_on_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, import_lines(2000)).unwrap();
    assert!(import(&db, &input).status.success());
    assert!(pulsedb(&["check", "--db", db.to_str().unwrap()])
        .status
        .success());

    // Overwrite the middle of the file with garbage.
    let mut bytes = std::fs::read(&db).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64 * 1024] {
        *b = 0xA5;
    }
    std::fs::write(&db, bytes).unwrap();
    let out = pulsedb(&["check", "--db", db.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );

    let missing = dir.path().join("none.db");
    let out = pulsedb(&["check", "--db", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no database"));
    assert!(!missing.exists(), "check creates nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_open_a_file_of_any_dimension() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d16.db");
    let config = pulsedb::Config {
        embedding_dimension: pulsedb::EmbeddingDimension::Custom(16),
        ..pulsedb::Config::default()
    };
    let handle = pulsedb::PulseHandle::open(&db, config).await.unwrap();
    let c = handle.create_collective("small").await.unwrap();
    let mut v = vec![0.0f32; 16];
    v[3] = 1.0;
    handle
        .record_experience(pulsedb::NewExperience {
            collective_id: c,
            content: "sixteen".into(),
            embedding: Some(v),
            ..pulsedb::NewExperience::default()
        })
        .await
        .unwrap();
    handle.close().await.unwrap();
    let db = db.to_str().unwrap().to_string();
    let run = move |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pulsedb(&args)
    };
    for command in ["info", "check", "compact"] {
        let out = tokio::task::spawn_blocking({
            let db = db.clone();
            move || run(vec![command.into(), "--db".into(), db])
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{command}: {}", text(&out.stderr));
        if command == "info" {
            let table = text(&out.stdout);
            assert!(table.contains("dimension         16"), "{table}");
        }
    }
}
