//! What reopening a collective's index reads besides its snapshot: which
//! entities the change log says changed since the snapshot, and the raw
//! vectors of the records it holds.

use std::collections::HashSet;

use super::read::compacted_through;
use super::{codec, schema, ChangeKind, RedbStorage, StorageError};
use crate::collective::CollectiveId;
use crate::error::Result;
use crate::experience::ExperienceId;
use crate::insight::InsightId;

/// The experiences and insights of one collective named by change-log
/// entries after a position.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    pub(crate) experiences: HashSet<ExperienceId>,
    pub(crate) insights: HashSet<InsightId>,
}

impl RedbStorage {
    /// The entities of collective `c` the change log names after `since`,
    /// up to `until` (both read in one transaction). `None` when that part
    /// of the log is no longer whole (compacted past `since`), or when it
    /// records the collective itself being created or deleted: the caller
    /// cannot reconcile from the log and reads every record instead.
    ///
    /// # Errors
    /// A storage fault or an undecodable entry.
    pub(crate) fn touched_since(
        &self,
        c: CollectiveId,
        since: u64,
        until: u64,
    ) -> Result<Option<Touched>> {
        let txn = self.read_txn()?;
        let meta = txn.open_table(schema::META).map_err(StorageError::from)?;
        if compacted_through(&meta)? > since {
            return Ok(None);
        }
        let wal = txn.open_table(schema::WAL).map_err(StorageError::from)?;
        let mut touched = Touched::default();
        let range = wal
            .range(since.saturating_add(1)..=until)
            .map_err(StorageError::from)?;
        for item in range {
            let (_, v) = item.map_err(StorageError::from)?;
            let change = codec::decode_change(v.value())?;
            if change.collective_id != c {
                continue;
            }
            match change.kind {
                ChangeKind::CollectiveCreated | ChangeKind::CollectiveDeleted => return Ok(None),
                ChangeKind::ExperienceCreated
                | ChangeKind::ExperienceUpdated
                | ChangeKind::ExperienceArchived
                | ChangeKind::ExperienceDeleted => {
                    touched
                        .experiences
                        .insert(ExperienceId::from_bytes(change.entity_id));
                }
                ChangeKind::InsightCreated | ChangeKind::InsightDeleted => {
                    touched
                        .insights
                        .insert(InsightId::from_bytes(change.entity_id));
                }
                ChangeKind::RelationCreated | ChangeKind::RelationDeleted => {}
            }
        }
        Ok(Some(touched))
    }

    /// Hands `visit` the stored vector of each of `ids` (little-endian
    /// `f32` bytes, straight from the row: nothing else of the record is
    /// decoded), with its position in `ids`, all read in one transaction.
    /// Returns `false`, after visiting what it found, when a record is
    /// missing.
    ///
    /// # Errors
    /// A storage fault or a malformed row.
    pub(crate) fn visit_embeddings(
        &self,
        ids: &[ExperienceId],
        visit: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<bool> {
        let txn = self.read_txn()?;
        let exps = txn
            .open_table(schema::EXPERIENCES)
            .map_err(StorageError::from)?;
        let mut all = true;
        for (i, id) in ids.iter().enumerate() {
            match exps
                .get(id.as_bytes().as_slice())
                .map_err(StorageError::from)?
            {
                Some(row) => visit(i, codec::row_embedding_bytes(row.value())?),
                None => all = false,
            }
        }
        Ok(all)
    }
}
