//! A real `pulsedb serve` on a free port and an HTTP client for it, shared
//! by the suites that drive the binary.

#![allow(dead_code)]

pub mod nats;
pub mod nodes;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

/// A running `pulsedb serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
}

impl Server {
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        Server::start_at(db, "127.0.0.1:0", extra)
    }

    /// Starts on a given address (a node others know the URL of).
    pub fn start_at(db: &Path, addr: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pulsedb"))
            .args(["serve", "--addr", addr, "--db"])
            .arg(db)
            .args(extra)
            .env_remove("PULSEDB_TOKEN")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start pulsedb serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("pulsedb listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let token = extra
            .iter()
            .position(|a| *a == "--token")
            .map(|i| extra[i + 1].to_string());
        Server {
            child,
            base: addr,
            token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &'static str,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("pulsedb serve did not exit within 15 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An address on loopback with a port free right now.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

pub fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.db");
    (dir, path)
}

/// A 384-d unit vector along axis `i` with a little of axis `i + 1`.
pub fn vector(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; 384];
    v[i % 384] = 1.0;
    v[(i + 1) % 384] = 0.1;
    v
}

pub fn assert_error(got: &(StatusCode, Value), status: u16, kind: &str) {
    assert_eq!(got.0.as_u16(), status, "{got:?}");
    assert_eq!(got.1["error"]["kind"], kind, "{got:?}");
    assert!(got.1["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

/// The Python tools the suites run (`openapi-spec-validator`,
/// `schemathesis`): the virtual environment `make tools` fills,
/// `$PULSEDB_TOOLS_VENV` or `~/.cache/pulsedb/venv`.
pub fn python_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("PULSEDB_TOOLS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/pulsedb/venv")
        });
    let tool = venv.join("bin").join(name);
    assert!(
        tool.exists(),
        "{} is missing: run `make tools` (it installs the test tools)",
        tool.display()
    );
    tool
}
