//! A PulseDB cluster on NATS JetStream (REPLICATION.md "NATS JetStream"):
//! real `nats-server` processes in a three-server JetStream cluster on
//! loopback ports, real `pulsedb serve` nodes joining it with `--nats`.

mod harness;

use std::time::Duration;

use harness::nats::*;
use harness::nodes::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// `--nats` arguments: server `first` of the cluster first (the one the
/// node connects to), then the others.
fn nats_args(servers: &[NatsServer], first: usize, extra: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for i in (0..servers.len()).map(|k| (first + k) % servers.len()) {
        args.push("--nats".to_string());
        args.push(servers[i].url());
    }
    args.extend(["--cluster".to_string(), "test".to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn cluster_nodes(servers: &[NatsServer], n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| {
            let mut node = Node::new();
            node.start(&nats_args(servers, i % servers.len(), &[]));
            node
        })
        .collect()
}

async fn experience_count(s: &harness::Server, cid: &str) -> u64 {
    let (_, stats) = s.get(&format!("/v1/collectives/{cid}/stats")).await;
    stats["experience_count"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_converge_through_jetstream() {
    let servers = nats_cluster(3);
    let nodes = cluster_nodes(&servers, 3);
    let s: Vec<&harness::Server> = nodes.iter().map(Node::s).collect();
    let cid = create_collective(s[0], "shared").await;
    for n in &s {
        wait_for(n, &format!("/v1/collectives/{cid}")).await;
    }
    let mut base = Vec::new();
    for i in 0..6 {
        base.push(record(s[1], &cid, i).await);
    }
    for n in &s {
        wait_for(n, &format!("/v1/experiences/{}", base[5])).await;
    }
    let writers: Vec<_> = (0..3)
        .map(|k| {
            let node = s[k];
            let (cid, base) = (cid.clone(), base.clone());
            async move {
                for i in 0..20 {
                    record(node, &cid, 100 * (k + 1) + i).await;
                }
                let x = |i: usize| format!("/v1/experiences/{}", base[i]);
                node.send(
                    Method::PATCH,
                    &x(0),
                    Some(json!({"importance": 0.1 + 0.3 * k as f64})),
                )
                .await;
                node.post(&format!("{}/reinforce", x(1)), json!({})).await;
                if k == 2 {
                    node.send(Method::DELETE, &x(2), None).await;
                } else {
                    node.send(Method::PATCH, &x(2), Some(json!({"confidence": 0.3})))
                        .await;
                }
                let rel = json!({"source_id": base[3], "target_id": base[4], "relation_type": "supports"});
                node.post("/v1/relations", rel).await;
            }
        })
        .collect();
    futures::future::join_all(writers).await;
    converged(&s).await;
    for n in &s {
        assert_eq!(experience_count(n, &cid).await, 65);
        let (_, x1) = n.get(&format!("/v1/experiences/{}", base[1])).await;
        assert_eq!(x1["applications"], 3, "{x1}");
        let (_, rels) = n.get(&format!("/v1/collectives/{cid}/relations")).await;
        assert_eq!(rels.as_array().unwrap().len(), 1, "{rels}");
        let (_, st) = n.get("/v1/replication/status").await;
        assert_eq!(st["cluster"]["connected"], true, "{st}");
        assert_eq!(st["cluster"]["name"], "test");
    }
    for i in [0, 110, 305] {
        let expect = search(s[0], &cid, i).await;
        assert_eq!(search(s[1], &cid, i).await, expect);
        assert_eq!(search(s[2], &cid, i).await, expect);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_and_a_killed_nats_server_lose_nothing() {
    let mut servers = nats_cluster(3);
    let mut nodes = cluster_nodes(&servers, 3);
    let cid = create_collective(nodes[0].s(), "stream").await;
    for n in &nodes {
        wait_for(n.s(), &format!("/v1/collectives/{cid}")).await;
    }
    for i in 0..20 {
        record(nodes[0].s(), &cid, i).await;
    }
    // Node 2 dies with SIGKILL; node 0's NATS server dies too (the
    // cluster keeps its quorum); writes go on on nodes 0 and 1.
    nodes[2].kill();
    servers[0].kill();
    for i in 20..60 {
        let node = nodes[i % 2].s();
        record(node, &cid, i).await;
    }
    nodes[2].start(&nats_args(&servers, 2, &[]));
    let s: Vec<&harness::Server> = nodes.iter().map(Node::s).collect();
    converged(&s).await;
    for n in &s {
        assert_eq!(experience_count(n, &cid).await, 60);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_keep_serving_while_nats_is_down_then_catch_up() {
    let mut servers = nats_cluster(3);
    let nodes = cluster_nodes(&servers, 2);
    let cid = create_collective(nodes[0].s(), "outage").await;
    wait_for(nodes[1].s(), &format!("/v1/collectives/{cid}")).await;
    for s in &mut servers {
        s.kill();
    }
    // Local reads and writes go on without the cluster.
    for i in 0..10 {
        record(nodes[i % 2].s(), &cid, i).await;
    }
    assert_eq!(experience_count(nodes[0].s(), &cid).await, 5);
    for s in &mut servers {
        s.start();
    }
    let s: Vec<&harness::Server> = nodes.iter().map(Node::s).collect();
    converged(&s).await;
    assert_eq!(experience_count(s[1], &cid).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_holding_a_subset_receives_only_its_collectives() {
    let servers = nats_cluster(3);
    let mut nodes = cluster_nodes(&servers, 1);
    let kept = create_collective(nodes[0].s(), "kept").await;
    let other = create_collective(nodes[0].s(), "other").await;
    let mut subset = Node::new();
    subset.start(&nats_args(&servers, 1, &["--hold", &kept]));
    for i in 0..5 {
        record(nodes[0].s(), &kept, i).await;
        record(nodes[0].s(), &other, i).await;
    }
    wait_for(subset.s(), &format!("/v1/collectives/{kept}")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while experience_count(subset.s(), &kept).await < 5 {
        assert!(std::time::Instant::now() < deadline, "kept never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Everything of `kept` has arrived; nothing of `other` comes, and
    // asking for it says which node holds it (once the subset node has
    // read the membership bucket, every 5 s).
    let address = nodes[0].url();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, st) = subset.s().get("/v1/replication/status").await;
        let members = st["cluster"]["members"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if members.iter().any(|m| m["address"] == address.as_str()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 0 never listed: {st}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = subset.s().get(&format!("/v1/collectives/{other}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("does not hold"), "{message}");
    assert!(message.contains(&nodes[0].url()), "{message}");
    let (_, stats) = subset
        .s()
        .get(&format!("/v1/collectives/{other}/stats"))
        .await;
    assert!(stats["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&nodes[0].url()));
    nodes[0].kill();
}

/// Waits until the node's cluster status says it is connected.
async fn connected(node: &Node) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, st) = node.s().get("/v1/replication/status").await;
        if st["cluster"]["connected"] == true {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never connected: {st}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_away_longer_than_the_stream_copies_a_member_snapshot() {
    let servers = nats_cluster(3);
    // The first node creates the stream, keeping at most 30 messages.
    let mut a = Node::new();
    a.start(&nats_args(&servers, 0, &["--stream-max-messages", "30"]));
    connected(&a).await;
    let mut b = Node::new();
    b.start(&nats_args(&servers, 1, &[]));
    let cid = create_collective(a.s(), "long").await;
    wait_for(b.s(), &format!("/v1/collectives/{cid}")).await;
    b.kill();
    // While b is away the stream drops what b has not taken.
    for i in 0..80 {
        record(a.s(), &cid, i).await;
    }
    b.start(&nats_args(&servers, 1, &[]));
    converged(&[a.s(), b.s()]).await;
    assert_eq!(experience_count(b.s(), &cid).await, 80);
    let (_, st) = b.s().get("/v1/replication/status").await;
    assert!(st["cluster"]["snapshots"].as_u64().unwrap() >= 1, "{st}");
}
