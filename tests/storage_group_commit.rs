//! Group commit: one `apply` batch, one transaction, but every operation
//! keeps its own fate. Failed operations leave no trace in any table or in
//! the change log.
//!
//! Uses the storage and index layers directly: needs the `internals`
//! feature (`make test` enables all features).

#![cfg(feature = "internals")]

#[path = "common/storage.rs"]
mod storage_common;

use std::collections::BTreeMap;

use pulsedb::storage::{ChangeKind, RedbStorage, StorageRead, StorageWrite, WriteOp};
use pulsedb::{
    CollectiveId, Error, ExperienceId, ExperienceUpdate, NotFoundError, RelationType, Timestamp,
};
use storage_common::*;

/// A change-log entry without its wall-clock timestamp.
type LogEntry = (
    u64,
    ChangeKind,
    [u8; 16],
    CollectiveId,
    Option<pulsedb::Experience>,
);

/// Everything the read API can see, in a comparable form.
#[derive(Debug, PartialEq)]
struct Snapshot {
    collectives: Vec<pulsedb::Collective>,
    per_collective: Vec<CollectiveView>,
    log: Vec<LogEntry>,
    sequence: u64,
}

#[derive(Debug, PartialEq)]
struct CollectiveView {
    stats: pulsedb::CollectiveStats,
    experiences: Vec<pulsedb::Experience>,
    relations: Vec<pulsedb::ExperienceRelation>,
    relation_index: Vec<(
        ExperienceId,
        Vec<pulsedb::RelationId>,
        Vec<pulsedb::RelationId>,
    )>,
    insights: Vec<pulsedb::DerivedInsight>,
    activities: Vec<pulsedb::Activity>,
}

fn snapshot(s: &RedbStorage, probe_ids: &[ExperienceId]) -> Snapshot {
    let collectives = s.list_collectives().unwrap();
    let mut per_collective = Vec::new();
    for c in &collectives {
        let ids = s.list_experience_ids(c.id, usize::MAX, 0).unwrap();
        let experiences = s.get_experiences(&ids).unwrap();
        let mut all_ids: Vec<ExperienceId> = ids.clone();
        all_ids.extend_from_slice(probe_ids);
        per_collective.push(CollectiveView {
            stats: s.collective_stats(c.id).unwrap(),
            relations: s.list_relations(c.id, usize::MAX, 0).unwrap(),
            relation_index: all_ids
                .iter()
                .map(|id| {
                    (
                        *id,
                        s.relation_ids_by_source(*id).unwrap(),
                        s.relation_ids_by_target(*id).unwrap(),
                    )
                })
                .collect(),
            insights: s
                .list_insight_ids(c.id, usize::MAX, 0)
                .unwrap()
                .into_iter()
                .map(|i| s.get_insight(i).unwrap().unwrap())
                .collect(),
            activities: s.list_activities(c.id, Timestamp(0)).unwrap(),
            experiences,
        });
    }
    Snapshot {
        collectives,
        per_collective,
        log: s
            .changes_since(0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(q, c)| (q, c.kind, c.entity_id, c.collective_id, c.experience))
            .collect(),
        sequence: s.current_sequence().unwrap(),
    }
}

#[test]
fn a_mixed_batch_commits_the_good_and_drops_the_bad() {
    // Two databases get the same setup; `mixed` then receives the batch with
    // failing operations, `clean` only its good operations (same ids). Both
    // must end identical.
    let mixed = memory();
    let clean = memory();
    let c = collective("c");
    let other = collective("other");
    let mut tagged = experience(c.id, "tagged");
    tagged.tags = BTreeMap::from([("lang".to_string(), "rust".to_string())]);
    let plain = experience(c.id, "plain");
    let foreign = experience(other.id, "foreign");
    let existing_rel = relation(tagged.id, plain.id, RelationType::Supports);
    let setup = vec![
        WriteOp::CreateCollective(c.clone()),
        WriteOp::CreateCollective(other.clone()),
        WriteOp::RecordExperiences(vec![tagged.clone(), plain.clone()]),
        WriteOp::RecordExperiences(vec![foreign.clone()]),
        WriteOp::StoreRelation(existing_rel.clone()),
        WriteOp::UpsertActivity(activity(c.id, "agent", 10)),
    ];
    for s in [&mixed, &clean] {
        for r in s.apply(setup.clone()).unwrap() {
            r.unwrap();
        }
    }
    let setup_seq = mixed.current_sequence().unwrap();

    let third = collective("third");
    let fresh = experience(c.id, "fresh");
    let ghost = ExperienceId::new();
    let unknown_collective = CollectiveId::new();
    let lost: Vec<_> = (0..2)
        .map(|i| experience(unknown_collective, &format!("lost {i}")))
        .collect();
    let good_rel = relation(fresh.id, plain.id, RelationType::Elaborates);
    let to_missing = relation(tagged.id, ghost, RelationType::Implies);
    let duplicate = relation(tagged.id, plain.id, RelationType::Supports);
    let to_lost = relation(plain.id, lost[0].id, RelationType::RelatedTo);
    let cross_insight = insight(c.id, vec![tagged.id, foreign.id]);
    let good_insight = insight(c.id, vec![tagged.id, fresh.id]);
    let retag = ExperienceUpdate {
        tags: Some(BTreeMap::from([("lang".to_string(), "go".to_string())])),
        archived: Some(true),
        ..Default::default()
    };

    let batch = vec![
        (true, WriteOp::CreateCollective(third.clone())),
        (
            false,
            WriteOp::UpdateExperience {
                id: ghost,
                update: retag.clone(),
            },
        ),
        (true, WriteOp::RecordExperiences(vec![fresh.clone()])),
        (false, WriteOp::StoreRelation(to_missing.clone())),
        (false, WriteOp::StoreRelation(duplicate.clone())),
        (true, WriteOp::StoreRelation(good_rel.clone())),
        (false, WriteOp::StoreInsight(cross_insight.clone())),
        (false, WriteOp::RecordExperiences(lost.clone())),
        (false, WriteOp::StoreRelation(to_lost.clone())),
        (true, WriteOp::StoreInsight(good_insight.clone())),
        (
            true,
            WriteOp::ReinforceExperience {
                id: plain.id,
                at: Timestamp(99),
            },
        ),
        (
            false,
            WriteOp::ReinforceExperience {
                id: ghost,
                at: Timestamp(99),
            },
        ),
        (false, WriteOp::DeleteExperience(ghost)),
        (
            true,
            WriteOp::UpdateExperience {
                id: tagged.id,
                update: retag,
            },
        ),
        (
            false,
            WriteOp::Heartbeat {
                agent_id: "nobody".into(),
                collective_id: c.id,
                at: Timestamp(11),
            },
        ),
        (
            true,
            WriteOp::Heartbeat {
                agent_id: "agent".into(),
                collective_id: c.id,
                at: Timestamp(12),
            },
        ),
        (false, WriteOp::DeleteCollective(unknown_collective)),
        (false, WriteOp::CreateCollective(c.clone())),
    ];
    let results = mixed
        .apply(batch.iter().map(|(_, op)| op.clone()).collect())
        .unwrap();
    assert_eq!(results.len(), batch.len());
    for (i, ((good, _), r)) in batch.iter().zip(&results).enumerate() {
        assert_eq!(*good, r.is_ok(), "op {i}: {r:?}");
    }
    // The failures are the right answers.
    let errs: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(matches!(errs[0], Error::NotFound(NotFoundError::Experience(id)) if *id == ghost));
    assert!(matches!(errs[1], Error::NotFound(NotFoundError::Experience(id)) if *id == ghost));
    assert!(errs[2].is_validation());
    assert!(errs[3].is_validation());
    assert!(
        matches!(errs[4], Error::NotFound(NotFoundError::Collective(id)) if *id == unknown_collective)
    );
    assert!(matches!(errs[5], Error::NotFound(NotFoundError::Experience(id)) if *id == lost[0].id));
    assert!(matches!(errs[6], Error::NotFound(NotFoundError::Experience(id)) if *id == ghost));
    assert!(matches!(
        errs[8],
        Error::NotFound(NotFoundError::Activity { .. })
    ));
    assert!(
        matches!(errs[9], Error::NotFound(NotFoundError::Collective(id)) if *id == unknown_collective)
    );
    assert!(errs[10].is_validation());

    // Sequences of the committed operations' events are consecutive.
    let event_seqs: Vec<u64> = results
        .iter()
        .flatten()
        .flat_map(|c| c.events.iter().map(|e| e.sequence))
        .collect();
    assert!(event_seqs.windows(2).all(|w| w[0] < w[1]));

    let good_ops: Vec<WriteOp> = batch
        .iter()
        .filter(|(good, _)| *good)
        .map(|(_, op)| op.clone())
        .collect();
    let n_good = good_ops.len();
    for r in clean.apply(good_ops).unwrap() {
        r.unwrap();
    }

    let probes: Vec<ExperienceId> = vec![ghost, lost[0].id, lost[1].id, fresh.id];
    let got = snapshot(&mixed, &probes);
    let want = snapshot(&clean, &probes);
    assert_eq!(got, want);

    // And explicitly: no trace of the failures.
    for id in [ghost, lost[0].id, lost[1].id] {
        assert_eq!(mixed.get_experience(id).unwrap(), None);
        assert_eq!(mixed.get_embedding(id).unwrap(), None);
    }
    for r in [&to_missing, &duplicate, &to_lost] {
        assert_eq!(mixed.get_relation(r.id).unwrap(), None);
    }
    assert_eq!(mixed.get_insight(cross_insight.id).unwrap(), None);
    assert!(mixed.relation_ids_by_target(ghost).unwrap().is_empty());
    assert_eq!(
        mixed.relation_ids_by_source(tagged.id).unwrap(),
        vec![existing_rel.id]
    );
    assert_eq!(mixed.get_collective(unknown_collective).unwrap(), None);
    assert_eq!(mixed.get_activity("nobody", c.id).unwrap(), None);
    // Good ones did commit, with the index maintenance they imply.
    let tagged_now = mixed.get_experience(tagged.id).unwrap().unwrap();
    assert_eq!(
        tagged_now.tags,
        BTreeMap::from([("lang".to_string(), "go".to_string())])
    );
    assert!(tagged_now.archived);
    assert_eq!(
        mixed
            .get_experience(plain.id)
            .unwrap()
            .unwrap()
            .applications,
        1
    );
    assert_eq!(
        mixed
            .get_activity("agent", c.id)
            .unwrap()
            .unwrap()
            .last_heartbeat,
        Timestamp(12)
    );

    // The change log: gap-free, one entry per good logged op, none for the
    // failures (the heartbeat is not logged).
    assert_gap_free(&mixed);
    let entries = mixed.changes_since(setup_seq, usize::MAX).unwrap();
    assert_eq!(entries.len(), n_good - 1);
    let failed_entities: Vec<[u8; 16]> = vec![
        *ghost.as_bytes(),
        *lost[0].id.as_bytes(),
        *lost[1].id.as_bytes(),
        *to_missing.id.as_bytes(),
        *duplicate.id.as_bytes(),
        *to_lost.id.as_bytes(),
        *cross_insight.id.as_bytes(),
        *unknown_collective.as_bytes(),
    ];
    for (_, e) in &entries {
        assert!(!failed_entities.contains(&e.entity_id), "{e:?}");
    }
    // A create of an existing collective is not logged a second time.
    let creates_of_c = mixed
        .changes_since(0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.kind == ChangeKind::CollectiveCreated && e.entity_id == *c.id.as_bytes())
        .count();
    assert_eq!(creates_of_c, 1);
}

#[test]
fn later_ops_in_a_batch_see_earlier_ones() {
    let s = memory();
    let c = collective("c");
    let a = experience(c.id, "a");
    let b = experience(c.id, "b");
    let r = relation(a.id, b.id, RelationType::Supports);
    let results = s
        .apply(vec![
            WriteOp::CreateCollective(c.clone()),
            WriteOp::RecordExperiences(vec![a.clone(), b.clone()]),
            WriteOp::StoreRelation(r.clone()),
            // Same triple again in the same batch: a duplicate.
            WriteOp::StoreRelation(relation(a.id, b.id, RelationType::Supports)),
            WriteOp::DeleteExperience(b.id),
            // b is gone: its relation went with it.
            WriteOp::DeleteRelation(r.id),
            WriteOp::ReinforceExperience {
                id: b.id,
                at: Timestamp(1),
            },
        ])
        .unwrap();
    let fates: Vec<bool> = results.iter().map(|r| r.is_ok()).collect();
    assert_eq!(fates, vec![true, true, true, false, true, false, false]);
    assert_eq!(s.list_experience_ids(c.id, 10, 0).unwrap(), vec![a.id]);
    assert!(s.list_relations(c.id, 10, 0).unwrap().is_empty());
    assert_eq!(s.current_sequence().unwrap(), 5);
    assert_gap_free(&s);
}

#[test]
fn an_empty_batch_commits_nothing() {
    let s = memory();
    assert!(s.apply(Vec::new()).unwrap().is_empty());
    assert_eq!(s.current_sequence().unwrap(), 0);
}
