//! Index snapshots: a [`FaissIndex`] saved with the change-log sequence it
//! covers, so an open can skip the rebuild.
//!
//! By default a snapshot holds the index's **structure** — FAISS's
//! serialised form with the flat vector storage cut out — but not the live
//! vectors: those are already stored exactly (in redb), and keeping a
//! second, normalised copy would double the footprint of every experience
//! (1.5 KB per 384-d vector). On load the owner hands each live slot's
//! vector back ([`SnapshotFile::fill`], [`RowFill`]); they are normalised
//! exactly as at insertion and checked against a CRC of the vectors that
//! were cut out, so a snapshot never comes back with other vectors than it
//! was saved with. Rows of removed vectors (tombstones, at most
//! [`IndexConfig::tombstone_ratio`] of the rows) keep their vectors in the
//! file: the graph still routes through them and their source may be gone.
//! With [`IndexConfig::snapshot_vectors`] the file also keeps every row's
//! vector, and a load needs nothing from the owner.
//!
//! # File layout (little-endian)
//!
//! | field            | size                 |
//! |------------------|----------------------|
//! | magic `PULSEIDX` | 8                    |
//! | format version   | 4 (`u32`, = 3)       |
//! | dimension        | 8 (`u64`)            |
//! | sequence         | 8 (`u64`)            |
//! | extra length     | 8 (`u64`)            |
//! | extra            | extra length         |
//! | rows             | 8 (`u64`): vectors in the FAISS index, tombstones included |
//! | vectors CRC-32   | 4 (`u32`, over the cut-out storage: rows × dimension normalised `f32`) |
//! | head length      | 8 (`u64`)            |
//! | kept length      | 8 (`u64`): 0, or rows × dimension × 4 when the vectors are kept |
//! | tail length      | 8 (`u64`)            |
//! | head             | FAISS `write_index` output up to the flat storage's vectors |
//! | kept vectors     | kept length: every row's normalised vector, as FAISS stores them |
//! | tail             | the rest of it: the id map (`u64` count, `i64` labels) |
//! | tombstone count  | 8 (`u64`)            |
//! | tombstones       | per tombstone: row (`u64`), then its normalised vector (dimension × `f32`) |
//! | CRC-32           | 4 (`u32`, over every byte before it) |
//!
//! With the vectors kept, head, vectors and tail are FAISS's serialisation
//! byte for byte, restored from the file's buffer without a copy.
//!
//! The head ends with FAISS's length prefix of the storage (`u64`, rows ×
//! dimension), the tail is exactly the id map of an `IndexIDMap`; both are
//! checked when saving and when loading, so a FAISS whose layout differs
//! fails loudly instead of restoring garbage.
//!
//! The file is written to `<path>.tmp`, fsynced, renamed over `path`, and the
//! directory fsynced, so `path` holds either the old or the new snapshot.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::ffi::{RawIndex, DEAD_LABEL};

mod compose;
mod kept;
use super::{unit_component, unit_scale, FaissIndex, IndexConfig, IndexError, Slot, VectorIndex};

const MAGIC: &[u8; 8] = b"PULSEIDX";
/// Format 3: an experience snapshot's extra holds its filter columns, and
/// the vectors may be kept.
const VERSION: u32 = 3;

/// A snapshot restored from disk.
#[derive(Debug)]
pub struct Snapshot {
    /// The restored index, answering exactly as the saved one did.
    pub index: FaissIndex,
    /// The change-log sequence the snapshot covers; the caller judges
    /// staleness and adds what the snapshot lacks.
    pub sequence: u64,
    /// The owner's payload given to `save_snapshot`.
    pub extra: Vec<u8>,
}

impl Snapshot {
    /// Loads the snapshot at `path` for an index of `dimension` components,
    /// asking `vector_of` for the vector of every live slot (as it was
    /// added, not normalised).
    ///
    /// Returns `None` when the file is missing (silently) or unreadable,
    /// truncated, corrupt, of another dimension, or when the vectors given
    /// back are not the ones saved (each logged with `tracing::warn!`): the
    /// caller rebuilds. A slot `vector_of` knows nothing about is restored
    /// with a zero vector, so the caller must remove it. Never panics.
    pub fn load(
        path: &Path,
        config: &IndexConfig,
        dimension: usize,
        vector_of: &mut dyn FnMut(Slot) -> Option<Vec<f32>>,
    ) -> Option<Snapshot> {
        let mut file = SnapshotFile::read(path, dimension)?;
        for slot in file.slots().to_vec() {
            if let Some(v) = vector_of(slot) {
                file.fill(slot, &v);
            }
        }
        let sequence = file.sequence();
        let extra = file.extra().to_vec();
        let index = file.restore(config)?;
        Some(Snapshot {
            index,
            sequence,
            extra,
        })
    }
}

/// A snapshot read from disk, waiting for its live vectors.
///
/// [`read`](Self::read) it, look at [`sequence`](Self::sequence) and
/// [`extra`](Self::extra), [`fill`](Self::fill) the vectors of its
/// [`slots`](Self::slots), then [`restore`](Self::restore) the index.
pub struct SnapshotFile {
    path: PathBuf,
    dimension: usize,
    sequence: u64,
    extra: Vec<u8>,
    /// The graph-only file's pieces of the FAISS serialisation, until they
    /// are assembled or streamed to FAISS (empty for a kept file).
    pieces: compose::Pieces,
    /// The whole FAISS serialisation once assembled (by
    /// [`rows_to_fill`](Self::rows_to_fill)); the storage region is filled
    /// in place. Empty otherwise.
    faiss: Vec<u8>,
    /// Byte offset of the storage region in `faiss`.
    vectors_at: usize,
    vectors_crc: u32,
    /// Where FAISS reads the index from when the file kept its vectors
    /// (`faiss` is then empty): streamed, never held twice in memory.
    streamed: Option<kept::Streamed>,
    dead_rows: Vec<u64>,
    /// Row of every live slot.
    rows: HashMap<Slot, usize>,
    /// Live slots in row order.
    slots: Vec<Slot>,
    filled: Vec<bool>,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("path", &self.path)
            .field("sequence", &self.sequence)
            .field("rows", &self.filled.len())
            .field("unfilled", &self.filled.iter().filter(|f| !**f).count())
            .finish_non_exhaustive()
    }
}

impl SnapshotFile {
    /// Reads and checks the snapshot at `path`. `None` as for
    /// [`Snapshot::load`].
    pub fn read(path: &Path, dimension: usize) -> Option<SnapshotFile> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read index snapshot");
                return None;
            }
        };
        // A file that kept its vectors is checked and read by streaming;
        // any other is read whole (it holds the graph only).
        let read = kept::read(file, dimension).and_then(|streamed| match streamed {
            Ok(file) => Ok(file),
            Err(mut file) => {
                let mut bytes = Vec::new();
                file.seek(std::io::SeekFrom::Start(0))
                    .and_then(|_| file.read_to_end(&mut bytes))
                    .map_err(|e| e.to_string())?;
                decode(bytes, dimension)
            }
        });
        match read {
            Ok(mut file) => {
                file.path = path.to_owned();
                Some(file)
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring index snapshot");
                None
            }
        }
    }

    /// The change-log sequence the snapshot covers.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The owner's payload given to `save_snapshot`.
    pub fn extra(&self) -> &[u8] {
        &self.extra
    }

    /// Takes the owner's payload out (`extra` is empty afterwards).
    pub fn take_extra(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.extra)
    }

    /// The live slots, in FAISS row order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Whether `slot` is live in the snapshot.
    pub fn holds(&self, slot: Slot) -> bool {
        self.rows.contains_key(&slot)
    }

    /// Whether every row's vector is in place already (the file kept them,
    /// or they were all filled).
    pub fn is_filled(&self) -> bool {
        self.filled.iter().all(|f| *f)
    }

    /// Puts back the vector of `slot` (as it was added, not normalised).
    /// Returns false, changing nothing, for a slot the snapshot does not
    /// hold live or a vector of another dimension.
    pub fn fill(&mut self, slot: Slot, vector: &[f32]) -> bool {
        let Some(&row) = self.rows.get(&slot) else {
            return false;
        };
        self.rows_to_fill().put(row, vector)
    }

    /// Every live slot with its row, by slot.
    pub fn live_rows(&self) -> Vec<(Slot, usize)> {
        let mut rows: Vec<(Slot, usize)> = self.rows.iter().map(|(s, r)| (*s, *r)).collect();
        rows.sort_unstable();
        rows
    }

    /// The row of a live slot.
    pub fn row_of(&self, slot: Slot) -> Option<usize> {
        self.rows.get(&slot).copied()
    }

    /// Every row's vector place, to be filled by row (see [`RowFill`]);
    /// split it to fill parts on several threads.
    pub fn rows_to_fill(&mut self) -> RowFill<'_> {
        let width = self.dimension * 4;
        if self.streamed.is_some() {
            // Its vectors are in the file: nothing is taken back.
            return RowFill {
                first_row: 0,
                width,
                region: &mut [],
                filled: &mut [],
            };
        }
        if self.faiss.is_empty() {
            let (faiss, vectors_at) = self.pieces.assemble(self.filled.len(), width);
            self.faiss = faiss;
            self.vectors_at = vectors_at;
        }
        let end = self.vectors_at + self.filled.len() * width;
        RowFill {
            first_row: 0,
            width,
            region: &mut self.faiss[self.vectors_at..end],
            filled: &mut self.filled,
        }
    }

    /// Builds the index, `fill` putting the vectors back straight into
    /// FAISS's storage as FAISS reads it: the serialisation is never
    /// assembled in a buffer of ours. `fill` gets every row's place (see
    /// [`RowFill`]) and returns whether it filled what it should; rows it
    /// leaves hold zero vectors (the caller removes their slots), and when
    /// every row was filled the vectors must match the saved checksum. A
    /// kept file, or one filled already through [`fill`](Self::fill),
    /// restores without calling `fill`. `None` (logged) when `fill`
    /// returns false or the restore fails.
    pub fn restore_with(
        self,
        config: &IndexConfig,
        fill: &mut dyn FnMut(RowFill<'_>) -> bool,
    ) -> Option<FaissIndex> {
        match self.try_restore(config, fill) {
            Ok(index) => Some(index),
            Err(reason) => {
                tracing::warn!(path = %self.path.display(), %reason, "ignoring index snapshot");
                None
            }
        }
    }

    /// Builds the index from what was filled (see
    /// [`restore_with`](Self::restore_with)).
    pub fn restore(self, config: &IndexConfig) -> Option<FaissIndex> {
        self.restore_with(config, &mut |_| true)
    }

    fn try_restore(
        &self,
        config: &IndexConfig,
        fill: &mut dyn FnMut(RowFill<'_>) -> bool,
    ) -> Result<FaissIndex, String> {
        let raw = if let Some(streamed) = &self.streamed {
            streamed.restore()?
        } else if self.faiss.is_empty() {
            let rows = self.filled.len();
            let mut source = self
                .pieces
                .reader(rows, self.dimension * 4, self.vectors_crc, fill);
            RawIndex::from_reader(&mut source).map_err(|e| e.to_string())?
        } else {
            // Assembled and filled in place by `fill`/`rows_to_fill`.
            if self.is_filled() {
                let end = self.vectors_at + self.filled.len() * self.dimension * 4;
                let region = self.faiss.get(self.vectors_at..end).ok_or("bad layout")?;
                if crc32fast::hash(region) != self.vectors_crc {
                    return Err("the vectors given back differ from the saved ones".into());
                }
            }
            RawIndex::from_bytes(&self.faiss).map_err(|e| e.to_string())?
        };
        FaissIndex::from_raw(raw, config, self.dimension, &self.dead_rows)
    }
}

/// The vector places of a run of rows of a [`SnapshotFile`], filled by row
/// number. Disjoint runs ([`split_at`](Self::split_at)) fill on different
/// threads.
pub struct RowFill<'a> {
    first_row: usize,
    width: usize,
    region: &'a mut [u8],
    filled: &'a mut [bool],
}

impl<'a> RowFill<'a> {
    /// Two runs: the rows before `row` and the rest.
    pub fn split_at(self, row: usize) -> (RowFill<'a>, RowFill<'a>) {
        let at = row.saturating_sub(self.first_row).min(self.filled.len());
        let (left, right) = self.region.split_at_mut(at * self.width);
        let (left_filled, right_filled) = self.filled.split_at_mut(at);
        (
            RowFill {
                first_row: self.first_row,
                width: self.width,
                region: left,
                filled: left_filled,
            },
            RowFill {
                first_row: self.first_row + at,
                width: self.width,
                region: right,
                filled: right_filled,
            },
        )
    }

    /// Puts back the vector of `row` (as it was added, not normalised).
    /// Returns false, changing nothing, for a row outside the run or a
    /// vector of another dimension.
    pub fn put(&mut self, row: usize, vector: &[f32]) -> bool {
        let Some(i) = row.checked_sub(self.first_row) else {
            return false;
        };
        if vector.len() * 4 != self.width {
            return false;
        }
        let Some(out) = self.region.get_mut(i * self.width..(i + 1) * self.width) else {
            return false;
        };
        let scale = unit_scale(vector);
        for (chunk, x) in out.chunks_exact_mut(4).zip(vector) {
            chunk.copy_from_slice(&unit_component(*x, scale).to_le_bytes());
        }
        self.filled[i] = true;
        true
    }
}

/// Where the flat storage's vectors sit in a FAISS `IndexIDMap`
/// serialisation of `rows` vectors of `dimension` components: the byte
/// range, checked against the length prefix before it and the id map after
/// it.
fn storage_range(faiss: &[u8], rows: usize, dimension: usize) -> Result<(usize, usize), String> {
    let layout = || "unexpected FAISS layout".to_string();
    let width = dimension.checked_mul(4).ok_or_else(layout)?;
    let vectors = rows.checked_mul(width).ok_or_else(layout)?;
    let id_map = rows
        .checked_mul(8)
        .and_then(|n| n.checked_add(8))
        .ok_or_else(layout)?;
    let end = faiss.len().checked_sub(id_map).ok_or_else(layout)?;
    let start = end.checked_sub(vectors).ok_or_else(layout)?;
    let prefix = start.checked_sub(8).ok_or_else(layout)?;
    if le_u64(&faiss[prefix..start]) != (rows * dimension) as u64
        || le_u64(&faiss[end..end + 8]) != rows as u64
    {
        return Err(layout());
    }
    Ok((start, end))
}

/// The row of each live slot, and the live slots in row order, from the id
/// map's labels (`i64` each) and which rows are tombstones.
fn live_rows(labels: &[u8], dead: &[bool]) -> Result<(HashMap<Slot, usize>, Vec<Slot>), String> {
    let alive = dead.iter().filter(|d| !**d).count();
    let mut live = HashMap::with_capacity(alive);
    let mut slots = Vec::with_capacity(alive);
    for (row, label) in labels.chunks_exact(8).map(|b| le_u64(b) as i64).enumerate() {
        match (label, dead.get(row)) {
            (DEAD_LABEL, Some(true)) => {}
            (l, Some(false)) if l >= 0 && live.insert(l as Slot, row).is_none() => {
                slots.push(l as Slot)
            }
            _ => return Err(format!("bad or repeated label {label} at row {row}")),
        }
    }
    Ok((live, slots))
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b)
}

/// Writes `index` to `path` atomically (see the module docs).
pub(crate) fn write(
    index: &FaissIndex,
    path: &Path,
    sequence: u64,
    extra: &[u8],
) -> Result<(), IndexError> {
    let dimension = index.dimension();
    let faiss = index.faiss_bytes()?;
    let labels = index.labels();
    let rows = labels.len();
    let (start, end) = storage_range(&faiss, rows, dimension).map_err(IndexError::Faiss)?;
    let (head, vectors, tail) = (&faiss[..start], &faiss[start..end], &faiss[end..]);
    let labels_match = tail[8..]
        .chunks_exact(8)
        .zip(labels)
        .all(|(b, l)| le_u64(b) as i64 == *l);
    if !labels_match {
        return Err(IndexError::Faiss("unexpected FAISS layout (id map)".into()));
    }
    let width = dimension * 4;
    let dead = index.dead_rows();
    let mut dead_bytes = Vec::with_capacity(dead.len() * (8 + width));
    for row in &dead {
        let at = *row as usize * width;
        dead_bytes.extend_from_slice(&row.to_le_bytes());
        dead_bytes.extend_from_slice(&vectors[at..at + width]);
    }
    let kept: &[u8] = if index.config().snapshot_vectors {
        vectors
    } else {
        &[]
    };
    let parts: [&[u8]; 16] = [
        MAGIC,
        &VERSION.to_le_bytes(),
        &(dimension as u64).to_le_bytes(),
        &sequence.to_le_bytes(),
        &(extra.len() as u64).to_le_bytes(),
        extra,
        &(rows as u64).to_le_bytes(),
        &crc32fast::hash(vectors).to_le_bytes(),
        &(head.len() as u64).to_le_bytes(),
        &(kept.len() as u64).to_le_bytes(),
        &(tail.len() as u64).to_le_bytes(),
        head,
        kept,
        tail,
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
        Ok(le_u64(self.take(8, what)?))
    }

    fn len(&mut self, what: &str) -> Result<usize, String> {
        usize::try_from(self.u64(what)?).map_err(|_| format!("{what} too large"))
    }
}

/// The fields before the FAISS serialisation, checked against each other,
/// the dimension and `limit` (the bytes the file has for them).
struct Header {
    sequence: u64,
    extra: Vec<u8>,
    rows: usize,
    vectors_crc: u32,
    head_len: usize,
    kept_len: usize,
    tail_len: usize,
}

/// Reads the header's fields from `r`, refusing lengths past `limit`.
struct Fields<'r, R> {
    r: &'r mut R,
    limit: u64,
}

impl<R: std::io::Read> Fields<'_, R> {
    fn bytes(&mut self, n: usize, what: &str) -> Result<Vec<u8>, String> {
        if n as u64 > self.limit {
            return Err(format!("{what} longer than the file"));
        }
        let mut buf = vec![0u8; n];
        self.r
            .read_exact(&mut buf)
            .map_err(|_| format!("truncated in {what}"))?;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.bytes(4, what)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(le_u64(&self.bytes(8, what)?))
    }

    fn len(&mut self, what: &str) -> Result<usize, String> {
        let n = self.u64(what)?;
        usize::try_from(n)
            .ok()
            .filter(|_| n <= self.limit)
            .ok_or_else(|| format!("{what} too large"))
    }
}

fn read_header(r: &mut impl std::io::Read, dimension: usize, limit: u64) -> Result<Header, String> {
    let mut f = Fields { r, limit };
    if f.bytes(MAGIC.len(), "magic")? != MAGIC {
        return Err("bad magic".into());
    }
    let version = f.u32("version")?;
    if version != VERSION {
        return Err(format!("format version {version} (expected {VERSION})"));
    }
    let stored_dimension = f.u64("dimension")?;
    if stored_dimension != dimension as u64 || dimension == 0 {
        return Err(format!(
            "dimension {stored_dimension} (expected {dimension})"
        ));
    }
    let sequence = f.u64("sequence")?;
    let extra_len = f.len("extra length")?;
    let extra = f.bytes(extra_len, "extra")?;
    let rows = f.len("rows")?;
    let vectors_crc = f.u32("vectors checksum")?;
    let head_len = f.len("head length")?;
    let kept_len = f.len("kept length")?;
    let tail_len = f.len("tail length")?;
    let vectors_len = rows.checked_mul(dimension * 4).ok_or("rows too large")?;
    if Some(tail_len) != rows.checked_mul(8).and_then(|n| n.checked_add(8)) {
        return Err("id map of the wrong size".into());
    }
    if kept_len != 0 && kept_len != vectors_len {
        return Err(format!("{kept_len} bytes of kept vectors for {rows} rows"));
    }
    Ok(Header {
        sequence,
        extra,
        rows,
        vectors_crc,
        head_len,
        kept_len,
        tail_len,
    })
}

/// Reads a snapshot that holds the graph only (its vectors cut out).
fn decode(bytes: Vec<u8>, dimension: usize) -> Result<SnapshotFile, String> {
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
    let mut fields = body;
    let h = read_header(&mut fields, dimension, body.len() as u64)?;
    if h.kept_len != 0 {
        return Err("vectors kept: read by streaming".into());
    }
    let mut r = Reader { bytes: fields };
    let (rows, width) = (h.rows, dimension * 4);
    let head = r.take(h.head_len, "head")?;
    let tail = r.take(h.tail_len, "tail")?;
    let dead_count = r.len("tombstone count")?;
    let mut dead_rows = Vec::with_capacity(dead_count.min(rows));
    let mut dead = vec![false; rows];
    let mut dead_vectors = Vec::with_capacity(dead_count.min(rows));
    for _ in 0..dead_count {
        let row = r.len("tombstone row")?;
        let vector = r.take(width, "tombstone vector")?;
        if row >= rows || dead[row] {
            return Err(format!("bad tombstone row {row}"));
        }
        dead[row] = true;
        dead_rows.push(row as u64);
        dead_vectors.push((row, vector));
    }
    if !r.bytes.is_empty() {
        return Err("trailing bytes".into());
    }
    let (live, slots) = live_rows(&tail[8..], &dead)?;

    let vectors_len = rows * width;
    let total = h
        .head_len
        .checked_add(vectors_len)
        .and_then(|n| n.checked_add(h.tail_len))
        .ok_or("index too large")?;
    // Where the pieces lie in the file's bytes, which the pieces keep.
    let base = bytes.as_ptr() as usize;
    let range = |piece: &[u8]| {
        let start = piece.as_ptr() as usize - base;
        start..start + piece.len()
    };
    let (head, tail) = (range(head), range(tail));
    let dead_vectors = dead_vectors
        .into_iter()
        .map(|(row, vector)| (row, range(vector)))
        .collect();
    let pieces = compose::Pieces::new(bytes, head, tail, dead_vectors);
    pieces.check_layout(rows, dimension, total)?;
    Ok(SnapshotFile {
        path: PathBuf::new(),
        dimension,
        sequence: h.sequence,
        extra: h.extra,
        pieces,
        faiss: Vec::new(),
        vectors_at: 0,
        vectors_crc: h.vectors_crc,
        streamed: None,
        dead_rows,
        rows: live,
        slots,
        filled: dead,
    })
}
