//! A graph-only snapshot's FAISS serialisation in pieces — the head and
//! tail as saved, the tombstones' vectors — with the live vectors put back
//! either in a buffer of ours ([`Pieces::assemble`]) or straight into
//! FAISS's storage while FAISS reads ([`Pieces::reader`]).

use std::io::Read;
use std::ops::Range;

use super::{le_u64, RowFill};

/// The pieces, as ranges of the file's bytes.
#[derive(Debug, Default)]
pub(super) struct Pieces {
    bytes: Vec<u8>,
    head: Range<usize>,
    tail: Range<usize>,
    /// Each tombstone's row and normalised vector.
    dead: Vec<(usize, Range<usize>)>,
}

/// Puts the live vectors in place; returns whether it filled what it
/// should.
pub(super) type Fill<'f> = &'f mut dyn FnMut(RowFill<'_>) -> bool;

impl Pieces {
    pub(super) fn new(
        bytes: Vec<u8>,
        head: Range<usize>,
        tail: Range<usize>,
        dead: Vec<(usize, Range<usize>)>,
    ) -> Pieces {
        Pieces {
            bytes,
            head,
            tail,
            dead,
        }
    }

    fn head(&self) -> &[u8] {
        &self.bytes[self.head.clone()]
    }

    fn tail(&self) -> &[u8] {
        &self.bytes[self.tail.clone()]
    }

    /// FAISS's layout around the cut-out vectors: their count ends the
    /// head, the id map's length starts the tail, and the whole comes to
    /// `total` bytes.
    pub(super) fn check_layout(
        &self,
        rows: usize,
        dimension: usize,
        total: usize,
    ) -> Result<(), String> {
        let layout = || "unexpected FAISS layout".to_string();
        let head = self.head();
        let count = head
            .get(head.len().checked_sub(8).ok_or_else(layout)?..)
            .ok_or_else(layout)?;
        let tail = self.tail().get(..8).ok_or_else(layout)?;
        let whole = head.len() + rows * dimension * 4 + self.tail().len() == total;
        if le_u64(count) != (rows * dimension) as u64 || le_u64(tail) != rows as u64 || !whole {
            return Err(layout());
        }
        Ok(())
    }

    /// The whole serialisation in one buffer, the tombstones' vectors in
    /// place and the live ones zero; with the storage region's offset.
    /// The file's bytes are let go.
    pub(super) fn assemble(&mut self, rows: usize, width: usize) -> (Vec<u8>, usize) {
        let head_len = self.head.len();
        let mut faiss = Vec::with_capacity(head_len + rows * width + self.tail.len());
        faiss.extend_from_slice(self.head());
        // Zeroed by the allocator (fresh pages), not by a pass over them.
        faiss.resize(head_len + rows * width, 0);
        faiss.extend_from_slice(self.tail());
        for (row, vector) in &self.dead {
            let at = head_len + row * width;
            faiss[at..at + width].copy_from_slice(&self.bytes[vector.clone()]);
        }
        *self = Pieces::default();
        (faiss, head_len)
    }

    /// A reader of the serialisation for FAISS, producing the vectors when
    /// FAISS asks for them: `fill` puts the live ones straight into FAISS's
    /// storage, rows it leaves are zero, and when every row is filled the
    /// vectors must match `vectors_crc`.
    pub(super) fn reader<'a>(
        &'a self,
        rows: usize,
        width: usize,
        vectors_crc: u32,
        fill: Fill<'a>,
    ) -> Composed<'a> {
        Composed {
            pieces: self,
            rows,
            width,
            vectors_crc,
            fill: Some(fill),
            position: 0,
            spilled: None,
        }
    }
}

/// See [`Pieces::reader`].
pub(super) struct Composed<'a> {
    pieces: &'a Pieces,
    rows: usize,
    width: usize,
    vectors_crc: u32,
    fill: Option<Fill<'a>>,
    /// Bytes of the serialisation read so far.
    position: usize,
    /// The vectors, when FAISS reads them in more than one piece.
    spilled: Option<Vec<u8>>,
}

impl Composed<'_> {
    /// Puts every row's vector into `region` (zeroed or not): tombstones
    /// from the file, live rows from `fill`, zeros for the rest.
    fn produce(&mut self, region: &mut [u8]) -> std::io::Result<()> {
        let width = self.width;
        let mut filled = vec![false; self.rows];
        for (row, vector) in &self.pieces.dead {
            region[row * width..(row + 1) * width]
                .copy_from_slice(&self.pieces.bytes[vector.clone()]);
            filled[*row] = true;
        }
        // Produced once: FAISS reads its storage a single time.
        let complete = match self.fill.take() {
            Some(fill) => fill(RowFill {
                first_row: 0,
                width,
                region: &mut *region,
                filled: &mut filled,
            }),
            None => false,
        };
        if !complete {
            return Err(std::io::Error::other("the vectors were not all given back"));
        }
        let mut all = true;
        for (row, f) in filled.iter().enumerate() {
            if !f {
                region[row * width..(row + 1) * width].fill(0);
                all = false;
            }
        }
        if all && crc32fast::hash(region) != self.vectors_crc {
            return Err(std::io::Error::other(
                "the vectors given back differ from the saved ones",
            ));
        }
        Ok(())
    }
}

impl Read for Composed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let head = self.pieces.head();
        let vectors_len = self.rows * self.width;
        let vectors_end = head.len() + vectors_len;
        let n = if self.position < head.len() {
            let n = buf.len().min(head.len() - self.position);
            buf[..n].copy_from_slice(&head[self.position..self.position + n]);
            n
        } else if self.position < vectors_end {
            let offset = self.position - head.len();
            if offset == 0 && buf.len() >= vectors_len && self.spilled.is_none() {
                // FAISS reads its storage in one piece: produce it there.
                self.produce(&mut buf[..vectors_len])?;
                vectors_len
            } else {
                if self.spilled.is_none() {
                    let mut region = vec![0u8; vectors_len];
                    self.produce(&mut region)?;
                    self.spilled = Some(region);
                }
                let region = self.spilled.as_deref().unwrap_or_default();
                let n = buf.len().min(vectors_len - offset);
                buf[..n].copy_from_slice(&region[offset..offset + n]);
                n
            }
        } else {
            let tail = self.pieces.tail();
            let at = self.position - vectors_end;
            let n = buf.len().min(tail.len().saturating_sub(at));
            buf[..n].copy_from_slice(&tail[at..at + n]);
            n
        };
        self.position += n;
        Ok(n)
    }
}
