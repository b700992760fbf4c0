//! The README's quick start: open with the built-in embedder, record
//! sentences, search by meaning with a filter, close. Needs the `embedder`
//! feature and the model (`make model`).

use std::sync::Arc;

use pulsedb::{BuiltinEmbedder, Config, NewExperience, PulseHandle, SearchFilter, SearchOptions};

#[tokio::main]
async fn main() -> pulsedb::Result<()> {
    let dir = std::env::temp_dir().join(format!("pulsedb-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let embedder = Arc::new(BuiltinEmbedder::locate()?);
    let db =
        PulseHandle::open_with_embedder(dir.join("memory.db"), Config::default(), embedder).await?;

    let team = db.create_collective("backend-team").await?;
    for (content, domain) in [
        (
            "Retry the flaky integration test with --test-threads=1",
            "testing",
        ),
        ("Cache the cargo target directory between CI runs", "build"),
    ] {
        db.record_experience(NewExperience {
            collective_id: team,
            content: content.into(),
            embedding: None, // embedded by the built-in model
            domain: vec![domain.into()],
            source_agent: "agent-7".into(),
            ..NewExperience::default()
        })
        .await?;
    }

    let options = SearchOptions {
        k: 5,
        filter: SearchFilter {
            domains: Some(vec!["testing".into()]),
            ..SearchFilter::default()
        },
        weights: None,
    };
    let hits = db
        .search_text(team, "tests fail at random", options)
        .await?;
    for hit in &hits {
        println!("{:.3}  {}", hit.similarity, hit.experience.content);
    }
    assert!(hits[0].experience.content.starts_with("Retry the flaky"));

    db.close().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
