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
