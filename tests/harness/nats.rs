//! Real `nats-server` processes for the cluster suites: a JetStream
//! cluster on loopback ports, each server with its own store directory.
//! The binary comes from `$PULSEDB_NATS_SERVER` or
//! `~/.cache/pulsedb/bin/nats-server` (`make deps` fetches it).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_addr;

pub fn nats_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PULSEDB_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").expect("HOME");
    let path = PathBuf::from(home).join(".cache/pulsedb/bin/nats-server");
    assert!(
        path.exists(),
        "{} is missing: run `make deps` (scripts/fetch-nats.sh)",
        path.display()
    );
    path
}

/// One server of the cluster: stopped and started again on the same
/// ports and store.
pub struct NatsServer {
    pub name: String,
    pub client: String,
    cluster: String,
    routes: Vec<String>,
    store: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// `nats://host:port` for clients.
    pub fn url(&self) -> String {
        format!("nats://{}", self.client)
    }

    pub fn start(&mut self) {
        let port = |a: &str| a.rsplit(':').next().unwrap().to_string();
        let routes = self
            .routes
            .iter()
            .map(|r| format!("nats://{r}"))
            .collect::<Vec<_>>()
            .join(",");
        let child = Command::new(nats_binary())
            .args(["-a", "127.0.0.1", "-p", &port(&self.client)])
            .args(["-js", "-sd"])
            .arg(self.store.path())
            .args(["--server_name", &self.name])
            .args(["--cluster_name", "pulsedb-test"])
            .args(["--cluster", &format!("nats://{}", self.cluster)])
            .args(["--routes", &routes])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&self.client).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server {} did not listen",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A JetStream cluster of `n` servers, started.
pub fn nats_cluster(n: usize) -> Vec<NatsServer> {
    let clients: Vec<String> = (0..n).map(|_| free_addr()).collect();
    let clusters: Vec<String> = (0..n).map(|_| free_addr()).collect();
    let mut servers: Vec<NatsServer> = (0..n)
        .map(|i| NatsServer {
            name: format!("n{i}"),
            client: clients[i].clone(),
            cluster: clusters[i].clone(),
            routes: clusters
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, c)| c.clone())
                .collect(),
            store: tempfile::tempdir().unwrap(),
            child: None,
        })
        .collect();
    for s in &mut servers {
        s.start();
    }
    servers
}
