//! Search correctness against a brute-force cosine oracle: exact below the
//! HNSW threshold, high recall above it, filters applied during the search,
//! recall weights, validation.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::*;
use pulsedb::*;

fn hnsw_config(threshold: usize) -> Config {
    Config {
        index: IndexConfig {
            hnsw_threshold: threshold,
            ..IndexConfig::default()
        },
        ..config()
    }
}

/// Records `n` experiences with `vector(seed)`, domain "rare" for every
/// 20th, tag `group` = i % 3, importance cycling; returns (id, vector, new).
async fn populate(db: &PulseHandle, c: CollectiveId, n: u64) -> Vec<(ExperienceId, NewExperience)> {
    let items: Vec<NewExperience> = (0..n)
        .map(|i| NewExperience {
            domain: vec![if i % 20 == 0 {
                "rare".into()
            } else {
                "common".into()
            }],
            tags: [("group".to_string(), (i % 3).to_string())].into(),
            importance: (i % 10) as f32 / 10.0,
            confidence: ((i + 5) % 10) as f32 / 10.0,
            experience_type: if i % 2 == 0 {
                ExperienceType::Fact {
                    statement: "s".into(),
                    source: "x".into(),
                }
            } else {
                ExperienceType::Generic { category: None }
            },
            ..exp(c, i)
        })
        .collect();
    let ids = db.record_experiences(items.clone()).await.unwrap();
    ids.into_iter().zip(items).collect()
}

fn vectors(items: &[(ExperienceId, NewExperience)]) -> Vec<(ExperienceId, Vec<f32>)> {
    items
        .iter()
        .map(|(id, x)| (*id, x.embedding.clone().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_search_matches_the_oracle_below_the_threshold() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let items = populate(&db, c, 300).await;
    let all = vectors(&items);
    for q in 0..20u64 {
        let query = vector(10_000 + q, DIM);
        let hits = db.search_similar(c, &query, 10).await.unwrap();
        let expected = oracle(&all, &query, 10);
        assert_eq!(hits.len(), 10);
        for (h, (id, sim)) in hits.iter().zip(&expected) {
            assert!(
                (h.similarity - sim).abs() < 1e-4,
                "similarity {} vs {sim}",
                h.similarity
            );
            assert_eq!(h.score, h.similarity, "pure cosine: score = similarity");
            if (h.similarity - sim).abs() < 1e-6 {
                assert_eq!(h.experience.id, *id);
            }
            assert!((cosine(&h.experience.embedding, &query) - h.similarity).abs() < 1e-4);
        }
        assert!(
            hits.windows(2).all(|w| w[0].similarity >= w[1].similarity),
            "best first"
        );
    }
    // k larger than the collective: everything, best first.
    let hits = db.search_similar(c, &vec16(3), 1000).await.unwrap();
    assert_eq!(hits.len(), 300);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hnsw_search_has_high_recall_and_true_similarities() {
    let db = PulseHandle::open_in_memory(hnsw_config(100)).await.unwrap();
    let c = db.create_collective("c").await.unwrap();
    let items = populate(&db, c, 600).await;
    let all = vectors(&items);
    let mut found = 0;
    let queries = 20;
    for q in 0..queries {
        let query = vector(20_000 + q, DIM);
        let hits = db.search_similar(c, &query, 10).await.unwrap();
        assert_eq!(hits.len(), 10);
        let truth: HashSet<_> = oracle(&all, &query, 10).into_iter().map(|x| x.0).collect();
        found += hits
            .iter()
            .filter(|h| truth.contains(&h.experience.id))
            .count();
        for h in &hits {
            assert!((cosine(&h.experience.embedding, &query) - h.similarity).abs() < 1e-4);
        }
    }
    let recall = found as f32 / (queries as f32 * 10.0);
    assert!(recall >= 0.9, "recall@10 = {recall}");
    // Every record is found by its own vector.
    for (id, v) in all.iter().step_by(7) {
        let hits = db.search_similar(c, v, 1).await.unwrap();
        assert_eq!(hits[0].experience.id, *id);
        assert!(hits[0].similarity > 0.999);
    }
    db.close().await.unwrap();
}

async fn check_filters(db: &PulseHandle, c: CollectiveId, items: &[(ExperienceId, NewExperience)]) {
    let rec = |id: &ExperienceId| items.iter().find(|x| x.0 == *id).unwrap().1.clone();
    let filters = vec![
        SearchFilter {
            domains: Some(vec!["rare".into()]),
            ..SearchFilter::default()
        },
        SearchFilter {
            domains: Some(vec!["rare".into(), "nope".into()]),
            ..SearchFilter::default()
        },
        SearchFilter {
            tags_all: Some([("group".to_string(), "1".to_string())].into()),
            ..SearchFilter::default()
        },
        SearchFilter {
            experience_types: Some(vec![ExperienceTypeTag::Fact]),
            ..SearchFilter::default()
        },
        SearchFilter {
            min_importance: Some(0.9),
            ..SearchFilter::default()
        },
        SearchFilter {
            min_confidence: Some(0.9),
            ..SearchFilter::default()
        },
        SearchFilter {
            domains: Some(vec!["common".into()]),
            min_importance: Some(0.8),
            experience_types: Some(vec![ExperienceTypeTag::Generic]),
            ..SearchFilter::default()
        },
    ];
    for f in filters {
        let matching: Vec<(ExperienceId, Vec<f32>)> = items
            .iter()
            .filter(|(_, x)| {
                let dom = f
                    .domains
                    .as_ref()
                    .is_none_or(|d| x.domain.iter().any(|y| d.contains(y)));
                let tag = f
                    .tags_all
                    .as_ref()
                    .is_none_or(|t| t.iter().all(|(k, v)| x.tags.get(k) == Some(v)));
                let ty = f
                    .experience_types
                    .as_ref()
                    .is_none_or(|t| t.contains(&x.experience_type.tag()));
                let imp = f.min_importance.is_none_or(|m| x.importance >= m);
                let conf = f.min_confidence.is_none_or(|m| x.confidence >= m);
                dom && tag && ty && imp && conf
            })
            .map(|(id, x)| (*id, x.embedding.clone().unwrap()))
            .collect();
        assert!(
            matching.len() >= 10,
            "filter {f:?} matches {}",
            matching.len()
        );
        for q in 0..5u64 {
            let query = vector(30_000 + q, DIM);
            let hits = db
                .search_similar_filtered(c, &query, 10, f.clone())
                .await
                .unwrap();
            assert_eq!(hits.len(), 10, "k results whenever k match ({f:?})");
            let allowed: HashSet<_> = matching.iter().map(|x| x.0).collect();
            for h in &hits {
                assert!(
                    allowed.contains(&h.experience.id),
                    "non-matching hit for {f:?}"
                );
                assert!(f.matches(&h.experience));
                let _ = rec(&h.experience.id);
            }
            let truth: HashSet<_> = oracle(&matching, &query, 10)
                .into_iter()
                .map(|x| x.0)
                .collect();
            let got = hits
                .iter()
                .filter(|h| truth.contains(&h.experience.id))
                .count();
            assert!(got >= 9, "filtered recall {got}/10 for {f:?}");
        }
        // Asking for more than match returns exactly the matching ones.
        let hits = db
            .search_similar_filtered(c, &vec16(1), 1000, f.clone())
            .await
            .unwrap();
        assert_eq!(hits.len(), matching.len(), "{f:?}");
    }
    // A filter nothing matches.
    for f in [
        SearchFilter {
            domains: Some(vec!["unknown".into()]),
            ..SearchFilter::default()
        },
        SearchFilter {
            tags_all: Some(
                [
                    ("group".to_string(), "1".to_string()),
                    ("group2".to_string(), "x".to_string()),
                ]
                .into(),
            ),
            ..SearchFilter::default()
        },
        SearchFilter {
            experience_types: Some(vec![ExperienceTypeTag::Solution]),
            ..SearchFilter::default()
        },
    ] {
        assert!(db
            .search_similar_filtered(c, &vec16(1), 10, f)
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_search_returns_k_matching_results_flat() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let items = populate(&db, c, 400).await;
    check_filters(&db, c, &items).await;
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_search_returns_k_matching_results_hnsw() {
    let db = PulseHandle::open_in_memory(hnsw_config(100)).await.unwrap();
    let c = db.create_collective("c").await.unwrap();
    let items = populate(&db, c, 400).await;
    check_filters(&db, c, &items).await;
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_are_inclusive() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let a = db
        .record_experience(NewExperience {
            importance: 0.7,
            confidence: 0.3,
            ..exp(c, 1)
        })
        .await
        .unwrap();
    let b = db
        .record_experience(NewExperience {
            importance: 0.69,
            confidence: 0.29,
            ..exp(c, 2)
        })
        .await
        .unwrap();
    let ts = db.get_experience(a).await.unwrap().unwrap().timestamp;
    let tb = db.get_experience(b).await.unwrap().unwrap().timestamp;
    let only = |f: SearchFilter| {
        let db = db.clone();
        async move {
            let mut ids: Vec<_> = db
                .search_similar_filtered(c, &vec16(1), 10, f.clone())
                .await
                .unwrap()
                .into_iter()
                .map(|h| h.experience.id)
                .collect();
            ids.sort();
            let mut recent: Vec<_> = db
                .get_recent_experiences_filtered(c, 10, f)
                .await
                .unwrap()
                .into_iter()
                .map(|x| x.id)
                .collect();
            recent.sort();
            assert_eq!(ids, recent, "search and recent agree on the filter");
            ids
        }
    };
    assert_eq!(
        only(SearchFilter {
            min_importance: Some(0.7),
            ..SearchFilter::default()
        })
        .await,
        vec![a]
    );
    assert_eq!(
        only(SearchFilter {
            min_confidence: Some(0.3),
            ..SearchFilter::default()
        })
        .await,
        vec![a]
    );
    assert!(only(SearchFilter {
        since: Some(tb),
        ..SearchFilter::default()
    })
    .await
    .contains(&b));
    assert_eq!(
        only(SearchFilter {
            since: Some(Timestamp(ts.0.max(tb.0) + 1)),
            ..SearchFilter::default()
        })
        .await,
        vec![]
    );
    let mut both = vec![a, b];
    both.sort();
    assert_eq!(
        only(SearchFilter {
            since: Some(Timestamp(ts.0.min(tb.0))),
            ..SearchFilter::default()
        })
        .await,
        both
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_weights_rank_by_score() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let query = vec16(5000);
    // 40 experiences; similarity rank is known from the oracle.
    let mut items = Vec::new();
    for i in 0..40u64 {
        items.push((i, vec16(i)));
    }
    let by_sim = oracle(&items, &query, 40);
    // The one at similarity rank 15 is the most important.
    let star = by_sim[15].0;
    let mut ids = BTreeMap::new();
    for (i, v) in &items {
        let importance = if *i == star { 1.0 } else { 0.1 };
        let id = db
            .record_experience(NewExperience {
                importance,
                ..exp_with(c, &format!("e{i}"), v.clone())
            })
            .await
            .unwrap();
        ids.insert(*i, id);
    }
    let energy_only = RecallWeights {
        similarity: 0.0,
        energy: 1.0,
    };
    let hits = db
        .search(
            c,
            &query,
            SearchOptions {
                k: 5,
                weights: Some(energy_only),
                ..SearchOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!(
        hits[0].experience.id, ids[&star],
        "weighted search re-ranks among max(4k, k+16)"
    );
    for h in &hits {
        assert!((cosine(&h.experience.embedding, &query) - h.similarity).abs() < 1e-4);
        let e = db.energy(h.experience.id).await.unwrap();
        assert!((h.score - e).abs() < 0.01);
    }
    let mixed = RecallWeights {
        similarity: 0.5,
        energy: 0.5,
    };
    let hits = db
        .search(
            c,
            &query,
            SearchOptions {
                k: 10,
                weights: Some(mixed),
                ..SearchOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "ranked by score"
    );
    for h in &hits {
        let e = db.energy(h.experience.id).await.unwrap();
        let expected = 0.5 * h.similarity.clamp(0.0, 1.0) + 0.5 * e;
        assert!(
            (h.score - expected).abs() < 0.01,
            "score {} vs {expected}",
            h.score
        );
    }
    // Without weights `search` is pure cosine, like search_similar.
    let plain = db
        .search(
            c,
            &query,
            SearchOptions {
                k: 5,
                ..SearchOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(plain[0].experience.id, ids[&by_sim[0].0]);
    assert!(plain.iter().all(|h| h.score == h.similarity));
    db.close().await.unwrap();

    // Config default weights apply to `search`, never to `search_similar*`.
    let db = PulseHandle::open_in_memory(Config {
        decay: DecayConfig {
            default_recall_weights: Some(energy_only),
            ..DecayConfig::default()
        },
        ..config()
    })
    .await
    .unwrap();
    let c = db.create_collective("c").await.unwrap();
    let mut ids = BTreeMap::new();
    for (i, v) in &items {
        let importance = if *i == star { 1.0 } else { 0.1 };
        let id = db
            .record_experience(NewExperience {
                importance,
                ..exp_with(c, &format!("e{i}"), v.clone())
            })
            .await
            .unwrap();
        ids.insert(*i, id);
    }
    let hits = db
        .search(
            c,
            &query,
            SearchOptions {
                k: 5,
                ..SearchOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(hits[0].experience.id, ids[&star]);
    let hits = db.search_similar(c, &query, 5).await.unwrap();
    assert_eq!(hits[0].experience.id, ids[&by_sim[0].0]);
    assert!(hits.iter().all(|h| h.score == h.similarity));
    let hits = db
        .search_similar_filtered(c, &query, 5, SearchFilter::default())
        .await
        .unwrap();
    assert_eq!(hits[0].experience.id, ids[&by_sim[0].0]);
    // Explicit weights override the default.
    let sim_only = RecallWeights {
        similarity: 1.0,
        energy: 0.0,
    };
    let hits = db
        .search(
            c,
            &query,
            SearchOptions {
                k: 5,
                weights: Some(sim_only),
                ..SearchOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(hits[0].experience.id, ids[&by_sim[0].0]);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similarity_spans_minus_one_to_one() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let v = vec16(1);
    db.record_experience(exp_with(c, "v", v.clone()))
        .await
        .unwrap();
    let neg: Vec<f32> = v.iter().map(|x| -x * 3.0).collect();
    let hits = db.search_similar(c, &neg, 1).await.unwrap();
    assert!(
        (hits[0].similarity + 1.0).abs() < 1e-4,
        "{}",
        hits[0].similarity
    );
    let scaled: Vec<f32> = v.iter().map(|x| x * 100.0).collect();
    let hits = db.search_similar(c, &scaled, 1).await.unwrap();
    assert!((hits[0].similarity - 1.0).abs() < 1e-4);
    // Weighted score clamps negative similarity to 0.
    let hits = db
        .search(
            c,
            &neg,
            SearchOptions {
                k: 1,
                weights: Some(RecallWeights {
                    similarity: 1.0,
                    energy: 0.0,
                }),
                ..SearchOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(hits[0].score.abs() < 1e-4);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_input_is_validated() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    db.record_experience(exp(c, 1)).await.unwrap();
    for k in [0, 1001] {
        assert_validation(db.search_similar(c, &vec16(1), k).await);
        assert_validation(
            db.search_similar_filtered(c, &vec16(1), k, SearchFilter::default())
                .await,
        );
        assert_validation(
            db.search(
                c,
                &vec16(1),
                SearchOptions {
                    k,
                    ..SearchOptions::default()
                },
            )
            .await,
        );
    }
    db.search_similar(c, &vec16(1), 1000).await.unwrap();
    match db.search_similar(c, &vector(1, DIM + 1), 5).await {
        Err(Error::Validation(ValidationError::DimensionMismatch { expected, got })) => {
            assert_eq!((expected, got), (DIM, DIM + 1))
        }
        other => panic!("expected DimensionMismatch, got {other:?}"),
    }
    let mut nan = vec16(1);
    nan[2] = f32::NAN;
    assert_validation(db.search_similar(c, &nan, 5).await);
    assert_validation(db.search_similar(c, &[0.0; DIM], 5).await);
    for w in [
        RecallWeights {
            similarity: 0.5,
            energy: 0.6,
        },
        RecallWeights {
            similarity: -0.5,
            energy: 1.5,
        },
        RecallWeights {
            similarity: f32::NAN,
            energy: 1.0,
        },
    ] {
        assert_validation(
            db.search(
                c,
                &vec16(1),
                SearchOptions {
                    weights: Some(w),
                    ..SearchOptions::default()
                },
            )
            .await,
        );
    }
    db.search(
        c,
        &vec16(1),
        SearchOptions {
            weights: Some(RecallWeights {
                similarity: 0.30005,
                energy: 0.7,
            }),
            ..SearchOptions::default()
        },
    )
    .await
    .unwrap();
    assert_validation(
        db.search_similar_filtered(
            c,
            &vec16(1),
            5,
            SearchFilter {
                min_importance: Some(f32::NAN),
                ..SearchFilter::default()
            },
        )
        .await,
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hnsw_index_is_searchable_after_reopen_and_rebuild() {
    let t = TempDb::new();
    let db = t.open_with(hnsw_config(100)).await;
    let c = db.create_collective("c").await.unwrap();
    let items = populate(&db, c, 300).await;
    // Delete and archive some, so tombstones and flags must survive.
    for (id, _) in items.iter().step_by(10) {
        db.delete_experience(*id).await.unwrap();
    }
    for (id, _) in items.iter().skip(5).step_by(10) {
        db.archive_experience(*id).await.unwrap();
    }
    db.close().await.unwrap();
    for round in 0..2 {
        if round == 1 {
            std::fs::remove_dir_all(t.index_dir()).unwrap();
        }
        let db = t.open_with(hnsw_config(100)).await;
        for (n, (id, x)) in items.iter().enumerate() {
            let hits = db
                .search_similar(c, x.embedding.as_ref().unwrap(), 1)
                .await
                .unwrap();
            if n % 10 == 0 || n % 10 == 5 {
                assert_ne!(
                    hits[0].experience.id, *id,
                    "round {round}: deleted/archived {n} found"
                );
            } else {
                assert_eq!(
                    hits[0].experience.id, *id,
                    "round {round}: record {n} missing"
                );
            }
        }
        let all = db.search_similar(c, &vec16(1), 1000).await.unwrap();
        assert_eq!(all.len(), 240, "round {round}");
        db.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_searches_and_writes_stay_correct() {
    let db = PulseHandle::open_in_memory(hnsw_config(100)).await.unwrap();
    let c = db.create_collective("c").await.unwrap();
    let items = populate(&db, c, 200).await;
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let db = db.clone();
        let items = items.clone();
        tasks.push(tokio::spawn(async move {
            for (n, (id, x)) in items
                .iter()
                .enumerate()
                .skip(t as usize)
                .step_by(8)
                .take(15)
            {
                let hits = db
                    .search_similar(c, x.embedding.as_ref().unwrap(), 1)
                    .await
                    .unwrap();
                assert_eq!(hits[0].experience.id, *id, "record {n}");
            }
        }));
    }
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            for i in 0..50u64 {
                let id = db.record_experience(exp(c, 100_000 + i)).await.unwrap();
                let hits = db.search_similar(c, &vec16(100_000 + i), 1).await.unwrap();
                assert_eq!(hits[0].experience.id, id);
            }
        })
    };
    for t in tasks {
        within(t).await.unwrap();
    }
    within(writer).await.unwrap();
    db.close().await.unwrap();
}
