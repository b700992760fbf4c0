//! Agent activities: register (upsert), heartbeat, end, staleness.

mod common;

use std::time::Duration;

use common::*;
use pulsedb::*;

fn act(agent: &str, c: CollectiveId) -> NewActivity {
    NewActivity {
        agent_id: agent.into(),
        collective_id: c,
        current_task: Some("task".into()),
        context_summary: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_heartbeat_and_end() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    let other = db.create_collective("other").await.unwrap();
    let before = Timestamp::now();
    db.register_activity(act("a", c)).await.unwrap();
    db.register_activity(act("a", other)).await.unwrap();
    let agents = db.get_active_agents(c).await.unwrap();
    assert_eq!(agents.len(), 1);
    let a = &agents[0];
    assert_eq!((a.agent_id.as_str(), a.collective_id), ("a", c));
    assert_eq!(a.current_task.as_deref(), Some("task"));
    assert_eq!(a.context_summary, None);
    assert!(a.started_at >= before);
    assert_eq!(a.last_heartbeat, a.started_at);
    let started = a.started_at;

    tokio::time::sleep(Duration::from_millis(5)).await;
    db.register_activity(act("b", c)).await.unwrap();
    let order: Vec<_> = db
        .get_active_agents(c)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.agent_id)
        .collect();
    assert_eq!(order, vec!["b", "a"], "most recent heartbeat first");
    tokio::time::sleep(Duration::from_millis(5)).await;
    db.update_heartbeat("a", c).await.unwrap();
    let agents = db.get_active_agents(c).await.unwrap();
    assert_eq!(
        agents
            .iter()
            .map(|a| a.agent_id.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    assert!(agents[0].last_heartbeat > started);
    assert_eq!(agents[0].started_at, started, "heartbeat keeps started_at");

    // Registering again replaces the activity and resets started_at.
    tokio::time::sleep(Duration::from_millis(5)).await;
    db.register_activity(NewActivity {
        current_task: None,
        context_summary: Some("s".into()),
        ..act("a", c)
    })
    .await
    .unwrap();
    let agents = db.get_active_agents(c).await.unwrap();
    assert_eq!(agents.len(), 2);
    let a = agents.iter().find(|x| x.agent_id == "a").unwrap();
    assert!(a.started_at > started);
    assert_eq!(a.current_task, None);
    assert_eq!(a.context_summary.as_deref(), Some("s"));

    db.end_activity("a", c).await.unwrap();
    let agents = db.get_active_agents(c).await.unwrap();
    assert_eq!(
        agents
            .iter()
            .map(|a| a.agent_id.as_str())
            .collect::<Vec<_>>(),
        vec!["b"]
    );
    // Same agent in another collective is separate.
    assert_eq!(db.get_active_agents(other).await.unwrap().len(), 1);
    for r in [
        db.end_activity("a", c).await,
        db.update_heartbeat("a", c).await,
        db.end_activity("zed", other).await,
    ] {
        match r {
            Err(Error::NotFound(NotFoundError::Activity { agent_id, .. })) => {
                assert!(agent_id == "a" || agent_id == "zed")
            }
            other => panic!("expected NotFound(Activity), got {other:?}"),
        }
    }
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_fields_are_validated() {
    let db = memory_db().await;
    let c = db.create_collective("c").await.unwrap();
    assert_validation(db.register_activity(act("", c)).await);
    assert_validation(db.register_activity(act(&"a".repeat(256), c)).await);
    assert_validation(
        db.register_activity(NewActivity {
            current_task: Some("t".repeat(1025)),
            ..act("a", c)
        })
        .await,
    );
    assert_validation(
        db.register_activity(NewActivity {
            context_summary: Some("s".repeat(1025)),
            ..act("a", c)
        })
        .await,
    );
    assert_validation(db.update_heartbeat("", c).await);
    assert_validation(db.end_activity(&"a".repeat(256), c).await);
    assert!(db.get_active_agents(c).await.unwrap().is_empty());
    db.register_activity(NewActivity {
        current_task: Some("t".repeat(1024)),
        context_summary: Some("s".repeat(1024)),
        ..act(&"a".repeat(255), c)
    })
    .await
    .unwrap();
    assert_eq!(db.get_active_agents(c).await.unwrap().len(), 1);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_agents_are_not_active() {
    let db = PulseHandle::open_in_memory(Config {
        activity: ActivityConfig {
            stale_threshold: Duration::from_millis(150),
        },
        ..config()
    })
    .await
    .unwrap();
    let c = db.create_collective("c").await.unwrap();
    db.register_activity(act("old", c)).await.unwrap();
    db.register_activity(act("fresh", c)).await.unwrap();
    assert_eq!(db.get_active_agents(c).await.unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    db.update_heartbeat("fresh", c).await.unwrap();
    let agents = db.get_active_agents(c).await.unwrap();
    assert_eq!(
        agents
            .iter()
            .map(|a| a.agent_id.as_str())
            .collect::<Vec<_>>(),
        vec!["fresh"]
    );
    // A stale agent still exists: its heartbeat brings it back.
    db.update_heartbeat("old", c).await.unwrap();
    assert_eq!(db.get_active_agents(c).await.unwrap().len(), 2);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_persist_and_go_with_their_collective() {
    let t = TempDb::new();
    let db = t.open().await;
    let c = db.create_collective("c").await.unwrap();
    db.register_activity(act("a", c)).await.unwrap();
    let before = db.get_active_agents(c).await.unwrap();
    db.close().await.unwrap();
    let db = t.open().await;
    assert_eq!(db.get_active_agents(c).await.unwrap(), before);
    db.delete_collective(c).await.unwrap();
    assert_not_found(db.get_active_agents(c).await);
    assert_not_found(db.update_heartbeat("a", c).await);
    db.close().await.unwrap();
}
