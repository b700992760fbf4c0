//! Context assembly: each part against the call it is defined by, each
//! include flag off and on, validation.

mod common;

use std::collections::HashSet;

use common::*;
use pulsedb::*;

struct Fixture {
    db: PulseHandle,
    c: CollectiveId,
}

async fn fixture(config: Config) -> Fixture {
    let db = PulseHandle::open_in_memory(config).await.unwrap();
    let c = db.create_collective("c").await.unwrap();
    let ids = db
        .record_experiences(
            (0..40u64)
                .map(|i| NewExperience {
                    domain: vec![if i % 2 == 0 {
                        "even".into()
                    } else {
                        "odd".into()
                    }],
                    importance: (i % 10) as f32 / 10.0,
                    ..exp(c, i)
                })
                .collect(),
        )
        .await
        .unwrap();
    for i in 0..39 {
        db.store_relation(NewExperienceRelation {
            source_id: ids[i],
            target_id: ids[i + 1],
            relation_type: RelationType::RelatedTo,
            strength: 0.5,
            metadata: None,
        })
        .await
        .unwrap();
    }
    for s in 0..10u64 {
        db.store_insight(NewDerivedInsight {
            collective_id: c,
            content: format!("i{s}"),
            embedding: Some(vec16(500 + s)),
            source_experience_ids: vec![ids[s as usize]],
            insight_type: InsightType::Pattern,
            confidence: 0.5,
            domain: vec![],
        })
        .await
        .unwrap();
    }
    for a in ["x", "y"] {
        db.register_activity(NewActivity {
            agent_id: a.into(),
            collective_id: c,
            current_task: None,
            context_summary: None,
        })
        .await
        .unwrap();
    }
    Fixture { db, c }
}

fn ids_of(v: &[SearchResult]) -> Vec<ExperienceId> {
    v.iter().map(|r| r.experience.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_part_matches_its_defining_call() {
    let Fixture { db, c } = fixture(config()).await;
    let query = vec16(7);
    let filter = SearchFilter {
        domains: Some(vec!["even".into()]),
        ..SearchFilter::default()
    };
    let weights = RecallWeights {
        similarity: 0.6,
        energy: 0.4,
    };
    let req = ContextRequest {
        collective_id: c,
        query_embedding: query.clone(),
        max_similar: 5,
        max_recent: 4,
        filter: filter.clone(),
        recall_weights: Some(weights),
        ..ContextRequest::default()
    };
    let got = db.get_context_candidates(req.clone()).await.unwrap();
    let similar = db
        .search(
            c,
            &query,
            SearchOptions {
                k: 5,
                filter: filter.clone(),
                weights: Some(weights),
            },
        )
        .await
        .unwrap();
    assert_eq!(ids_of(&got.similar_experiences), ids_of(&similar));
    for (a, b) in got.similar_experiences.iter().zip(&similar) {
        assert!((a.score - b.score).abs() < 1e-3);
        assert!((a.similarity - b.similarity).abs() < 1e-5);
    }
    let recent = db
        .get_recent_experiences_filtered(c, 4, filter.clone())
        .await
        .unwrap();
    assert_eq!(
        got.recent_experiences
            .iter()
            .map(|x| x.id)
            .collect::<Vec<_>>(),
        recent.iter().map(|x| x.id).collect::<Vec<_>>()
    );
    assert!(got.recent_experiences.iter().all(|x| filter.matches(x)));
    let insights = db.get_insights(c, &query, 5).await.unwrap();
    assert_eq!(
        got.insights.iter().map(|i| i.id).collect::<Vec<_>>(),
        insights.iter().map(|i| i.0.id).collect::<Vec<_>>(),
        "the max_similar nearest insights"
    );
    // Every relation with an end among the returned experiences, each once.
    let returned: HashSet<ExperienceId> = got
        .similar_experiences
        .iter()
        .map(|r| r.experience.id)
        .chain(got.recent_experiences.iter().map(|x| x.id))
        .collect();
    let all_rels = db.list_relations(c, 1000, 0).await.unwrap();
    let expected: HashSet<RelationId> = all_rels
        .iter()
        .filter(|r| returned.contains(&r.source_id) || returned.contains(&r.target_id))
        .map(|r| r.id)
        .collect();
    let got_rels: Vec<RelationId> = got.relations.iter().map(|r| r.id).collect();
    assert_eq!(got_rels.len(), expected.len(), "each relation once");
    assert_eq!(got_rels.into_iter().collect::<HashSet<_>>(), expected);
    assert_eq!(got.active_agents, db.get_active_agents(c).await.unwrap());
    assert_eq!(got.active_agents.len(), 2);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_flags_switch_parts_off() {
    let Fixture { db, c } = fixture(config()).await;
    let base = ContextRequest {
        collective_id: c,
        query_embedding: vec16(3),
        ..ContextRequest::default()
    };
    let full = db.get_context_candidates(base.clone()).await.unwrap();
    assert_eq!(full.similar_experiences.len(), 20);
    assert_eq!(full.recent_experiences.len(), 10);
    assert_eq!(full.insights.len(), 10);
    assert!(!full.relations.is_empty());
    assert_eq!(full.active_agents.len(), 2);

    let no_insights = db
        .get_context_candidates(ContextRequest {
            include_insights: false,
            ..base.clone()
        })
        .await
        .unwrap();
    assert!(no_insights.insights.is_empty());
    assert_eq!(no_insights.relations.len(), full.relations.len());
    assert_eq!(no_insights.active_agents.len(), 2);
    let no_rels = db
        .get_context_candidates(ContextRequest {
            include_relations: false,
            ..base.clone()
        })
        .await
        .unwrap();
    assert!(no_rels.relations.is_empty());
    assert_eq!(no_rels.insights.len(), 10);
    let no_agents = db
        .get_context_candidates(ContextRequest {
            include_active_agents: false,
            ..base.clone()
        })
        .await
        .unwrap();
    assert!(no_agents.active_agents.is_empty());
    assert_eq!(no_agents.insights.len(), 10);
    let none = db
        .get_context_candidates(ContextRequest {
            include_insights: false,
            include_relations: false,
            include_active_agents: false,
            ..base.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        ids_of(&none.similar_experiences),
        ids_of(&full.similar_experiences)
    );
    assert_eq!(none.recent_experiences, full.recent_experiences);
    assert!(none.insights.is_empty() && none.relations.is_empty() && none.active_agents.is_empty());
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_recall_weights_apply_to_context() {
    let weights = RecallWeights {
        similarity: 0.0,
        energy: 1.0,
    };
    let Fixture { db, c } = fixture(Config {
        decay: DecayConfig {
            default_recall_weights: Some(weights),
            ..DecayConfig::default()
        },
        ..config()
    })
    .await;
    let req = ContextRequest {
        collective_id: c,
        query_embedding: vec16(3),
        max_similar: 3,
        ..ContextRequest::default()
    };
    let got = db.get_context_candidates(req).await.unwrap();
    let expected = db
        .search(
            c,
            &vec16(3),
            SearchOptions {
                k: 3,
                ..SearchOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids_of(&got.similar_experiences), ids_of(&expected));
    // Energy-only ranking puts the most important first.
    assert!(got.similar_experiences[0].experience.importance >= 0.9 - 1e-6);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_request_is_validated() {
    let Fixture { db, c } = fixture(config()).await;
    let base = ContextRequest {
        collective_id: c,
        query_embedding: vec16(3),
        ..ContextRequest::default()
    };
    for bad in [
        ContextRequest {
            max_similar: 0,
            ..base.clone()
        },
        ContextRequest {
            max_similar: 1001,
            ..base.clone()
        },
        ContextRequest {
            max_recent: 0,
            ..base.clone()
        },
        ContextRequest {
            max_recent: 1001,
            ..base.clone()
        },
        ContextRequest {
            query_embedding: vector(3, DIM - 1),
            ..base.clone()
        },
        ContextRequest {
            query_embedding: vec![],
            ..base.clone()
        },
        ContextRequest {
            query_embedding: vec![0.0; DIM],
            ..base.clone()
        },
        ContextRequest {
            recall_weights: Some(RecallWeights {
                similarity: 0.9,
                energy: 0.9,
            }),
            ..base.clone()
        },
        ContextRequest {
            filter: SearchFilter {
                min_confidence: Some(f32::INFINITY),
                ..SearchFilter::default()
            },
            ..base.clone()
        },
    ] {
        assert_validation(db.get_context_candidates(bad).await);
    }
    db.get_context_candidates(ContextRequest {
        max_similar: 1000,
        max_recent: 1000,
        ..base
    })
    .await
    .unwrap();
    db.close().await.unwrap();
}
