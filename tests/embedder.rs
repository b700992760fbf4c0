//! The built-in embedder (all-MiniLM-L6-v2) against vectors computed
//! independently (`tests/fixtures/minilm_reference.py`: numpy, its own
//! WordPiece), and through the handle: text records, text search by
//! meaning, batching across callers, validation and truncation.
//!
//! Needs the model: `make model` (or `$PULSEDB_MODEL_DIR`).

mod common;

use std::sync::{Arc, OnceLock};

use common::*;
use pulsedb::*;

/// The model, loaded once for the whole test binary.
fn model() -> Arc<BuiltinEmbedder> {
    static MODEL: OnceLock<Arc<BuiltinEmbedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| match BuiltinEmbedder::locate() {
            Ok(m) => Arc::new(m),
            Err(e) => panic!("{e}"),
        })
        .clone()
}

struct Case {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn reference() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_reference.json"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(json["model"], "sentence-transformers/all-MiniLM-L6-v2");
    json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().unwrap().to_string(),
            ids: c["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect(),
            embedding: c["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

async fn open_text_db(t: &TempDb) -> PulseHandle {
    within(PulseHandle::open_with_embedder(
        &t.path,
        Config::default(),
        model(),
    ))
    .await
    .unwrap()
}

fn text(c: CollectiveId, content: &str) -> NewExperience {
    NewExperience {
        collective_id: c,
        content: content.to_string(),
        embedding: None,
        ..NewExperience::default()
    }
}

#[test]
fn vectors_match_the_independent_reference() {
    let m = model();
    assert_eq!(m.dimension(), 384);
    assert_eq!(m.model_id(), "sentence-transformers/all-MiniLM-L6-v2");
    let cases = reference();
    assert!(cases.len() >= 8);
    for case in &cases {
        assert_eq!(
            m.token_ids(&case.text).unwrap(),
            case.ids,
            "{:?}",
            case.text
        );
        let v = m.embed_batch(&[&case.text]).unwrap().remove(0);
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        let cos = cosine(&v, &case.embedding);
        assert!(cos >= 0.999, "cosine {cos} for {:?}", case.text);
    }
}

#[test]
fn a_batch_gives_the_vectors_of_single_calls() {
    let m = model();
    let cases = reference();
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let batch = m.embed_batch(&texts).unwrap();
    assert_eq!(batch.len(), texts.len());
    for (text, v) in texts.iter().zip(&batch) {
        let single = m.embed_batch(&[text]).unwrap().remove(0);
        let diff = max_abs_diff(v, &single);
        assert!(
            diff <= 1e-5,
            "batch differs from single by {diff} for {text:?}"
        );
    }
    // Many texts of mixed lengths: several passes, order kept.
    let many: Vec<String> = (0..150)
        .map(|i| "word ".repeat(i % 40 + 1) + &i.to_string())
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let vectors = m.embed_batch(&refs).unwrap();
    for i in [0, 7, 77, 149] {
        let single = m.embed_batch(&[refs[i]]).unwrap().remove(0);
        assert!(max_abs_diff(&vectors[i], &single) <= 1e-5, "text {i}");
    }
}

#[test]
fn texts_past_256_tokens_are_truncated_not_refused() {
    let m = model();
    let head = "the migration plan has many careful steps ".repeat(60);
    let a = format!("{head} and ends with apples");
    let b = format!("{head} but finishes with something else entirely");
    assert_eq!(m.token_ids(&a).unwrap().len(), 256);
    let v = m.embed_batch(&[&a, &b]).unwrap();
    // Both are cut before their tails differ.
    assert!(max_abs_diff(&v[0], &v[1]) <= 1e-6);
}

#[test]
fn a_folder_without_the_model_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = BuiltinEmbedder::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_search_finds_experiences_by_meaning() {
    let t = TempDb::new();
    let db = open_text_db(&t).await;
    let c = db.create_collective("swarm").await.unwrap();
    let notes = [
        "retry with one test thread when the suite is nondeterministic",
        "the invoice totals are rounded to two decimals",
        "users prefer dark mode in the dashboard",
        "postgres connection pool exhausted under load",
        "deploy to staging before production on fridays",
    ];
    let ids = db
        .record_experiences(notes.iter().map(|n| text(c, n)).collect())
        .await
        .unwrap();
    let stored = db.get_experience(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        stored.embedding,
        model().embed_batch(&[notes[0]]).unwrap()[0]
    );

    let hits = db
        .search_text(c, "flaky tests", SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(
        hits[0].experience.id, ids[0],
        "{:?}",
        hits[0].experience.content
    );
    let hits = db
        .search_text(
            c,
            "database runs out of connections",
            SearchOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(hits[0].experience.id, ids[3]);

    // A single record and an insight without embeddings are embedded too.
    let one = db
        .record_experience(text(c, "cache the cargo target directory"))
        .await
        .unwrap();
    let hits = db
        .search_text(c, "speed up rust builds", SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(hits[0].experience.id, one);
    let insight = db
        .store_insight(NewDerivedInsight {
            collective_id: c,
            content: "nondeterministic suites need isolation".into(),
            embedding: None,
            source_experience_ids: vec![ids[0]],
            insight_type: InsightType::Pattern,
            confidence: 0.8,
            domain: vec![],
        })
        .await
        .unwrap();
    let got = db.get_insight(insight).await.unwrap().unwrap();
    let expect = db
        .embed(&["nondeterministic suites need isolation"])
        .await
        .unwrap();
    assert_eq!(got.embedding, expect[0]);
    db.close().await.unwrap();

    // The model id is stored: the same model reopens, another is refused.
    let db = open_text_db(&t).await;
    assert_eq!(
        db.search_text(c, "flaky", SearchOptions::default())
            .await
            .unwrap()
            .len(),
        6
    );
    db.close().await.unwrap();
    let other = Arc::new(TestEmbedder::new(384, "some/other-model"));
    let err = PulseHandle::open_with_embedder(&t.path, Config::default(), other)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EmbedderMismatch { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_get_their_own_vectors() {
    let t = TempDb::new();
    let db = open_text_db(&t).await;
    let texts: Vec<String> = (0..48)
        .map(|i| format!("agent {i} noticed that build number {} failed", i * 7))
        .collect();
    let expect = model()
        .embed_batch(&texts.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    let mut tasks = Vec::new();
    for text in texts.clone() {
        let db = db.clone();
        tasks.push(tokio::spawn(async move { db.embed(&[&text]).await }));
    }
    for (task, want) in tasks.into_iter().zip(&expect) {
        let got = within(task).await.unwrap().unwrap().remove(0);
        assert!(max_abs_diff(&got, want) <= 1e-5);
    }
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_text_is_refused_and_writes_nothing() {
    let t = TempDb::new();
    let db = open_text_db(&t).await;
    let c = db.create_collective("c").await.unwrap();
    match db.embed(&["fine", "  "]).await {
        Err(Error::Validation(ValidationError::InvalidField { field, .. })) => {
            assert_eq!(field, "texts[1]")
        }
        other => panic!("{other:?}"),
    }
    let huge = "a ".repeat(60_000);
    assert!(matches!(
        db.embed(&[&huge]).await,
        Err(Error::Validation(ValidationError::ContentTooLarge {
            max: 102_400,
            ..
        }))
    ));
    assert!(matches!(
        db.search_text(c, "", SearchOptions::default()).await,
        Err(Error::Validation(ValidationError::InvalidField { .. }))
    ));
    assert_validation(db.record_experience(text(c, "")).await);
    assert_validation(db.record_experience(text(c, &huge)).await);
    // A long text within the byte limit is truncated for the model, kept whole.
    let long = "every agent writes down what it learned today. ".repeat(2_000);
    let id = db.record_experience(text(c, &long)).await.unwrap();
    let stored = db.get_experience(id).await.unwrap().unwrap();
    assert_eq!(stored.content, long);
    assert_eq!(
        db.get_collective_stats(c).await.unwrap().experience_count,
        1
    );
    db.close().await.unwrap();
}
