//! Nodes of a replicated deployment: real `pulsedb serve` processes on
//! known loopback addresses, and what the replication suites ask of them.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{free_addr, temp_db, vector, Server};

pub const TOKEN: &str = "mesh-secret";

/// A node: its database, address, and process while running.
pub struct Node {
    _dir: tempfile::TempDir,
    pub db: std::path::PathBuf,
    pub addr: String,
    pub server: Option<Server>,
}

impl Node {
    pub fn new() -> Node {
        let (dir, db) = temp_db();
        Node {
            _dir: dir,
            db,
            addr: free_addr(),
            server: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts `pulsedb serve` on the node's address with `extra`
    /// arguments besides the token and `--embedder none`.
    pub fn start(&mut self, extra: &[String]) {
        let mut args = vec!["--embedder", "none", "--token", TOKEN];
        args.extend(extra.iter().map(String::as_str));
        self.server = Some(Server::start_at(&self.db, &self.addr, &args));
    }

    pub fn s(&self) -> &Server {
        self.server.as_ref().expect("node running")
    }

    pub fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.child.kill().unwrap();
            s.child.wait().unwrap();
        }
    }
}

/// A node's whole replicated state: its snapshot without the header line
/// (which names the node) and the end line (its own log position).
pub async fn state(s: &Server) -> Vec<Value> {
    let resp = s
        .http
        .get(s.url("/v1/replication/snapshot"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.first().unwrap().get("header").is_some());
    assert!(lines.last().unwrap().get("end").is_some(), "cut short");
    lines[1..lines.len() - 1].to_vec()
}

/// Waits until every node holds the same state and no node's log moves.
pub async fn converged(nodes: &[&Server]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut states = Vec::new();
        for s in nodes {
            states.push(state(s).await);
        }
        let lagging = {
            let mut any = false;
            for s in nodes {
                let (_, st) = s.get("/v1/replication/status").await;
                any |= st["peers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["lag"].as_u64() != Some(0) || p["instance_id"].is_null());
            }
            any
        };
        if !lagging && states.iter().all(|s| *s == states[0]) {
            return states.swap_remove(0);
        }
        if Instant::now() >= deadline {
            let first_difference = states
                .iter()
                .skip(1)
                .find_map(|other| {
                    states[0]
                        .iter()
                        .zip(other)
                        .find(|(a, b)| a != b)
                        .map(|(a, b)| format!("{a}\n  vs\n{b}"))
                })
                .unwrap_or_default();
            panic!(
                "no convergence within 60 s: {} / {} entities, lagging {lagging}; first difference:\n{first_difference}",
                states[0].len(),
                states.last().unwrap().len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn create_collective(s: &Server, name: &str) -> String {
    let (st, c) = s.post("/v1/collectives", json!({ "name": name })).await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    c["id"].as_str().unwrap().to_string()
}

pub async fn record(s: &Server, cid: &str, i: usize) -> String {
    let (st, x) = s
        .post(
            &format!("/v1/collectives/{cid}/experiences"),
            json!({"content": format!("note {i}"), "embedding": vector(i)}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{x}");
    x["id"].as_str().unwrap().to_string()
}

/// Waits until `s` has the collective (replicated from elsewhere).
pub async fn wait_for(s: &Server, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.get(path).await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "{path} never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn search(s: &Server, cid: &str, i: usize) -> Vec<Value> {
    let (st, hits) = s
        .post(
            &format!("/v1/collectives/{cid}/search"),
            json!({"vector": vector(i), "k": 5}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{hits}");
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| h["experience"]["id"].clone())
        .collect()
}
