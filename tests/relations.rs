//! Relations: store rules, lookups by direction and type, listing, cascades.

mod common;

use common::*;
use pulsedb::*;

fn rel(a: ExperienceId, b: ExperienceId, t: RelationType) -> NewExperienceRelation {
    NewExperienceRelation {
        source_id: a,
        target_id: b,
        relation_type: t,
        strength: 0.5,
        metadata: None,
    }
}

async fn three(db: &PulseHandle) -> (CollectiveId, Vec<ExperienceId>) {
    let c = db.create_collective("c").await.unwrap();
    let ids = db
        .record_experiences((0..3).map(|i| exp(c, i)).collect())
        .await
        .unwrap();
    (c, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_get_and_delete_a_relation() {
    let db = memory_db().await;
    let (_, ids) = three(&db).await;
    let before = Timestamp::now();
    let new = NewExperienceRelation {
        metadata: Some("m".repeat(10_240)),
        strength: 1.0,
        ..rel(ids[0], ids[1], RelationType::Supersedes)
    };
    let r = db.store_relation(new.clone()).await.unwrap();
    let got = db.get_relation(r).await.unwrap().unwrap();
    assert_eq!(got.id, r);
    assert_eq!((got.source_id, got.target_id), (ids[0], ids[1]));
    assert_eq!(got.relation_type, RelationType::Supersedes);
    assert_eq!(got.strength, 1.0);
    assert_eq!(got.metadata, new.metadata);
    assert!(got.created_at >= before);
    db.delete_relation(r).await.unwrap();
    assert_eq!(db.get_relation(r).await.unwrap(), None);
    match db.delete_relation(r).await {
        Err(Error::NotFound(NotFoundError::Relation(x))) => assert_eq!(x, r),
        other => panic!("expected NotFound(Relation), got {other:?}"),
    }
    assert_eq!(db.get_relation(RelationId::new()).await.unwrap(), None);
    // Deleted, it can be stored again.
    db.store_relation(rel(ids[0], ids[1], RelationType::Supersedes))
        .await
        .unwrap();
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relation_rules_are_enforced_and_write_nothing() {
    let db = memory_db().await;
    let (_, ids) = three(&db).await;
    let other = db.create_collective("other").await.unwrap();
    let foreign = db.record_experience(exp(other, 9)).await.unwrap();
    db.store_relation(rel(ids[0], ids[1], RelationType::Supports))
        .await
        .unwrap();
    let seq = db.get_current_sequence().await.unwrap();

    assert_validation(
        db.store_relation(rel(ids[0], ids[0], RelationType::Supports))
            .await,
    );
    assert_validation(
        db.store_relation(rel(ids[0], foreign, RelationType::Supports))
            .await,
    );
    assert_validation(
        db.store_relation(rel(ids[0], ids[1], RelationType::Supports))
            .await,
    );
    for s in [-0.1f32, 1.1, f32::NAN] {
        assert_validation(
            db.store_relation(NewExperienceRelation {
                strength: s,
                ..rel(ids[1], ids[2], RelationType::Implies)
            })
            .await,
        );
    }
    assert_validation(
        db.store_relation(NewExperienceRelation {
            metadata: Some("m".repeat(10_241)),
            ..rel(ids[1], ids[2], RelationType::Implies)
        })
        .await,
    );
    let missing = ExperienceId::new();
    for r in [
        rel(missing, ids[0], RelationType::Supports),
        rel(ids[0], missing, RelationType::Supports),
    ] {
        match db.store_relation(r).await {
            Err(Error::NotFound(NotFoundError::Experience(x))) => assert_eq!(x, missing),
            other => panic!("expected NotFound(Experience), got {other:?}"),
        }
    }
    assert_eq!(
        db.get_current_sequence().await.unwrap(),
        seq,
        "nothing written"
    );
    // Same ends, another type, or the reverse direction: allowed.
    db.store_relation(rel(ids[0], ids[1], RelationType::Elaborates))
        .await
        .unwrap();
    db.store_relation(rel(ids[1], ids[0], RelationType::Supports))
        .await
        .unwrap();
    db.store_relation(NewExperienceRelation {
        strength: 0.0,
        ..rel(ids[1], ids[2], RelationType::Implies)
    })
    .await
    .unwrap();
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn related_experiences_by_direction_and_type() {
    let db = memory_db().await;
    let (_, ids) = three(&db).await;
    let r01 = db
        .store_relation(rel(ids[0], ids[1], RelationType::Supports))
        .await
        .unwrap();
    let r02 = db
        .store_relation(rel(ids[0], ids[2], RelationType::Contradicts))
        .await
        .unwrap();
    let r20 = db
        .store_relation(rel(ids[2], ids[0], RelationType::Elaborates))
        .await
        .unwrap();
    let set = |v: Vec<(Experience, ExperienceRelation)>| {
        let mut v: Vec<_> = v.into_iter().map(|(e, r)| (e.id, r.id)).collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<(ExperienceId, RelationId)>| {
        v.sort();
        v
    };
    let out = db
        .get_related_experiences(ids[0], RelationDirection::Outgoing)
        .await
        .unwrap();
    assert_eq!(set(out.clone()), sorted(vec![(ids[1], r01), (ids[2], r02)]));
    // Full records with embeddings.
    assert!(out.iter().all(|(e, _)| e.embedding.len() == DIM));
    let inc = db
        .get_related_experiences(ids[0], RelationDirection::Incoming)
        .await
        .unwrap();
    assert_eq!(set(inc), vec![(ids[2], r20)]);
    let both = db
        .get_related_experiences(ids[0], RelationDirection::Both)
        .await
        .unwrap();
    assert_eq!(
        set(both),
        sorted(vec![(ids[1], r01), (ids[2], r02), (ids[2], r20)])
    );
    let only = db
        .get_related_experiences_filtered(
            ids[0],
            RelationDirection::Both,
            Some(RelationType::Contradicts),
        )
        .await
        .unwrap();
    assert_eq!(set(only), vec![(ids[2], r02)]);
    let none = db
        .get_related_experiences_filtered(
            ids[0],
            RelationDirection::Both,
            Some(RelationType::Implies),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    let inc1 = db
        .get_related_experiences(ids[1], RelationDirection::Incoming)
        .await
        .unwrap();
    assert_eq!(set(inc1), vec![(ids[0], r01)]);
    assert!(db
        .get_related_experiences(ids[1], RelationDirection::Outgoing)
        .await
        .unwrap()
        .is_empty());
    assert_not_found(
        db.get_related_experiences(ExperienceId::new(), RelationDirection::Both)
            .await,
    );
    assert_not_found(
        db.get_related_experiences_filtered(ExperienceId::new(), RelationDirection::Both, None)
            .await,
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_relations_pages_and_persists() {
    let t = TempDb::new();
    let db = t.open().await;
    let c = db.create_collective("c").await.unwrap();
    let ids = db
        .record_experiences((0..6).map(|i| exp(c, i)).collect())
        .await
        .unwrap();
    let other = db.create_collective("other").await.unwrap();
    let o = db
        .record_experiences(vec![exp(other, 1), exp(other, 2)])
        .await
        .unwrap();
    db.store_relation(rel(o[0], o[1], RelationType::Supports))
        .await
        .unwrap();
    let mut rels = Vec::new();
    for i in 0..5 {
        rels.push(
            db.store_relation(rel(ids[i], ids[i + 1], RelationType::RelatedTo))
                .await
                .unwrap(),
        );
    }
    let all: Vec<_> = db
        .list_relations(c, 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(all, rels, "oldest first, only this collective");
    let page: Vec<_> = db
        .list_relations(c, 2, 1)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(page, rels[1..3].to_vec());
    assert!(db.list_relations(c, 10, 5).await.unwrap().is_empty());
    assert_validation(db.list_relations(c, 0, 0).await);
    assert_validation(db.list_relations(c, 1001, 0).await);
    // Deleting an experience deletes its relations (both ends).
    db.delete_experience(ids[1]).await.unwrap();
    let left: Vec<_> = db
        .list_relations(c, 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, rels[2..].to_vec());
    db.close().await.unwrap();
    let db = t.open().await;
    let left2: Vec<_> = db
        .list_relations(c, 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left2, left);
    assert_eq!(db.get_collective_stats(c).await.unwrap().relation_count, 3);
    db.close().await.unwrap();
}
