//! The README's quick start: open, record, search, watch, close.

use pulsedb::{
    Config, EmbeddingDimension, NewExperience, PulseHandle, SearchFilter, SearchOptions,
};

#[tokio::main]
async fn main() -> pulsedb::Result<()> {
    let dir = std::env::temp_dir().join(format!("pulsedb-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = Config {
        embedding_dimension: EmbeddingDimension::Custom(4),
        ..Config::default()
    };
    let db = PulseHandle::open(dir.join("memory.db"), config).await?;

    let team = db.create_collective("backend-team").await?;
    let id = db
        .record_experience(NewExperience {
            collective_id: team,
            content: "Retry the flaky integration test with --test-threads=1".into(),
            embedding: Some(vec![0.9, 0.1, 0.0, 0.1]),
            domain: vec!["testing".into()],
            source_agent: "agent-7".into(),
            ..NewExperience::default()
        })
        .await?;

    let hits = db
        .search(
            team,
            &[1.0, 0.0, 0.0, 0.0],
            SearchOptions {
                k: 5,
                filter: SearchFilter {
                    domains: Some(vec!["testing".into()]),
                    ..SearchFilter::default()
                },
                weights: None,
            },
        )
        .await?;
    for hit in &hits {
        println!("{:.3}  {}", hit.similarity, hit.experience.content);
    }
    assert_eq!(hits.first().map(|h| h.experience.id), Some(id));

    db.close().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
