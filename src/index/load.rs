//! Loading a collective's indexes: from its snapshots reconciled with
//! redb when they are usable, from redb alone otherwise.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Mutex, RwLock};

use super::collective::{
    decode_slots, snapshot_path, CollectiveIndex, IdIndex, InsightSlots, SlotMap,
};
use super::{IndexConfig, Slot, SnapshotFile, StagedIndex};
use crate::collective::CollectiveId;
use crate::error::Result;
use crate::experience::{Experience, ExperienceId};
use crate::insight::InsightId;
use crate::search::columns::Columns;
use crate::storage::{RedbStorage, StorageError, StorageRead};

/// A loaded collective index.
pub(crate) struct Loaded {
    pub(crate) index: CollectiveIndex,
    /// Both indexes came from their snapshots with nothing to reconcile.
    pub(crate) snapshot_current: bool,
}

/// Builds the collective's indexes: from a snapshot reconciled with redb
/// when one is usable, from redb alone otherwise.
///
/// Reconciliation is exact because embeddings never change: every slot of
/// the snapshot whose id is no longer stored is removed, every stored id the
/// snapshot lacks is added. The result holds exactly redb's records.
pub(crate) fn load(
    id: CollectiveId,
    storage: &RedbStorage,
    config: &IndexConfig,
    dimension: usize,
    dir: Option<&Path>,
) -> Result<Loaded> {
    let started = std::time::Instant::now();
    let current = storage.current_sequence()?;

    let snapshot = |kind: &str| -> Option<(SnapshotFile, SlotMap)> {
        let path = snapshot_path(dir?, id, kind);
        let file = SnapshotFile::read(&path, dimension)?;
        if file.sequence() > current {
            tracing::warn!(path = %path.display(), snapshot = file.sequence(), current,
                "index snapshot is ahead of the change log; rebuilding");
            return None;
        }
        let Some(slots) = decode_slots(file.extra()) else {
            tracing::warn!(path = %path.display(), "index snapshot slot map unreadable; rebuilding");
            return None;
        };
        Some((file, slots))
    };

    // Experiences, in one pass over the stored records. Snapshots hold the
    // graph, not the vectors: each record the snapshot knows puts its vector
    // back and its filter columns in place on the way, and is not kept; the
    // others are kept (without embeddings) to be added after the restore.
    let mut columns = Columns::default();
    let mut exp_snapshot = snapshot("experiences");
    let snapshot_slot: HashMap<ExperienceId, Slot> = exp_snapshot
        .as_ref()
        .map(|(_, slots)| {
            slots
                .iter()
                .map(|(slot, raw)| (ExperienceId::from_bytes(*raw), *slot))
                .collect()
        })
        .unwrap_or_default();
    let mut known: Vec<(Slot, ExperienceId)> = Vec::new();
    let mut missing: Vec<Experience> = Vec::new();
    storage.scan_experiences(id, true, &mut |mut e| {
        if let (Some((file, _)), Some(slot)) = (exp_snapshot.as_mut(), snapshot_slot.get(&e.id)) {
            if file.fill(*slot, &e.embedding) {
                columns.insert(*slot, &e);
                known.push((*slot, e.id));
                return;
            }
        }
        e.embedding = Vec::new();
        missing.push(e);
    })?;
    drop(snapshot_slot);
    let scanned = started.elapsed();
    let restored =
        exp_snapshot.and_then(|(file, slots)| file.restore(config).map(|index| (index, slots)));
    let restored_at = started.elapsed();
    let from_snapshot = restored.is_some();
    // Whether the indexes differ from what the snapshots hold.
    let mut reconciled = !from_snapshot;
    let experiences = match restored {
        Some((index, slots)) => {
            let shared = IdIndex::new(StagedIndex::from_main(index));
            // A filled slot is live in the restored index.
            let items: Vec<(Slot, ExperienceId, &[f32])> = known
                .iter()
                .map(|(slot, eid)| (*slot, *eid, &[][..]))
                .collect();
            shared.record_ids(&items)?;
            // The snapshot's slots whose record is gone.
            let kept: HashSet<Slot> = known.iter().map(|(s, _)| *s).collect();
            for (slot, _) in slots.iter().filter(|(s, _)| !kept.contains(s)) {
                reconciled |= shared.index.remove(*slot)?;
            }
            // Slots past the snapshot's are free for the records it lacks.
            if let Some(max) = slots.iter().map(|(s, _)| *s).max() {
                columns.reserve_through(max);
            }
            shared
        }
        None => {
            if !known.is_empty() {
                // The snapshot was refused after the scan: start over.
                columns = Columns::default();
                missing.clear();
                storage.scan_experiences(id, false, &mut |e| missing.push(e))?;
            }
            IdIndex::new(StagedIndex::new(dimension, config)?)
        }
    };
    drop(known);
    reconciled |= !missing.is_empty();
    tracing::debug!(
        collective = %id,
        from_snapshot,
        not_in_snapshot = missing.len(),
        scan_ms = scanned.as_millis() as u64,
        restore_ms = restored_at.saturating_sub(scanned).as_millis() as u64,
        "experience rows scanned and index restored"
    );
    for chunk in missing.chunks(4096) {
        let ids: Vec<ExperienceId> = chunk.iter().map(|e| e.id).collect();
        let mut vectors = Vec::with_capacity(chunk.len());
        for (e, eid) in chunk.iter().zip(&ids) {
            let v = storage.get_embedding(*eid)?.ok_or_else(|| {
                StorageError::Corrupt(format!("experience {eid} has no embedding"))
            })?;
            let slot = columns.next_slot();
            columns.insert(slot, e);
            vectors.push((slot, *eid, v));
        }
        let items: Vec<(Slot, ExperienceId, &[f32])> = vectors
            .iter()
            .map(|(s, id, v)| (*s, *id, v.as_slice()))
            .collect();
        experiences.add_direct(&items)?;
    }
    // A graph due for a rebuild is rebuilt aside once the collective serves.

    // Insights.
    let mut stored_insights = Vec::new();
    let mut offset = 0;
    loop {
        let page = storage.list_insight_ids(id, 1000, offset)?;
        if page.is_empty() {
            break;
        }
        offset += page.len();
        stored_insights.extend(page);
    }
    let mut insight_slots: HashMap<InsightId, Slot> = HashMap::new();
    let mut next_insight_slot: Slot = 0;
    let restored = match snapshot("insights") {
        Some((mut file, slots)) => {
            for (slot, raw) in &slots {
                if let Some(insight) = storage.get_insight(InsightId::from_bytes(*raw))? {
                    file.fill(*slot, &insight.embedding);
                }
            }
            file.restore(config).map(|index| (index, slots))
        }
        None => None,
    };
    reconciled |= restored.is_none();
    let insights = match restored {
        Some((index, slots)) => {
            let shared = IdIndex::new(StagedIndex::from_main(index));
            let known: HashSet<InsightId> = stored_insights.iter().copied().collect();
            for (slot, raw) in &slots {
                let iid = InsightId::from_bytes(*raw);
                next_insight_slot = next_insight_slot.max(slot + 1);
                if known.contains(&iid) && shared.index.contains(*slot)? {
                    insight_slots.insert(iid, *slot);
                    shared.record_ids(&[(*slot, iid, &[])])?;
                } else {
                    reconciled |= shared.index.remove(*slot)?;
                }
            }
            shared
        }
        None => IdIndex::new(StagedIndex::new(dimension, config)?),
    };
    for iid in stored_insights {
        if insight_slots.contains_key(&iid) {
            continue;
        }
        let Some(insight) = storage.get_insight(iid)? else {
            continue;
        };
        let slot = next_insight_slot;
        next_insight_slot += 1;
        insights.add_direct(&[(slot, iid, insight.embedding.as_slice())])?;
        insight_slots.insert(iid, slot);
        reconciled = true;
    }

    Ok(Loaded {
        index: CollectiveIndex {
            id,
            columns: RwLock::new(columns),
            experiences,
            insights,
            insight_slots: Mutex::new(InsightSlots {
                slots: insight_slots,
                next: next_insight_slot,
            }),
        },
        snapshot_current: !reconciled,
    })
}
