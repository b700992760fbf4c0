//! `pulsedb check` and `pulsedb compact`: verifying and shrinking a file.

use std::path::Path;
use std::time::Duration;

use indicatif::ProgressBar;
use pulsedb::Error;

use crate::EmbedderChoice;

fn exists(db: &Path) -> pulsedb::Result<()> {
    if db.is_file() {
        Ok(())
    } else {
        Err(Error::Io(std::io::Error::other(format!(
            "no database at {}",
            db.display()
        ))))
    }
}

/// Runs `work` with panic messages kept off stderr (at debug level in the
/// log): redb panics on some damaged pages instead of answering an error,
/// and the check reports the failure in its one line.
async fn quietly<T>(work: impl std::future::Future<Output = T>) -> T {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| tracing::debug!(%info, "panic")));
    let out = work.await;
    std::panic::set_hook(previous);
    out
}

/// A spinner on stderr (drawn only on a terminal) while `what` runs.
fn spinner(what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(what);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

pub(crate) async fn check(db: &Path) -> pulsedb::Result<()> {
    exists(db)?;
    let progress = spinner("checking the file's integrity");
    let sound = match quietly(pulsedb::check_file_integrity(db)).await {
        Ok(sound) => sound,
        Err(e @ (Error::DatabaseLocked | Error::Io(_))) => return Err(e),
        Err(e) => {
            return Err(Error::Io(std::io::Error::other(format!(
                "the file is damaged beyond repair ({e})"
            ))))
        }
    };
    progress.set_message("checking records, indexes and the change log");
    let (handle, _) = crate::open(db, EmbedderChoice::None, true).await?;
    let report = quietly(handle.check()).await;
    handle.close().await?;
    progress.finish_and_clear();
    let mut report = report?;
    if !sound {
        report
            .problems
            .insert(0, "redb found damage in the file and repaired it".into());
    }
    println!(
        "checked {} collectives, {} experiences, {} insights, {} relations, {} change-log entries",
        report.collectives,
        report.experiences,
        report.insights,
        report.relations,
        report.log_entries
    );
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    if report.is_ok() {
        println!("ok");
        Ok(())
    } else {
        Err(Error::Io(std::io::Error::other(format!(
            "check failed: {} problems",
            report.problems.len()
        ))))
    }
}

pub(crate) async fn compact(db: &Path) -> pulsedb::Result<()> {
    exists(db)?;
    let before = std::fs::metadata(db)?.len();
    let progress = spinner("compacting the change log");
    let (handle, _) = crate::open(db, EmbedderChoice::None, false).await?;
    let removed = handle.compact_change_log().await;
    let retention = handle.config().change_log.retention;
    progress.set_message("compacting the file");
    // Closing compacts the file (`compact_on_close`).
    let closed = handle.close().await;
    progress.finish_and_clear();
    let removed = removed?;
    closed?;
    let after = std::fs::metadata(db)?.len();
    println!(
        "change log: removed {removed} entries older than {} days",
        retention.as_secs() / 86_400
    );
    println!("file: {} → {} bytes", before, after);
    Ok(())
}
