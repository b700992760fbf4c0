//! Model-based random testing: proptest generates sequences of operations
//! (record, update, archive, unarchive, delete, relate, insight, reopen),
//! applied to PulseDB and to a simple in-memory model (`BTreeMap`s and an
//! exact k-NN oracle); every read and every search is compared after each
//! step.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use pulsedb::*;

#[derive(Debug, Clone)]
enum Op {
    Record(u64),
    Batch(Vec<u64>),
    Update(usize, f32),
    Archive(usize),
    Unarchive(usize),
    Delete(usize),
    Relate(usize, usize),
    Insight(u64, Vec<usize>),
    DeleteInsight(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..10_000).prop_map(Op::Record),
        1 => proptest::collection::vec(0u64..10_000, 1..5).prop_map(Op::Batch),
        2 => (any::<usize>(), 0.0f32..=1.0).prop_map(|(i, x)| Op::Update(i, x)),
        2 => any::<usize>().prop_map(Op::Archive),
        1 => any::<usize>().prop_map(Op::Unarchive),
        2 => any::<usize>().prop_map(Op::Delete),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Relate(a, b)),
        1 => (0u64..10_000, proptest::collection::vec(any::<usize>(), 1..4))
            .prop_map(|(s, v)| Op::Insight(s, v)),
        1 => any::<usize>().prop_map(Op::DeleteInsight),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct MExp {
    seed: u64,
    importance: f32,
    archived: bool,
}

#[derive(Debug, Default)]
struct Model {
    exps: BTreeMap<ExperienceId, MExp>,
    relations: BTreeMap<RelationId, (ExperienceId, ExperienceId)>,
    insights: BTreeMap<InsightId, (u64, Vec<ExperienceId>)>,
    /// Seeds used so far (vectors must be distinct for exact comparisons).
    used: std::collections::BTreeSet<u64>,
}

impl Model {
    fn pick(&self, i: usize) -> Option<ExperienceId> {
        (!self.exps.is_empty()).then(|| *self.exps.keys().nth(i % self.exps.len()).unwrap())
    }
}

fn fresh(model: &mut Model, mut seed: u64) -> u64 {
    while !model.used.insert(seed) {
        seed += 10_000;
    }
    seed
}

async fn step(db: &PulseHandle, c: CollectiveId, m: &mut Model, op: &Op) {
    match op {
        Op::Record(seed) => {
            let seed = fresh(m, *seed);
            let id = db.record_experience(exp(c, seed)).await.unwrap();
            m.exps.insert(
                id,
                MExp {
                    seed,
                    importance: 0.5,
                    archived: false,
                },
            );
        }
        Op::Batch(seeds) => {
            let seeds: Vec<u64> = seeds.iter().map(|s| fresh(m, *s)).collect();
            let ids = db
                .record_experiences(seeds.iter().map(|s| exp(c, *s)).collect())
                .await
                .unwrap();
            for (id, seed) in ids.into_iter().zip(seeds) {
                m.exps.insert(
                    id,
                    MExp {
                        seed,
                        importance: 0.5,
                        archived: false,
                    },
                );
            }
        }
        Op::Update(i, x) => {
            let Some(id) = m.pick(*i) else { return };
            let update = ExperienceUpdate {
                importance: Some(*x),
                ..Default::default()
            };
            db.update_experience(id, update).await.unwrap();
            m.exps.get_mut(&id).unwrap().importance = *x;
        }
        Op::Archive(i) | Op::Unarchive(i) => {
            let Some(id) = m.pick(*i) else { return };
            let archive = matches!(op, Op::Archive(_));
            if archive {
                db.archive_experience(id).await.unwrap();
            } else {
                db.unarchive_experience(id).await.unwrap();
            }
            m.exps.get_mut(&id).unwrap().archived = archive;
        }
        Op::Delete(i) => {
            let Some(id) = m.pick(*i) else { return };
            db.delete_experience(id).await.unwrap();
            m.exps.remove(&id);
            m.relations.retain(|_, (s, t)| *s != id && *t != id);
            // A deleted experience id is gone for good.
            assert_not_found(db.delete_experience(id).await);
        }
        Op::Relate(a, b) => {
            let (Some(s), Some(t)) = (m.pick(*a), m.pick(*b)) else {
                return;
            };
            let r = db
                .store_relation(NewExperienceRelation {
                    source_id: s,
                    target_id: t,
                    relation_type: RelationType::Supports,
                    strength: 0.5,
                    metadata: None,
                })
                .await;
            let duplicate = m.relations.values().any(|e| *e == (s, t));
            if s == t || duplicate {
                assert_validation(r);
            } else {
                m.relations.insert(r.unwrap(), (s, t));
            }
        }
        Op::Insight(seed, sources) => {
            let sources: Vec<ExperienceId> = sources.iter().filter_map(|i| m.pick(*i)).collect();
            if sources.is_empty() {
                return;
            }
            let seed = fresh(m, *seed) + 1_000_000;
            let id = db
                .store_insight(NewDerivedInsight {
                    collective_id: c,
                    content: format!("insight {seed}"),
                    embedding: Some(vec16(seed)),
                    source_experience_ids: sources.clone(),
                    insight_type: InsightType::Pattern,
                    confidence: 0.5,
                    domain: vec![],
                })
                .await
                .unwrap();
            m.insights.insert(id, (seed, sources));
        }
        Op::DeleteInsight(i) => {
            if m.insights.is_empty() {
                return;
            }
            let id = *m.insights.keys().nth(i % m.insights.len()).unwrap();
            db.delete_insight(id).await.unwrap();
            m.insights.remove(&id);
        }
        Op::Reopen => unreachable!("handled by the caller"),
    }
}

/// Compares a ranked result list with the exact oracle.
fn same_ranking<Id: Copy + PartialEq + std::fmt::Debug>(got: &[(Id, f32)], want: &[(Id, f32)]) {
    assert_eq!(got.len(), want.len(), "result count");
    for (g, w) in got.iter().zip(want) {
        assert!((g.1 - w.1).abs() < 1e-4, "similarity {} vs {}", g.1, w.1);
    }
    let tie = want.windows(2).any(|p| (p[0].1 - p[1].1).abs() < 1e-4);
    if !tie {
        let g: Vec<Id> = got.iter().map(|x| x.0).collect();
        let w: Vec<Id> = want.iter().map(|x| x.0).collect();
        assert_eq!(g, w, "ranking differs from the exact oracle");
    }
}

async fn compare(db: &PulseHandle, c: CollectiveId, m: &Model, probe: u64) {
    let listed = db.list_experiences(c, 1000, 0).await.unwrap();
    let got: BTreeMap<ExperienceId, MExp> = listed
        .iter()
        .map(|e| {
            let seed: u64 = e.content["experience ".len()..].parse().unwrap();
            assert_eq!(e.embedding, vec16(seed));
            (
                e.id,
                MExp {
                    seed,
                    importance: e.importance,
                    archived: e.archived,
                },
            )
        })
        .collect();
    assert_eq!(got, m.exps, "experiences differ from the model");
    for (id, e) in m.exps.iter().take(5) {
        let one = db.get_experience(*id).await.unwrap().unwrap();
        assert_eq!((one.importance, one.archived), (e.importance, e.archived));
    }
    let rels: BTreeMap<RelationId, (ExperienceId, ExperienceId)> = db
        .list_relations(c, 1000, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, (r.source_id, r.target_id)))
        .collect();
    assert_eq!(rels, m.relations, "relations differ from the model");
    let ins: BTreeMap<InsightId, (u64, Vec<ExperienceId>)> = db
        .list_insights(c, 1000, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|i| {
            (
                i.id,
                (i.content[8..].parse().unwrap(), i.source_experience_ids),
            )
        })
        .collect();
    assert_eq!(ins, m.insights, "insights differ from the model");
    let stats = db.get_collective_stats(c).await.unwrap();
    assert_eq!(stats.experience_count as usize, m.exps.len());
    assert_eq!(
        stats.archived_count as usize,
        m.exps.values().filter(|e| e.archived).count()
    );
    assert_eq!(db.index_stats(c).await.unwrap().indexed, m.exps.len());

    // Exact search against the oracle (archived excluded).
    let live: Vec<(ExperienceId, Vec<f32>)> = m
        .exps
        .iter()
        .filter(|(_, e)| !e.archived)
        .map(|(id, e)| (*id, vec16(e.seed)))
        .collect();
    for q in [vec16(probe), vec16(probe + 1)] {
        let hits = db.search_similar(c, &q, 10).await.unwrap();
        let got: Vec<(ExperienceId, f32)> = hits
            .iter()
            .map(|h| (h.experience.id, h.similarity))
            .collect();
        same_ranking(&got, &oracle(&live, &q, 10));
        let items: Vec<(InsightId, Vec<f32>)> = m
            .insights
            .iter()
            .map(|(id, (s, _))| (*id, vec16(*s)))
            .collect();
        let got: Vec<(InsightId, f32)> = db
            .get_insights(c, &q, 5)
            .await
            .unwrap()
            .iter()
            .map(|(i, s)| (i.id, *s))
            .collect();
        same_ranking(&got, &oracle(&items, &q, 5));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_the_model(ops in proptest::collection::vec(op(), 1..40), probe in 0u64..1000) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = TempDb::new();
            let mut db = t.open().await;
            let c = db.create_collective("model").await.unwrap();
            let mut m = Model::default();
            for op in &ops {
                if let Op::Reopen = op {
                    within(db.close()).await.unwrap();
                    db = t.open().await;
                } else {
                    within(step(&db, c, &mut m, op)).await;
                }
                within(compare(&db, c, &m, probe)).await;
            }
            db.close().await.unwrap();
        });
    }
}
