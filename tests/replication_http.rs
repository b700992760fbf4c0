//! Replication between real `pulsedb serve` processes on loopback ports
//! (REPLICATION.md "What must hold"): nodes in a full mesh pulling from
//! each other over HTTP converge exactly; a node killed with SIGKILL, or
//! cut off, catches up; a new node joins from a snapshot; bad peers and
//! bad requests are refused.

mod harness;

use std::time::Duration;

use harness::nodes::*;
use harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Three nodes, each pulling from the other two.
fn mesh(n: usize) -> Vec<Node> {
    let mut nodes: Vec<Node> = (0..n).map(|_| Node::new()).collect();
    let urls: Vec<String> = nodes.iter().map(Node::url).collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        let peers: Vec<String> = urls
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, u)| u.clone())
            .collect();
        node.start(&peer_args(&peers));
    }
    nodes
}

fn peers_of(nodes: &[Node], i: usize) -> Vec<String> {
    nodes
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, n)| n.url())
        .collect()
}

fn peer_args(peers: &[String]) -> Vec<String> {
    peers
        .iter()
        .flat_map(|p| ["--peer".to_string(), p.clone()])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_converge_under_concurrent_conflicting_writes() {
    let nodes = mesh(3);
    let s: Vec<&Server> = nodes.iter().map(Node::s).collect();
    let cid = create_collective(s[0], "shared").await;
    let doomed = create_collective(s[1], "doomed").await;
    for n in &s {
        wait_for(n, &format!("/v1/collectives/{cid}")).await;
        wait_for(n, &format!("/v1/collectives/{doomed}")).await;
    }
    let mut base = Vec::new();
    for i in 0..10 {
        base.push(record(s[0], &cid, i).await);
    }
    for n in &s {
        wait_for(n, &format!("/v1/experiences/{}", base[9])).await;
    }

    // Concurrent, conflicting writes on every node at once.
    let writers: Vec<_> = (0..3)
        .map(|k| {
            let node = s[k];
            let (cid, doomed, base) = (cid.clone(), doomed.clone(), base.clone());
            async move {
                for i in 0..15 {
                    record(node, &cid, 100 * (k + 1) + i).await;
                    // Deleted meanwhile on node 1: a write that arrives
                    // after the delete reached its node finds nothing.
                    let (st, _) = node
                        .post(
                            &format!("/v1/collectives/{doomed}/experiences"),
                            json!({"content": "doomed", "embedding": vector(i)}),
                        )
                        .await;
                    assert!(
                        st == StatusCode::CREATED || st == StatusCode::NOT_FOUND,
                        "{st}"
                    );
                }
                let x = |i: usize| format!("/v1/experiences/{}", base[i]);
                let importance = 0.2 + 0.3 * k as f64;
                node.send(Method::PATCH, &x(0), Some(json!({"importance": importance})))
                    .await;
                node.post(&format!("{}/reinforce", x(1)), json!({})).await;
                node.post(&format!("{}/reinforce", x(1)), json!({})).await;
                match k {
                    0 => {
                        node.send(Method::DELETE, &x(2), None).await;
                        node.post(&format!("{}/archive", x(3)), json!({})).await;
                    }
                    1 => {
                        node.send(Method::PATCH, &x(2), Some(json!({"importance": 0.99})))
                            .await;
                        node.send(Method::PATCH, &x(3), Some(json!({"confidence": 0.1})))
                            .await;
                        node.send(Method::DELETE, &format!("/v1/collectives/{doomed}"), None)
                            .await;
                    }
                    _ => {
                        node.post(&format!("{}/archive", x(4)), json!({})).await;
                    }
                }
                // The same relation created on every node.
                let rel = json!({"source_id": base[5], "target_id": base[6], "relation_type": "supports"});
                node.post("/v1/relations", rel).await;
            }
        })
        .collect();
    futures::future::join_all(writers).await;

    let state = converged(&s).await;
    assert!(state.len() > 40, "{}", state.len());
    for n in &s {
        // No reinforcement lost: two on each of three nodes.
        let (_, x1) = n.get(&format!("/v1/experiences/{}", base[1])).await;
        assert_eq!(x1["applications"], 6, "{x1}");
        // Deletes are final.
        assert_eq!(
            n.get(&format!("/v1/experiences/{}", base[2])).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            n.get(&format!("/v1/collectives/{doomed}")).await.0,
            StatusCode::NOT_FOUND
        );
        // Duplicate relations collapse to one.
        let (_, rels) = n.get(&format!("/v1/collectives/{cid}/relations")).await;
        assert_eq!(rels.as_array().unwrap().len(), 1, "{rels}");
        // 10 + 45 recorded, one deleted.
        let (_, stats) = n.get(&format!("/v1/collectives/{cid}/stats")).await;
        assert_eq!(stats["experience_count"], 54, "{stats}");
    }
    for i in [0, 105, 214, 309] {
        let expect = search(s[0], &cid, i).await;
        assert_eq!(search(s[1], &cid, i).await, expect);
        assert_eq!(search(s[2], &cid, i).await, expect);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_stream_catches_up_with_nothing_lost_or_duplicated() {
    let mut nodes = mesh(3);
    let cid = create_collective(nodes[0].s(), "stream").await;
    for n in &nodes {
        wait_for(n.s(), &format!("/v1/collectives/{cid}")).await;
    }
    let writer = |s: &Server, from: usize| {
        let (base, http, cid) = (s.base.clone(), s.http.clone(), cid.clone());
        tokio::spawn(async move {
            let mut acknowledged = 0;
            for i in from..from + 60 {
                let resp = http
                    .post(format!("{base}/v1/collectives/{cid}/experiences"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"content": format!("w{i}"), "embedding": vector(i)}))
                    .send()
                    .await;
                if resp.is_ok_and(|r| r.status() == StatusCode::CREATED) {
                    acknowledged += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acknowledged
        })
    };
    let w0 = writer(nodes[0].s(), 0);
    let w1 = writer(nodes[1].s(), 1000);
    tokio::time::sleep(Duration::from_millis(150)).await;
    nodes[2].kill();
    let acknowledged = w0.await.unwrap() + w1.await.unwrap();
    assert_eq!(acknowledged, 120);
    let peers = peers_of(&nodes, 2);
    nodes[2].start(&peer_args(&peers));
    let s: Vec<&Server> = nodes.iter().map(Node::s).collect();
    converged(&s).await;
    for n in &s {
        let (_, stats) = n.get(&format!("/v1/collectives/{cid}/stats")).await;
        assert_eq!(stats["experience_count"], 120, "{stats}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_heals_and_a_new_node_joins_from_a_snapshot() {
    // A pulls from B, whose URL answers nothing for a while.
    let mut a = Node::new();
    let mut b = Node::new();
    let mut args = peer_args(&[b.url()]);
    args.extend(["--change-log-retention".to_string(), "1".to_string()]);
    a.start(&args);
    let cid = create_collective(a.s(), "early").await;
    for i in 0..20 {
        record(a.s(), &cid, i).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, st) = a.s().get("/v1/replication/status").await;
    assert!(
        st["peers"][0]["last_error"].is_string(),
        "an unreachable peer shows its error: {st}"
    );
    // A's log expires (nobody has pulled it yet): only a snapshot can
    // bring B up to date.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let compacted = a.s().get("/v1/replication/changes?since=0&limit=10").await;
    assert_error(&compacted, 410, "changes_compacted");

    b.start(&peer_args(&[a.url()]));
    arrived(&b, &cid).await;
    let x = record(b.s(), &cid, 500).await;
    let both = [a.s(), b.s()];
    converged(&both).await;
    wait_for(a.s(), &format!("/v1/experiences/{x}")).await;
    let (_, st) = b.s().get("/v1/replication/status").await;
    assert!(st["peers"][0]["snapshots"].as_u64().unwrap() >= 1, "{st}");
    let (_, stats) = b.s().get(&format!("/v1/collectives/{cid}/stats")).await;
    assert_eq!(stats["experience_count"], 21);
}

/// Waits for the collective to reach `node`.
async fn arrived(node: &Node, cid: &str) {
    wait_for(node.s(), &format!("/v1/collectives/{cid}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_and_bad_peers_are_refused_and_change_nothing() {
    // A fake peer that answers garbage, next to a good one.
    let fake = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_url = format!("http://{}", fake.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = fake.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let body = "{\"protocol\": 1, \"changes\": \"not a list\"}";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
            });
        }
    });
    let mut good = Node::new();
    good.start(&[]);
    let cid = create_collective(good.s(), "good").await;
    record(good.s(), &cid, 1).await;
    let mut node = Node::new();
    node.start(&peer_args(&[fake_url.clone(), good.url()]));
    wait_for(node.s(), &format!("/v1/collectives/{cid}")).await;
    let (_, st) = node.s().get("/v1/replication/status").await;
    let fake_status = st["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["url"] == fake_url.as_str())
        .unwrap()
        .clone();
    assert!(
        fake_status["last_error"]
            .as_str()
            .unwrap()
            .contains("malformed"),
        "{fake_status}"
    );

    let s = good.s();
    // Without the token: refused.
    let anonymous = s
        .http
        .get(s.url("/v1/replication/changes"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let anonymous = s
        .http
        .get(s.url("/v1/replication/snapshot"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // Another protocol, an oversized page, itself as the peer, junk.
    let bad = s.get("/v1/replication/changes?protocol=2").await;
    assert_error(&bad, 400, "validation");
    assert_eq!(bad.1["error"]["field"], "protocol");
    let bad = s.get("/v1/replication/changes?limit=5000").await;
    assert_eq!(bad.1["error"]["field"], "limit");
    let (_, info) = s.get("/v1/info").await;
    let own = info["instance_id"].as_str().unwrap();
    let bad = s.get(&format!("/v1/replication/changes?peer={own}")).await;
    assert_eq!(bad.1["error"]["field"], "peer");
    assert_error(
        &s.get("/v1/replication/changes?since=x").await,
        400,
        "bad_request",
    );
    assert_error(
        &s.get("/v1/replication/changes?bogus=1").await,
        400,
        "bad_request",
    );
    // A node pointed at itself says so and changes nothing.
    let mut selfish = Node::new();
    let own_url = selfish.url();
    selfish.start(&peer_args(&[own_url]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, st) = selfish.s().get("/v1/replication/status").await;
    assert!(
        st["peers"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("this node"),
        "{st}"
    );
    assert_eq!(st["head"], 0);
}
