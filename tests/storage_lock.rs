//! A database file open elsewhere is `Error::DatabaseLocked`, whether the
//! other opener is this process or another one.
//!
//! Uses the storage and index layers directly: needs the `internals`
//! feature (`make test` enables all features).

#![cfg(feature = "internals")]

#[path = "common/storage.rs"]
mod storage_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use pulsedb::storage::{Location, RedbStorage, StorageRead, WriteOp};
use pulsedb::Error;
use storage_common::*;

const PATH_VAR: &str = "PULSEDB_LOCK_TEST_PATH";
const READY: &str = "LOCK-HELPER-READY";

/// Run by the child process only: opens the file, says so, and holds it
/// until it is killed.
#[test]
#[ignore = "helper for a_file_open_in_another_process_is_locked"]
fn helper_hold_lock() {
    let Ok(path) = std::env::var(PATH_VAR) else {
        return;
    };
    let s = file(std::path::Path::new(&path));
    let c = new_collective(&s, "held by child");
    println!("{READY} {c}");
    // Block until killed, holding the handle.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(s);
}

#[test]
fn a_file_open_in_another_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_hold_lock",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PATH_VAR, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the child to report that it holds the file (reading blocks;
    // EOF means the child died before getting there).
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let held = loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "helper exited before opening the database");
        // libtest may print "test helper_hold_lock ... " on the same line.
        if let Some(at) = line.find(READY) {
            break line[at + READY.len()..].trim().to_string();
        }
    };

    let err = RedbStorage::open(&options(Location::File(path.clone()), DIM)).unwrap_err();
    assert!(matches!(err, Error::DatabaseLocked), "{err:?}");

    child.kill().unwrap();
    child.wait().unwrap();

    // The lock died with the process; what it committed is there.
    let s = file(&path);
    let names: Vec<String> = s
        .list_collectives()
        .unwrap()
        .into_iter()
        .map(|c| format!("{} {}", c.id, c.name))
        .collect();
    assert_eq!(names, vec![format!("{held} held by child")]);
    ok(&s, WriteOp::CreateCollective(collective("after")));
}

#[test]
fn a_second_open_in_the_same_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.redb");
    let first = file(&path);
    let err = RedbStorage::open(&options(Location::File(path.clone()), DIM)).unwrap_err();
    assert!(matches!(err, Error::DatabaseLocked), "{err:?}");
    // The refused open disturbed nothing; the first handle still writes.
    new_collective(&first, "still mine");
    drop(first);
    let again = file(&path);
    assert_eq!(again.list_collectives().unwrap().len(), 1);
}
