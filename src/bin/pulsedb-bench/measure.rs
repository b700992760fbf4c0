//! Measuring: percentiles, sizes on disk, peak RSS, progress lines.

use std::path::Path;
use std::time::Duration;

pub(crate) fn percentile(samples: &mut [u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx.min(samples.len() - 1)]
}

pub(crate) fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The peak resident set (VmHWM) in MB: since the start, or since the
/// last [`reset_peak_rss`].
pub(crate) fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// The resident set now (VmRSS) in MB.
pub(crate) fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// Starts a new peak: Linux resets the high-water mark to the current
/// resident set. `false` where that is not possible.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(crate) fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// A progress line on stderr, with the peak RSS so far (which phase sets
/// `peak_rss_mb` is then visible).
pub(crate) fn progress(msg: &str) {
    eprintln!(
        "[pulsedb-bench] {msg} (peak rss so far {:.0} MB)",
        peak_rss_mb()
    );
}

/// Where the bytes of a closed database go, per experience, printed to
/// stderr (`PULSEDB_BENCH_FOOTPRINT=1`): for each redb table the bytes of
/// its keys and values, its branch and page metadata and its fragmented
/// (free) page space; then redb's own bookkeeping, the free space of the
/// file, and every file beside the database (the index snapshots).
pub(crate) fn print_footprint(db_path: &Path, dir: &Path, n: usize) -> Result<(), redb::Error> {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
    let per = |bytes: u64| bytes as f64 / n.max(1) as f64;
    let db = redb::ReadOnlyDatabase::open(db_path)?;
    let txn = db.begin_read()?;
    let mut rows = Vec::new();
    let mut tables = 0;
    for handle in txn.list_tables()? {
        let name = handle.name().to_string();
        let s = txn.open_untyped_table(handle)?.stats()?;
        tables += s.stored_bytes() + s.metadata_bytes() + s.fragmented_bytes();
        rows.push((
            name,
            s.stored_bytes(),
            s.metadata_bytes(),
            s.fragmented_bytes(),
        ));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.1 + r.2 + r.3));
    progress("footprint per experience (stored / metadata / fragmented bytes):");
    for (name, stored, meta, frag) in rows {
        progress(&format!(
            "  {name:<28} {:>7.1} {:>7.1} {:>7.1}",
            per(stored),
            per(meta),
            per(frag)
        ));
    }
    let file = std::fs::metadata(db_path).map(|m| m.len()).unwrap_or(0);
    progress(&format!(
        "  {:<28} {:>7.1}",
        "rest of the database file",
        per(file.saturating_sub(tables))
    ));
    progress(&format!(
        "  {:<28} {:>7.1}",
        "other files (snapshots)",
        per(dir_bytes(dir).saturating_sub(file))
    ));
    Ok(())
}
