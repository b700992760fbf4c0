//! Index snapshots: a [`FaissIndex`] saved with the change-log sequence it
//! covers, so an open can skip the rebuild.
//!
//! # File layout (little-endian)
//!
//! | field            | size                 |
//! |------------------|----------------------|
//! | magic `PULSEIDX` | 8                    |
//! | format version   | 4 (`u32`, = 1)       |
//! | dimension        | 8 (`u64`)            |
//! | sequence         | 8 (`u64`)            |
//! | extra length     | 8 (`u64`)            |
//! | extra            | extra length         |
//! | FAISS length     | 8 (`u64`)            |
//! | FAISS index      | FAISS length (`write_index` output) |
//! | tombstone count  | 8 (`u64`)            |
//! | tombstone rows   | 8 each (`u64`)       |
//! | CRC-32           | 4 (`u32`, over every byte before it) |
//!
//! The file is written to `<path>.tmp`, fsynced, renamed over `path`, and the
//! directory fsynced, so `path` holds either the old or the new snapshot.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::ffi::RawIndex;
use super::{FaissIndex, IndexConfig, IndexError, VectorIndex};

const MAGIC: &[u8; 8] = b"PULSEIDX";
const VERSION: u32 = 1;

/// A snapshot read back from disk.
#[derive(Debug)]
pub struct Snapshot {
    /// The restored index, answering exactly as the saved one did.
    pub index: FaissIndex,
    /// The change-log sequence the snapshot covers; the caller replays the
    /// writes after it (and judges staleness).
    pub sequence: u64,
    /// The owner's payload given to `save_snapshot`.
    pub extra: Vec<u8>,
}

impl Snapshot {
    /// Loads the snapshot at `path` for an index of `dimension` components.
    ///
    /// Returns `None` when the file is missing (silently) or unreadable,
    /// truncated, corrupt (bad magic, version or checksum) or of another
    /// dimension (each logged with `tracing::warn!`): the caller rebuilds.
    /// Never panics.
    pub fn load(path: &Path, config: &IndexConfig, dimension: usize) -> Option<Snapshot> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read index snapshot");
                return None;
            }
        };
        match decode(&bytes, config, dimension) {
            Ok(snapshot) => Some(snapshot),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring index snapshot");
                None
            }
        }
    }
}

/// Writes `index` to `path` atomically (see the module docs).
pub(crate) fn write(
    index: &FaissIndex,
    path: &Path,
    sequence: u64,
    extra: &[u8],
) -> Result<(), IndexError> {
    let faiss = index.faiss_bytes()?;
    let dead = index.dead_rows();
    let mut dead_bytes = Vec::with_capacity(dead.len() * 8);
    for row in &dead {
        dead_bytes.extend_from_slice(&row.to_le_bytes());
    }
    // Streamed to the file with a running checksum: the FAISS bytes are the
    // bulk of a snapshot and are not copied again.
    let parts: [&[u8]; 10] = [
        MAGIC,
        &VERSION.to_le_bytes(),
        &(index.dimension() as u64).to_le_bytes(),
        &sequence.to_le_bytes(),
        &(extra.len() as u64).to_le_bytes(),
        extra,
        &(faiss.len() as u64).to_le_bytes(),
        &faiss,
        &(dead.len() as u64).to_le_bytes(),
        &dead_bytes,
    ];

    let tmp = temporary_path(path);
    let result = (|| {
        let mut file = std::io::BufWriter::new(File::create(&tmp)?);
        let mut crc = crc32fast::Hasher::new();
        for part in parts {
            crc.update(part);
            file.write_all(part)?;
        }
        file.write_all(&crc.finalize().to_le_bytes())?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok::<(), std::io::Error>(())
    })();
    if result.is_err() {
        // Best effort: the temporary file is garbage either way.
        let _ = fs::remove_file(&tmp);
    }
    Ok(result?)
}

/// `<path>.tmp`.
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Reads fields off the front of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.bytes.len() {
            return Err(format!("truncated in {what}"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(b))
    }

    fn len(&mut self, what: &str) -> Result<usize, String> {
        usize::try_from(self.u64(what)?).map_err(|_| format!("{what} too large"))
    }
}

fn decode(bytes: &[u8], config: &IndexConfig, dimension: usize) -> Result<Snapshot, String> {
    if bytes.len() < MAGIC.len() + 4 + 4 {
        return Err("truncated".into());
    }
    let (body, stored) = bytes.split_at(bytes.len() - 4);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(stored);
    if !body.starts_with(MAGIC) {
        return Err("bad magic".into());
    }
    if crc32fast::hash(body) != u32::from_le_bytes(crc) {
        return Err("checksum mismatch (truncated or corrupt)".into());
    }
    let mut r = Reader { bytes: body };
    r.take(MAGIC.len(), "magic")?;
    let mut version = [0u8; 4];
    version.copy_from_slice(r.take(4, "version")?);
    let version = u32::from_le_bytes(version);
    if version != VERSION {
        return Err(format!("format version {version} (expected {VERSION})"));
    }
    let stored_dimension = r.u64("dimension")?;
    if stored_dimension != dimension as u64 {
        return Err(format!(
            "dimension {stored_dimension} (expected {dimension})"
        ));
    }
    let sequence = r.u64("sequence")?;
    let extra_len = r.len("extra length")?;
    let extra = r.take(extra_len, "extra")?.to_vec();
    let faiss_len = r.len("index length")?;
    let faiss = r.take(faiss_len, "index")?;
    let dead_count = r.len("tombstone count")?;
    let dead_bytes = r.take(
        dead_count
            .checked_mul(8)
            .ok_or("tombstone count too large")?,
        "tombstones",
    )?;
    if !r.bytes.is_empty() {
        return Err("trailing bytes".into());
    }
    let dead: Vec<u64> = dead_bytes
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect();
    let raw = RawIndex::from_bytes(faiss).map_err(|e| e.to_string())?;
    let index = FaissIndex::from_raw(raw, config, dimension, &dead)?;
    Ok(Snapshot {
        index,
        sequence,
        extra,
    })
}
