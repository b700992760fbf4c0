//! Snapshots that kept their vectors, read by streaming: one pass checks
//! the file's checksum and layout, keeping only the id map and the
//! tombstone rows; FAISS then reads its serialisation straight from the
//! file. The vectors are never held twice in memory, and the restore needs
//! nothing from the owner.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use super::{le_u64, live_rows, read_header, SnapshotFile, MAGIC};
use crate::index::ffi::RawIndex;

/// Read buffer of the streaming passes.
const BUFFER: usize = 1 << 20;

/// Where a kept snapshot's FAISS serialisation lies in its (open) file.
#[derive(Debug)]
pub(super) struct Streamed {
    file: File,
    at: u64,
    len: u64,
}

impl Streamed {
    /// Has FAISS read the index from the file, which must hold exactly the
    /// serialisation's length.
    pub(super) fn restore(&self) -> Result<RawIndex, String> {
        let mut file = &self.file;
        file.seek(SeekFrom::Start(self.at))
            .map_err(|e| e.to_string())?;
        let mut source = BufReader::with_capacity(BUFFER, file).take(self.len);
        let raw = RawIndex::from_reader(&mut source).map_err(|e| e.to_string())?;
        if source.limit() != 0 {
            return Err("FAISS read less than the saved index".into());
        }
        Ok(raw)
    }
}

/// A reader that checksums what passes through it and counts it.
struct Hashing<R> {
    inner: R,
    crc: crc32fast::Hasher,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Read> Hashing<R> {
    /// Passes `n` bytes through the checksum; returns the last eight.
    fn skip(&mut self, n: u64, what: &str) -> Result<[u8; 8], String> {
        let mut last = [0u8; 8];
        let mut left = n;
        let mut chunk = vec![0u8; BUFFER.min(n as usize)];
        while left > 0 {
            let want = chunk.len().min(left as usize);
            self.read_exact(&mut chunk[..want])
                .map_err(|_| format!("truncated in {what}"))?;
            left -= want as u64;
            // The last eight bytes of the run, however it was chunked.
            if want >= 8 {
                last.copy_from_slice(&chunk[want - 8..want]);
            } else {
                last.rotate_left(want);
                last[8 - want..].copy_from_slice(&chunk[..want]);
            }
        }
        Ok(last)
    }

    fn exact(&mut self, n: usize, what: &str) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; n];
        self.read_exact(&mut buf)
            .map_err(|_| format!("truncated in {what}"))?;
        Ok(buf)
    }
}

/// Reads `file` if it kept its vectors; a file that did not comes back
/// (the caller reads it whole).
pub(super) fn read(file: File, dimension: usize) -> Result<Result<SnapshotFile, File>, String> {
    let total = file.metadata().map_err(|e| e.to_string())?.len();
    let body = total
        .checked_sub(4)
        .filter(|b| *b >= MAGIC.len() as u64)
        .ok_or("truncated")?;
    let mut r = Hashing {
        inner: BufReader::with_capacity(BUFFER, &file),
        crc: crc32fast::Hasher::new(),
        read: 0,
    };
    let h = read_header(&mut r, dimension, body)?;
    if h.kept_len == 0 {
        drop(r);
        return Ok(Err(file));
    }
    let (rows, width) = (h.rows, dimension as u64 * 4);
    let at = r.read;
    let head_end = r.skip(h.head_len as u64, "head")?;
    r.skip(h.kept_len as u64, "kept vectors")?;
    let tail = r.exact(h.tail_len, "tail")?;
    let dead_count = usize::try_from(le_u64(&r.exact(8, "tombstone count")?))
        .ok()
        .filter(|n| *n <= rows)
        .ok_or("too many tombstones")?;
    let mut dead = vec![false; rows];
    let mut dead_rows = Vec::with_capacity(dead_count);
    for _ in 0..dead_count {
        let row = le_u64(&r.exact(8, "tombstone row")?);
        r.skip(width, "tombstone vector")?;
        match dead.get_mut(row as usize) {
            Some(d) if !*d => *d = true,
            _ => return Err(format!("bad tombstone row {row}")),
        }
        dead_rows.push(row);
    }
    if r.read != body {
        return Err("trailing bytes".into());
    }
    let computed = r.crc.clone().finalize();
    let mut stored = [0u8; 4];
    r.inner
        .read_exact(&mut stored)
        .map_err(|_| "truncated in checksum")?;
    if computed != u32::from_le_bytes(stored) {
        return Err("checksum mismatch (truncated or corrupt)".into());
    }
    // FAISS's layout around the vectors: their count ends the head, the
    // id map's length starts the tail.
    if le_u64(&head_end) != rows as u64 * dimension as u64 || le_u64(&tail[..8]) != rows as u64 {
        return Err("unexpected FAISS layout".into());
    }
    let (live, slots) = live_rows(&tail[8..], &dead)?;
    let len = (h.head_len + h.kept_len + h.tail_len) as u64;
    Ok(Ok(SnapshotFile {
        path: Default::default(),
        dimension,
        sequence: h.sequence,
        extra: h.extra,
        faiss: Vec::new(),
        pieces: Default::default(),
        vectors_at: 0,
        vectors_crc: h.vectors_crc,
        streamed: Some(Streamed { file, at, len }),
        dead_rows,
        rows: live,
        slots,
        filled: vec![true; rows],
    }))
}
