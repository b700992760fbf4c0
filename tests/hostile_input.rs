//! Hostile input through the public API: every documented limit one past
//! its boundary (and at it), NaN / infinite / zero / wrong-dimension
//! vectors, unknown ids of every kind, a deleted collective, a closed
//! handle and read-only mode. Each gives its documented error and leaves
//! the database content unchanged (a full dump through the public API —
//! every collective, experience, relation, insight, activity, the stats and
//! the change log from sequence 0 — is compared before and after). Also:
//! random bytes as index snapshot files and headers never panic.
//!
//! Uses the storage and index layers directly: needs the `internals`
//! feature (`make test` enables all features).

#![cfg(feature = "internals")]

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use common::*;
use proptest::prelude::*;
use pulsedb::index::VectorIndex;
use pulsedb::*;

type Call = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// The documented error.
#[derive(Debug, Clone)]
enum Want {
    Validation,
    NotFound(NotFoundError),
    ReadOnly,
    Closed,
}

fn matches(want: &Want, got: &Result<()>) -> bool {
    match (want, got) {
        (Want::Validation, Err(Error::Validation(_))) => true,
        (Want::NotFound(w), Err(Error::NotFound(g))) => w == g,
        (Want::ReadOnly, Err(Error::ReadOnly)) => true,
        (Want::Closed, Err(Error::Closed)) => true,
        _ => false,
    }
}

#[derive(Default)]
struct Table {
    cases: Vec<(String, Want, Call)>,
}

impl Table {
    fn push<T, F>(&mut self, name: impl Into<String>, want: Want, fut: F)
    where
        F: Future<Output = Result<T>> + Send + 'static,
    {
        self.cases.push((
            name.into(),
            want,
            Box::pin(async move { fut.await.map(|_| ()) }),
        ));
    }
}

/// Everything the public API shows about the database.
#[derive(Debug, PartialEq)]
struct Dump {
    collectives: Vec<Collective>,
    experiences: Vec<Experience>,
    relations: Vec<ExperienceRelation>,
    insights: Vec<DerivedInsight>,
    activities: Vec<Activity>,
    stats: Vec<(u64, u64, u64, u64)>,
    sequence: u64,
    changes: Vec<(u64, ExperienceId, WatchEventType)>,
}

async fn dump(db: &PulseHandle) -> Dump {
    let collectives = db.list_collectives().await.unwrap();
    let mut d = Dump {
        collectives: collectives.clone(),
        experiences: vec![],
        relations: vec![],
        insights: vec![],
        activities: vec![],
        stats: vec![],
        sequence: db.get_current_sequence().await.unwrap(),
        changes: vec![],
    };
    for c in &collectives {
        let mut off = 0;
        loop {
            let page = db.list_experiences(c.id, 1000, off).await.unwrap();
            if page.is_empty() {
                break;
            }
            off += page.len();
            d.experiences.extend(page);
        }
        d.relations
            .extend(db.list_relations(c.id, 1000, 0).await.unwrap());
        d.insights
            .extend(db.list_insights(c.id, 1000, 0).await.unwrap());
        d.activities
            .extend(db.get_active_agents(c.id).await.unwrap());
        let s = db.get_collective_stats(c.id).await.unwrap();
        d.stats.push((
            s.experience_count,
            s.archived_count,
            s.insight_count,
            s.relation_count,
        ));
    }
    let mut since = 0;
    loop {
        let (events, next) = db.poll_changes(since).await.unwrap();
        d.changes.extend(
            events
                .iter()
                .map(|e| (e.sequence, e.experience_id, e.event_type)),
        );
        if next == since {
            break;
        }
        since = next;
    }
    d
}

async fn run_table(db: &PulseHandle, table: Table) -> usize {
    let before = dump(db).await;
    let n = table.cases.len();
    for (name, want, call) in table.cases {
        let got = within(call).await;
        assert!(matches(&want, &got), "{name}: want {want:?}, got {got:?}");
    }
    let after = dump(db).await;
    assert!(
        before == after,
        "database content changed by rejected calls"
    );
    n
}

fn bytes(n: usize) -> String {
    "a".repeat(n)
}

fn strings(n: usize, len: usize) -> Vec<String> {
    (0..n).map(|i| format!("{i:0len$}")).collect()
}

fn tags(n: usize, key: usize, value: usize) -> BTreeMap<String, String> {
    (0..n)
        .map(|i| (format!("{i:0key$}"), bytes(value)))
        .collect()
}

fn bad_vectors() -> Vec<(&'static str, Vec<f32>)> {
    let mut nan = vec16(1);
    nan[3] = f32::NAN;
    let mut inf = vec16(1);
    inf[0] = f32::INFINITY;
    let mut ninf = vec16(1);
    ninf[15] = f32::NEG_INFINITY;
    vec![
        ("empty", vec![]),
        ("dimension - 1", vector(1, DIM - 1)),
        ("dimension + 1", vector(1, DIM + 1)),
        ("NaN component", nan),
        ("+inf component", inf),
        ("-inf component", ninf),
        ("all zero", vec![0.0; DIM]),
    ]
}

struct Fixture {
    t: TempDb,
    c: CollectiveId,
    other: CollectiveId,
    gone: CollectiveId,
    e1: ExperienceId,
    e2: ExperienceId,
    e_other: ExperienceId,
    many: Vec<ExperienceId>,
}

async fn fixture() -> (PulseHandle, Fixture) {
    let t = TempDb::new();
    let db = t.open().await;
    let c = db.create_collective("c").await.unwrap();
    let other = db.create_collective("other").await.unwrap();
    let gone = db.create_collective("gone").await.unwrap();
    db.record_experience(exp(gone, 0)).await.unwrap();
    db.delete_collective(gone).await.unwrap();
    let e1 = db.record_experience(exp(c, 1)).await.unwrap();
    let e2 = db.record_experience(exp(c, 2)).await.unwrap();
    let e_other = db.record_experience(exp(other, 3)).await.unwrap();
    let many = db
        .record_experiences((100..201).map(|i| exp(c, i)).collect())
        .await
        .unwrap();
    db.store_relation(NewExperienceRelation {
        source_id: e1,
        target_id: e2,
        relation_type: RelationType::Supports,
        strength: 0.5,
        metadata: None,
    })
    .await
    .unwrap();
    db.store_insight(insight(c, vec![e1])).await.unwrap();
    db.register_activity(NewActivity {
        agent_id: "agent".into(),
        collective_id: c,
        current_task: None,
        context_summary: None,
    })
    .await
    .unwrap();
    (
        db,
        Fixture {
            t,
            c,
            other,
            gone,
            e1,
            e2,
            e_other,
            many,
        },
    )
}

fn insight(c: CollectiveId, sources: Vec<ExperienceId>) -> NewDerivedInsight {
    NewDerivedInsight {
        collective_id: c,
        content: "insight".into(),
        embedding: Some(vec16(9)),
        source_experience_ids: sources,
        insight_type: InsightType::Pattern,
        confidence: 0.5,
        domain: vec![],
    }
}

fn rel(s: ExperienceId, t: ExperienceId) -> NewExperienceRelation {
    NewExperienceRelation {
        source_id: s,
        target_id: t,
        relation_type: RelationType::Elaborates,
        strength: 0.5,
        metadata: None,
    }
}

/// Every limit one past its boundary, every bad vector: `Validation`.
fn invalid_inputs(db: &PulseHandle, f: &Fixture) -> Table {
    let mut t = Table::default();
    let c = f.c;
    let v = Want::Validation;
    let e = |n: NewExperience| NewExperience {
        collective_id: c,
        ..n
    };
    let base = || exp(c, 7);
    let mut rec = |name: &str, n: NewExperience| {
        t.push(format!("record: {name}"), v.clone(), {
            let db = db.clone();
            async move { db.record_experience(n).await }
        });
    };
    rec(
        "empty content",
        NewExperience {
            content: String::new(),
            ..base()
        },
    );
    rec(
        "content 102 401 bytes",
        NewExperience {
            content: bytes(102_401),
            ..base()
        },
    );
    rec(
        "content 51 201 two-byte chars",
        NewExperience {
            content: "é".repeat(51_201),
            ..base()
        },
    );
    for (field, val) in [("importance", 0), ("confidence", 1)] {
        for x in [f32::NAN, f32::INFINITY, -f32::INFINITY, -0.001, 1.001] {
            let mut n = base();
            if val == 0 {
                n.importance = x;
            } else {
                n.confidence = x;
            }
            rec(&format!("{field} {x}"), n);
        }
    }
    rec(
        "51 domains",
        NewExperience {
            domain: strings(51, 3),
            ..base()
        },
    );
    rec(
        "empty domain",
        NewExperience {
            domain: vec![String::new()],
            ..base()
        },
    );
    rec(
        "domain of 101 bytes",
        NewExperience {
            domain: vec![bytes(101)],
            ..base()
        },
    );
    rec(
        "51 tags",
        NewExperience {
            tags: tags(51, 3, 1),
            ..base()
        },
    );
    rec(
        "empty tag key",
        NewExperience {
            tags: [(String::new(), "v".to_string())].into(),
            ..base()
        },
    );
    rec(
        "tag key of 101 bytes",
        NewExperience {
            tags: tags(1, 101, 1),
            ..base()
        },
    );
    rec(
        "tag value of 201 bytes",
        NewExperience {
            tags: tags(1, 3, 201),
            ..base()
        },
    );
    rec(
        "101 related files",
        NewExperience {
            related_files: strings(101, 3),
            ..base()
        },
    );
    rec(
        "related file of 501 bytes",
        NewExperience {
            related_files: vec![bytes(501)],
            ..base()
        },
    );
    rec(
        "empty source agent",
        NewExperience {
            source_agent: String::new(),
            ..base()
        },
    );
    rec(
        "source agent of 256 bytes",
        NewExperience {
            source_agent: bytes(256),
            ..base()
        },
    );
    rec(
        "source task of 1 025 bytes",
        NewExperience {
            source_task: Some(bytes(1025)),
            ..base()
        },
    );
    rec(
        "quality 1.5",
        NewExperience {
            experience_type: ExperienceType::SuccessPattern {
                task_type: "t".into(),
                approach: "a".into(),
                quality: 1.5,
            },
            ..base()
        },
    );
    rec(
        "preference strength NaN",
        NewExperience {
            experience_type: ExperienceType::UserPreference {
                category: "c".into(),
                preference: "p".into(),
                strength: f32::NAN,
            },
            ..base()
        },
    );
    rec(
        "no embedding and no embedder",
        NewExperience {
            embedding: None,
            ..base()
        },
    );
    for (name, vector) in bad_vectors() {
        rec(
            &format!("embedding {name}"),
            e(NewExperience {
                embedding: Some(vector),
                ..base()
            }),
        );
    }

    let d = db.clone();
    t.push("batch of 10 001", v.clone(), async move {
        d.record_experiences((0..10_001).map(|i| exp(c, 50_000 + i)).collect())
            .await
    });
    let d = db.clone();
    t.push("batch with one bad item", v.clone(), async move {
        let mut items: Vec<NewExperience> = (0..10).map(|i| exp(c, 60_000 + i)).collect();
        items[7].importance = f32::NAN;
        d.record_experiences(items).await
    });
    let d = db.clone();
    t.push("try_record with a bad item", v.clone(), async move {
        d.try_record_experience(NewExperience {
            content: String::new(),
            ..exp(c, 1)
        })
        .await
    });
    let (d, id) = (db.clone(), f.e1);
    t.push("update importance 1.5", v.clone(), async move {
        d.update_experience(
            id,
            ExperienceUpdate {
                importance: Some(1.5),
                ..Default::default()
            },
        )
        .await
    });
    let (d, id) = (db.clone(), f.e1);
    t.push("update 51 domains", v.clone(), async move {
        d.update_experience(
            id,
            ExperienceUpdate {
                domain: Some(strings(51, 2)),
                ..Default::default()
            },
        )
        .await
    });

    // Searches and lists.
    for (name, q) in bad_vectors() {
        let d = db.clone();
        let q2 = q.clone();
        t.push(format!("search query {name}"), v.clone(), async move {
            d.search_similar(c, &q2, 5).await
        });
        let d = db.clone();
        t.push(format!("insight query {name}"), v.clone(), async move {
            d.get_insights(c, &q, 5).await
        });
    }
    for k in [0usize, 1001, usize::MAX] {
        let d = db.clone();
        t.push(format!("search k {k}"), v.clone(), async move {
            d.search_similar(c, &vec16(1), k).await
        });
        let d = db.clone();
        t.push(format!("get_insights k {k}"), v.clone(), async move {
            d.get_insights(c, &vec16(1), k).await
        });
        let d = db.clone();
        t.push(
            format!("list_experiences limit {k}"),
            v.clone(),
            async move { d.list_experiences(c, k, 0).await },
        );
        let d = db.clone();
        t.push(format!("recent limit {k}"), v.clone(), async move {
            d.get_recent_experiences(c, k).await
        });
        let d = db.clone();
        t.push(format!("list_relations limit {k}"), v.clone(), async move {
            d.list_relations(c, k, 0).await
        });
        let d = db.clone();
        t.push(format!("list_insights limit {k}"), v.clone(), async move {
            d.list_insights(c, k, 0).await
        });
        let d = db.clone();
        t.push(format!("cold limit {k}"), v.clone(), async move {
            d.list_cold_experiences(c, 0.5, k).await
        });
        let d = db.clone();
        t.push(format!("context max_similar {k}"), v.clone(), async move {
            d.get_context_candidates(ContextRequest {
                collective_id: c,
                query_embedding: vec16(1),
                max_similar: k,
                ..ContextRequest::default()
            })
            .await
        });
        let d = db.clone();
        t.push(format!("context max_recent {k}"), v.clone(), async move {
            d.get_context_candidates(ContextRequest {
                collective_id: c,
                query_embedding: vec16(1),
                max_recent: k,
                ..ContextRequest::default()
            })
            .await
        });
    }
    for below in [f32::NAN, -0.1, 1.1] {
        let d = db.clone();
        t.push(format!("cold below {below}"), v.clone(), async move {
            d.list_cold_experiences(c, below, 5).await
        });
    }
    for (name, w) in [
        (
            "sum 0.5",
            RecallWeights {
                similarity: 0.25,
                energy: 0.25,
            },
        ),
        (
            "negative",
            RecallWeights {
                similarity: 1.5,
                energy: -0.5,
            },
        ),
        (
            "NaN",
            RecallWeights {
                similarity: f32::NAN,
                energy: 1.0,
            },
        ),
    ] {
        let d = db.clone();
        t.push(format!("recall weights {name}"), v.clone(), async move {
            d.search(
                c,
                &vec16(1),
                SearchOptions {
                    k: 5,
                    weights: Some(w),
                    ..Default::default()
                },
            )
            .await
        });
    }
    let d = db.clone();
    t.push("filter min_importance NaN", v.clone(), async move {
        d.search_similar_filtered(
            c,
            &vec16(1),
            5,
            SearchFilter {
                min_importance: Some(f32::NAN),
                ..SearchFilter::default()
            },
        )
        .await
    });

    // Relations.
    let (e1, e2, eo) = (f.e1, f.e2, f.e_other);
    for (name, r) in [
        (
            "strength 1.1",
            NewExperienceRelation {
                strength: 1.1,
                ..rel(e1, e2)
            },
        ),
        (
            "strength NaN",
            NewExperienceRelation {
                strength: f32::NAN,
                ..rel(e1, e2)
            },
        ),
        (
            "metadata 10 241 bytes",
            NewExperienceRelation {
                metadata: Some(bytes(10_241)),
                ..rel(e1, e2)
            },
        ),
        ("self relation", rel(e1, e1)),
        ("cross-collective", rel(e1, eo)),
        (
            "duplicate",
            NewExperienceRelation {
                relation_type: RelationType::Supports,
                ..rel(e1, e2)
            },
        ),
    ] {
        let d = db.clone();
        t.push(format!("relation: {name}"), v.clone(), async move {
            d.store_relation(r).await
        });
    }
    // Insights.
    let many = f.many.clone();
    for (name, i) in [
        (
            "empty content",
            NewDerivedInsight {
                content: String::new(),
                ..insight(c, vec![e1])
            },
        ),
        (
            "content 51 201 bytes",
            NewDerivedInsight {
                content: bytes(51_201),
                ..insight(c, vec![e1])
            },
        ),
        ("no sources", insight(c, vec![])),
        ("101 sources", insight(c, many[..101].to_vec())),
        ("cross-collective source", insight(c, vec![e1, eo])),
        (
            "confidence 2",
            NewDerivedInsight {
                confidence: 2.0,
                ..insight(c, vec![e1])
            },
        ),
        (
            "wrong dimension",
            NewDerivedInsight {
                embedding: Some(vector(1, 3)),
                ..insight(c, vec![e1])
            },
        ),
        (
            "zero embedding",
            NewDerivedInsight {
                embedding: Some(vec![0.0; DIM]),
                ..insight(c, vec![e1])
            },
        ),
    ] {
        let d = db.clone();
        t.push(format!("insight: {name}"), v.clone(), async move {
            d.store_insight(i).await
        });
    }
    // Activities and collectives.
    let act = |agent: String, task: Option<String>, summary: Option<String>| NewActivity {
        agent_id: agent,
        collective_id: c,
        current_task: task,
        context_summary: summary,
    };
    for (name, a) in [
        ("empty agent", act(String::new(), None, None)),
        ("agent of 256 bytes", act(bytes(256), None, None)),
        (
            "task of 1 025 bytes",
            act("a".into(), Some(bytes(1025)), None),
        ),
        (
            "summary of 1 025 bytes",
            act("a".into(), None, Some(bytes(1025))),
        ),
    ] {
        let d = db.clone();
        t.push(format!("activity: {name}"), v.clone(), async move {
            d.register_activity(a).await
        });
    }
    for name in [String::new(), "   \t\n".into(), bytes(256)] {
        let d = db.clone();
        t.push(
            format!("collective name {:?}", &name[..name.len().min(8)]),
            v.clone(),
            async move { d.create_collective(&name).await },
        );
    }
    for owner in [String::new(), bytes(256)] {
        let d = db.clone();
        t.push("collective owner", v.clone(), async move {
            d.create_collective_with_owner("x", &owner).await
        });
    }
    t
}

/// Unknown ids of every kind, and the deleted collective: `NotFound`.
fn unknown_ids(db: &PulseHandle, f: &Fixture) -> Table {
    let mut t = Table::default();
    let x = ExperienceId::new();
    let nx = Want::NotFound(NotFoundError::Experience(x));
    macro_rules! case {
        ($name:expr, $want:expr, |$d:ident| $body:expr) => {{
            let $d = db.clone();
            t.push($name, $want, async move { $body.await });
        }};
    }
    case!("update", nx.clone(), |d| d
        .update_experience(x, ExperienceUpdate::default()));
    case!("archive", nx.clone(), |d| d.archive_experience(x));
    case!("unarchive", nx.clone(), |d| d.unarchive_experience(x));
    case!("delete", nx.clone(), |d| d.delete_experience(x));
    case!("reinforce", nx.clone(), |d| d.reinforce_experience(x));
    case!("energy", nx.clone(), |d| d.energy(x));
    case!("related", nx.clone(), |d| d
        .get_related_experiences(x, RelationDirection::Both));
    let e1 = f.e1;
    case!("relation source", nx.clone(), |d| d
        .store_relation(rel(x, e1)));
    case!("relation target", nx.clone(), |d| d
        .store_relation(rel(e1, x)));
    let c = f.c;
    case!("insight source", nx.clone(), |d| d
        .store_insight(insight(c, vec![e1, x])));
    let r = RelationId::new();
    case!(
        "delete relation",
        Want::NotFound(NotFoundError::Relation(r)),
        |d| d.delete_relation(r)
    );
    let i = InsightId::new();
    case!(
        "delete insight",
        Want::NotFound(NotFoundError::Insight(i)),
        |d| d.delete_insight(i)
    );
    let na = Want::NotFound(NotFoundError::Activity {
        agent_id: "nobody".into(),
        collective_id: c,
    });
    case!("end activity", na.clone(), |d| d.end_activity("nobody", c));
    case!("heartbeat", na, |d| d.update_heartbeat("nobody", c));

    for (what, coll) in [("unknown", CollectiveId::new()), ("deleted", f.gone)] {
        let nc = Want::NotFound(NotFoundError::Collective(coll));
        let n = |op: &str| format!("{what} collective: {op}");
        case!(n("record"), nc.clone(), |d| d
            .record_experience(exp(coll, 1)));
        case!(n("try record"), nc.clone(), |d| d
            .try_record_experience(exp(coll, 1)));
        case!(n("batch"), nc.clone(), |d| d
            .record_experiences(vec![exp(coll, 1)]));
        case!(n("search"), nc.clone(), |d| d.search_similar(
            coll,
            &vec16(1),
            3
        ));
        case!(n("search filtered"), nc.clone(), |d| d
            .search_similar_filtered(
                coll,
                &vec16(1),
                3,
                SearchFilter::default()
            ));
        case!(n("list"), nc.clone(), |d| d.list_experiences(coll, 10, 0));
        case!(n("recent"), nc.clone(), |d| d
            .get_recent_experiences(coll, 10));
        case!(n("cold"), nc.clone(), |d| d
            .list_cold_experiences(coll, 0.5, 10));
        case!(n("stats"), nc.clone(), |d| d.get_collective_stats(coll));
        case!(n("delete"), nc.clone(), |d| d.delete_collective(coll));
        case!(n("relations"), nc.clone(), |d| d
            .list_relations(coll, 10, 0));
        case!(n("insights"), nc.clone(), |d| d.list_insights(coll, 10, 0));
        case!(n("get_insights"), nc.clone(), |d| d.get_insights(
            coll,
            &vec16(1),
            3
        ));
        case!(n("store insight"), nc.clone(), |d| d
            .store_insight(insight(coll, vec![e1])));
        case!(n("index stats"), nc.clone(), |d| d.index_stats(coll));
        case!(n("activity"), nc.clone(), |d| d.register_activity(
            NewActivity {
                agent_id: "a".into(),
                collective_id: coll,
                current_task: None,
                context_summary: None,
            }
        ));
        case!(n("context"), nc.clone(), |d| d.get_context_candidates(
            ContextRequest {
                collective_id: coll,
                query_embedding: vec16(1),
                ..ContextRequest::default()
            }
        ));
        case!(n("watch"), nc.clone(), |d| d.watch_experiences(coll));
    }
    t
}

/// Every async method, expecting `want` (`Closed`, or `ReadOnly` for the
/// writes of a read-only handle).
fn every_write(db: &PulseHandle, f: &Fixture, want: Want) -> Table {
    let mut t = Table::default();
    let (c, e1, e2) = (f.c, f.e1, f.e2);
    macro_rules! case {
        ($name:expr, |$d:ident| $body:expr) => {{
            let $d = db.clone();
            t.push($name, want.clone(), async move { $body.await });
        }};
    }
    case!("create collective", |d| d.create_collective("new"));
    case!("create with owner", |d| d
        .create_collective_with_owner("new", "o"));
    case!("delete collective", |d| d.delete_collective(c));
    case!("record", |d| d.record_experience(exp(c, 1)));
    case!("try record", |d| d.try_record_experience(exp(c, 1)));
    case!("batch", |d| d.record_experiences(vec![exp(c, 1)]));
    case!("update", |d| d
        .update_experience(e1, ExperienceUpdate::default()));
    case!("archive", |d| d.archive_experience(e1));
    case!("unarchive", |d| d.unarchive_experience(e1));
    case!("delete", |d| d.delete_experience(e1));
    case!("reinforce", |d| d.reinforce_experience(e1));
    case!("relate", |d| d.store_relation(rel(e2, e1)));
    case!("delete relation", |d| d.delete_relation(RelationId::new()));
    case!("insight", |d| d.store_insight(insight(c, vec![e1])));
    case!("delete insight", |d| d.delete_insight(InsightId::new()));
    case!("activity", |d| d.register_activity(NewActivity {
        agent_id: "b".into(),
        collective_id: c,
        current_task: None,
        context_summary: None,
    }));
    case!("heartbeat", |d| d.update_heartbeat("agent", c));
    case!("end activity", |d| d.end_activity("agent", c));
    t
}

fn every_read(db: &PulseHandle, f: &Fixture, want: Want) -> Table {
    let mut t = Table::default();
    let (c, e1) = (f.c, f.e1);
    macro_rules! case {
        ($name:expr, |$d:ident| $body:expr) => {{
            let $d = db.clone();
            t.push($name, want.clone(), async move { $body.await });
        }};
    }
    case!("get collective", |d| d.get_collective(c));
    case!("list collectives", |d| d.list_collectives());
    case!("by owner", |d| d.list_collectives_by_owner("o"));
    case!("stats", |d| d.get_collective_stats(c));
    case!("get", |d| d.get_experience(e1));
    case!("energy", |d| d.energy(e1));
    case!("cold", |d| d.list_cold_experiences(c, 0.5, 5));
    case!("list", |d| d.list_experiences(c, 5, 0));
    case!("recent", |d| d.get_recent_experiences(c, 5));
    case!("recent filtered", |d| d.get_recent_experiences_filtered(
        c,
        5,
        SearchFilter::default()
    ));
    case!("search", |d| d.search_similar(c, &vec16(1), 5));
    case!("search filtered", |d| d.search_similar_filtered(
        c,
        &vec16(1),
        5,
        SearchFilter::default()
    ));
    case!("search options", |d| d.search(
        c,
        &vec16(1),
        SearchOptions::default()
    ));
    case!("get relation", |d| d.get_relation(RelationId::new()));
    case!("related", |d| d
        .get_related_experiences(e1, RelationDirection::Both));
    case!("related filtered", |d| d.get_related_experiences_filtered(
        e1,
        RelationDirection::Both,
        None
    ));
    case!("list relations", |d| d.list_relations(c, 5, 0));
    case!("get insight", |d| d.get_insight(InsightId::new()));
    case!("get insights", |d| d.get_insights(c, &vec16(1), 5));
    case!("list insights", |d| d.list_insights(c, 5, 0));
    case!("active agents", |d| d.get_active_agents(c));
    case!("context", |d| d.get_context_candidates(ContextRequest {
        collective_id: c,
        query_embedding: vec16(1),
        ..ContextRequest::default()
    }));
    case!("watch", |d| d.watch_experiences(c));
    case!("watch filtered", |d| d
        .watch_experiences_filtered(c, WatchFilter::default()));
    case!("sequence", |d| d.get_current_sequence());
    case!("poll", |d| d.poll_changes(0));
    case!("poll batch", |d| d.poll_changes_batch(0, 10));
    case!("index stats", |d| d.index_stats(c));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_calls_give_their_error_and_change_nothing() {
    let (db, f) = fixture().await;
    let mut tried = 0;
    tried += run_table(&db, invalid_inputs(&db, &f)).await;
    tried += run_table(&db, unknown_ids(&db, &f)).await;
    // Unknown ids in plain gets are answers, not errors.
    assert!(db
        .get_experience(ExperienceId::new())
        .await
        .unwrap()
        .is_none());
    assert!(db.get_relation(RelationId::new()).await.unwrap().is_none());
    assert!(db.get_insight(InsightId::new()).await.unwrap().is_none());
    assert!(db.get_collective(f.gone).await.unwrap().is_none());
    let _ = f.other;

    // Every limit at its boundary is accepted.
    let c = f.c;
    let at_limit = NewExperience {
        content: "é".repeat(51_200),
        importance: 1.0,
        confidence: 0.0,
        domain: strings(50, 100),
        tags: tags(50, 100, 200),
        related_files: strings(100, 500),
        source_agent: bytes(255),
        source_task: Some(bytes(1024)),
        ..exp(c, 70_000)
    };
    let id = db.record_experience(at_limit.clone()).await.unwrap();
    assert_eq!(
        db.get_experience(id).await.unwrap().unwrap().content,
        at_limit.content
    );
    db.record_experience(NewExperience {
        content: bytes(102_400),
        ..exp(c, 70_001)
    })
    .await
    .unwrap();
    db.store_relation(NewExperienceRelation {
        strength: 1.0,
        metadata: Some(bytes(10_240)),
        ..rel(f.e2, f.e1)
    })
    .await
    .unwrap();
    db.store_insight(NewDerivedInsight {
        content: bytes(51_200),
        ..insight(c, f.many[..100].to_vec())
    })
    .await
    .unwrap();
    db.register_activity(NewActivity {
        agent_id: bytes(255),
        collective_id: c,
        current_task: Some(bytes(1024)),
        context_summary: Some(bytes(1024)),
    })
    .await
    .unwrap();
    db.create_collective_with_owner(&bytes(255), &bytes(255))
        .await
        .unwrap();
    assert_eq!(
        db.search_similar(c, &vec16(1), 1000).await.unwrap().len(),
        105
    );
    assert_eq!(db.list_experiences(c, 1000, 0).await.unwrap().len(), 105);
    let ids = db
        .record_experiences((0..10_000).map(|i| exp(c, 200_000 + i)).collect())
        .await
        .unwrap();
    assert_eq!(ids.len(), 10_000);

    // Read-only: every write is refused, nothing changes.
    db.close().await.unwrap();
    let ro =
        f.t.open_with(Config {
            read_only: true,
            ..config()
        })
        .await;
    tried += run_table(&ro, every_write(&ro, &f, Want::ReadOnly)).await;
    ro.close().await.unwrap();

    // Closed: every call is refused; reopened, nothing changed.
    let db = f.t.open().await;
    let before = dump(&db).await;
    db.close().await.unwrap();
    let mut closed = every_write(&db, &f, Want::Closed);
    closed.cases.extend(every_read(&db, &f, Want::Closed).cases);
    let n = closed.cases.len();
    for (name, want, call) in closed.cases {
        let got = within(call).await;
        assert!(matches(&want, &got), "closed: {name}: got {got:?}");
    }
    tried += n;
    db.close().await.unwrap();
    let db = f.t.open().await;
    assert!(
        dump(&db).await == before,
        "a call on a closed handle changed the database"
    );
    db.close().await.unwrap();
    eprintln!("hostile input: {tried} rejected calls tried");
    assert!(tried > 200);
}

// --- random bytes as index snapshots --------------------------------------

fn valid_snapshot() -> Vec<u8> {
    use pulsedb::index::{FaissIndex, IndexConfig};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.idx");
    let mut index = FaissIndex::new(DIM, &IndexConfig::default()).unwrap();
    let vectors: Vec<Vec<f32>> = (0..20).map(vec16).collect();
    let items: Vec<(u64, &[f32])> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()))
        .collect();
    index.add(&items).unwrap();
    index.remove(3);
    index.save_snapshot(&path, 42, b"extra").unwrap();
    std::fs::read(path).unwrap()
}

fn load(bytes: &[u8]) -> Option<pulsedb::index::Snapshot> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.idx");
    std::fs::write(&path, bytes).unwrap();
    pulsedb::index::Snapshot::load(
        &path,
        &pulsedb::index::IndexConfig::default(),
        DIM,
        &mut |slot| Some(vec16(slot as _)),
    )
}

/// A header with the given fields, a body of `body` bytes and a valid CRC.
fn crafted(version: u32, dimension: u64, extra_len: u64, faiss_len: u64, tail: &[u8]) -> Vec<u8> {
    let mut out = b"PULSEIDX".to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&dimension.to_le_bytes());
    out.extend_from_slice(&7u64.to_le_bytes());
    out.extend_from_slice(&extra_len.to_le_bytes());
    out.extend_from_slice(&faiss_len.to_le_bytes());
    out.extend_from_slice(tail);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_snapshot_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = load(&bytes);
    }

    #[test]
    fn mutated_snapshots_are_rejected_or_sound(flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..4), cut in any::<usize>()) {
        let mut b = valid_snapshot();
        for (at, x) in flips {
            let i = at % b.len();
            b[i] ^= x;
        }
        // A corrupted file is refused (the CRC catches it).
        prop_assert!(load(&b).is_none());
        let cut = cut % b.len();
        prop_assert!(load(&b[..cut]).is_none());
    }

    #[test]
    fn crafted_headers_with_valid_crc_never_panic(
        version in prop_oneof![Just(1u32), any::<u32>()],
        dimension in prop_oneof![Just(DIM as u64), any::<u64>()],
        extra_len in prop_oneof![0u64..16, any::<u64>()],
        faiss_len in prop_oneof![0u64..64, any::<u64>(), Just(u64::MAX)],
        tail in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        if let Some(s) = load(&crafted(version, dimension, extra_len, faiss_len, &tail)) {
            // Whatever loads is a usable index of the right dimension.
            prop_assert_eq!(s.index.dimension(), DIM);
            let _ = pulsedb::index::VectorIndex::search(&s.index, &vec16(1), 3, None);
        }
    }
}

#[test]
fn the_valid_snapshot_loads() {
    let s = load(&valid_snapshot()).expect("valid snapshot");
    assert_eq!(s.sequence, 42);
    assert_eq!(s.extra, b"extra");
    assert_eq!(pulsedb::index::VectorIndex::len(&s.index), 19);
}

/// Finite, non-zero components whose norm overflows (or underflows) f32 are
/// valid by the documented rules: either refused at validation or
/// searchable with finite similarities, never a poisoned index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_magnitudes_are_refused_or_searchable() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    db.record_experience(exp(c, 1)).await.unwrap();
    for v in [vec![f32::MAX; DIM], vec![f32::MIN_POSITIVE / 4.0; DIM]] {
        match db
            .record_experience(exp_with(c, "extreme", v.clone()))
            .await
        {
            Err(Error::Validation(_)) => {}
            Ok(_) => {
                for q in [vec16(1), v] {
                    for h in db.search_similar(c, &q, 10).await.unwrap() {
                        assert!(h.similarity.is_finite(), "similarity {}", h.similarity);
                    }
                }
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}
