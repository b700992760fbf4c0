//! Text through the handle's embedder: `embed` and `search_text`, their
//! validation, and `NoEmbedder` for a handle without one.

mod common;

use common::*;
use pulsedb::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_embedder_text_calls_say_so() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    assert!(matches!(db.embed(&["hello"]).await, Err(Error::NoEmbedder)));
    assert!(matches!(
        db.search_text(c, "hello", SearchOptions::default()).await,
        Err(Error::NoEmbedder)
    ));
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_and_search_text_use_the_handles_embedder() {
    let t = TempDb::new();
    let (db, embedder) = open_with_test_embedder(&t).await;
    let c = db.create_collective("c").await.unwrap();

    let vectors = db
        .embed(&["flaky tests", "cache the target"])
        .await
        .unwrap();
    assert_eq!(
        vectors,
        vec![
            embedder.embed_one("flaky tests"),
            embedder.embed_one("cache the target")
        ]
    );
    assert!(db.embed(&[]).await.unwrap().is_empty());

    let texts = [
        "retry the flaky test with one test thread",
        "cache the cargo target directory between builds",
        "pin the FAISS version in the lock file",
    ];
    let mut ids = Vec::new();
    for text in texts {
        let new = NewExperience {
            collective_id: c,
            content: text.to_string(),
            embedding: None,
            ..NewExperience::default()
        };
        ids.push(db.record_experience(new).await.unwrap());
    }
    for (text, id) in texts.iter().zip(&ids) {
        let hits = db
            .search_text(c, text, SearchOptions::default())
            .await
            .unwrap();
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[0].experience.id, *id, "{text}");
        assert!(hits[0].similarity > 0.99);
    }
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_text_is_refused_and_nothing_is_embedded() {
    let t = TempDb::new();
    let (db, _) = open_with_test_embedder(&t).await;
    let c = db.create_collective("c").await.unwrap();
    match db.embed(&["fine", "  "]).await {
        Err(Error::Validation(ValidationError::InvalidField { field, .. })) => {
            assert_eq!(field, "texts[1]")
        }
        other => panic!("expected InvalidField, got {other:?}"),
    }
    let long = "x".repeat(MAX_CONTENT_BYTES + 1);
    assert!(matches!(
        db.embed(&[long.as_str()]).await,
        Err(Error::Validation(ValidationError::ContentTooLarge { .. }))
    ));
    let many = vec!["t"; MAX_BATCH_ITEMS + 1];
    assert!(matches!(
        db.embed(&many).await,
        Err(Error::Validation(ValidationError::TooManyItems { .. }))
    ));
    match db.search_text(c, "", SearchOptions::default()).await {
        Err(Error::Validation(ValidationError::InvalidField { field, .. })) => {
            assert_eq!(field, "text")
        }
        other => panic!("expected InvalidField, got {other:?}"),
    }
    db.close().await.unwrap();
}
