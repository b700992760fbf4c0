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
