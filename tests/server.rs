//! `pulsedb serve`, the real binary on a free port, over HTTP: the routes
//! and JSON shapes of SERVER.md, its error kinds and codes, the token, a
//! read-only server, SIGTERM, and text through the built-in embedder.

mod harness;

use std::time::Duration;

use harness::{assert_error, temp_db, vector, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn routes_answer_the_documented_json() {
    let (_dir, db) = temp_db();
    let s = Server::start(&db, &["--embedder", "none"]);
    use reqwest::Method as M;

    assert_eq!(
        s.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let (st, info) = s.get("/v1/info").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(info["embedding_dimension"], 384);
    assert_eq!(info["embedder"], Value::Null);
    assert!(info["instance_id"].is_string() && info["sequence"].is_u64());

    let (st, created) = s
        .post(
            "/v1/collectives",
            json!({"name": "team", "owner_id": "ops"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let cid = created["id"].as_str().unwrap().to_string();
    let (_, list) = s.get("/v1/collectives?owner_id=ops").await;
    assert_eq!(list[0]["name"], "team");
    assert!(list[0]["created_at"].is_i64());

    let new = json!({
        "content": "retry the flaky test with one thread",
        "embedding": vector(0),
        "experience_type": {"type": "difficulty", "description": "flaky", "severity": "high"},
        "domain": ["testing"],
        "tags": {"topic": "ci"},
    });
    let (st, rec) = s
        .post(&format!("/v1/collectives/{cid}/experiences"), new)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{rec}");
    let id = rec["id"].as_str().unwrap().to_string();
    let (st, x) = s.get(&format!("/v1/experiences/{id}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        x["experience_type"],
        json!({"type": "difficulty", "description": "flaky", "severity": "high"})
    );
    assert_eq!(x["importance"], 0.5);
    assert_eq!(x["source_agent"], "anonymous");
    assert!(
        x.get("embedding").is_none(),
        "embedding only on request: {x}"
    );
    assert!(
        x.get("source_task").is_none(),
        "null fields are left out: {x}"
    );
    assert!(x["timestamp"].is_i64());
    let (_, x) = s
        .get(&format!("/v1/experiences/{id}?include_embedding=true"))
        .await;
    assert_eq!(x["embedding"].as_array().unwrap().len(), 384);

    let batch = json!({"experiences": [
        {"content": "second", "embedding": vector(10)},
        {"content": "third", "embedding": vector(20), "experience_type": {"type": "generic"}},
    ]});
    let (st, ids) = s
        .post(&format!("/v1/collectives/{cid}/experiences/batch"), batch)
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(ids["ids"].as_array().unwrap().len(), 2);
    let (_, all) = s
        .get(&format!("/v1/collectives/{cid}/experiences?limit=10"))
        .await;
    let contents: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        ["retry the flaky test with one thread", "second", "third"]
    );
    let (_, recent) = s
        .get(&format!("/v1/collectives/{cid}/experiences/recent?limit=1"))
        .await;
    assert_eq!(recent[0]["content"], "third");

    let search = json!({"vector": vector(10), "k": 2, "filter": {"domains": ["testing"]}});
    let (st, hits) = s
        .post(&format!("/v1/collectives/{cid}/search"), search)
        .await;
    assert_eq!(st, StatusCode::OK, "{hits}");
    assert_eq!(
        hits.as_array().unwrap().len(),
        1,
        "filtered to the testing domain"
    );
    assert_eq!(hits[0]["experience"]["id"], id.as_str());
    assert!(hits[0]["similarity"].is_f64() && hits[0]["score"].is_f64());
    let (_, hits) = s
        .post(
            &format!("/v1/collectives/{cid}/search"),
            json!({"vector": vector(20)}),
        )
        .await;
    assert_eq!(hits[0]["experience"]["content"], "third");

    let (st, _) = s
        .send(
            M::PATCH,
            &format!("/v1/experiences/{id}"),
            Some(json!({"importance": 0.9})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, x) = s.get(&format!("/v1/experiences/{id}")).await;
    assert!((x["importance"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    let (_, r) = s
        .post(&format!("/v1/experiences/{id}/reinforce"), json!({}))
        .await;
    assert_eq!(r, json!({"applications": 1}));
    let (_, e) = s.get(&format!("/v1/experiences/{id}/energy")).await;
    assert!(e["energy"].as_f64().unwrap() > 0.0);

    let other = ids["ids"][0].as_str().unwrap();
    let rel =
        json!({"source_id": id, "target_id": other, "relation_type": "supports", "strength": 0.8});
    let (st, rid) = s.post("/v1/relations", rel).await;
    assert_eq!(st, StatusCode::CREATED, "{rid}");
    let (_, related) = s
        .get(&format!("/v1/experiences/{id}/related?direction=outgoing"))
        .await;
    assert_eq!(related[0]["relation"]["relation_type"], "supports");
    assert_eq!(related[0]["experience"]["content"], "second");
    let dup = json!({"source_id": id, "target_id": other, "relation_type": "supports"});
    assert_error(&s.post("/v1/relations", dup).await, 400, "validation");

    let insight = json!({"content": "flaky tests want isolation", "embedding": vector(0),
                         "source_experience_ids": [id], "insight_type": "pattern"});
    let (st, iid) = s
        .post(&format!("/v1/collectives/{cid}/insights"), insight)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{iid}");
    let (_, found) = s
        .post(
            &format!("/v1/collectives/{cid}/insights/search"),
            json!({"vector": vector(0), "k": 1}),
        )
        .await;
    assert_eq!(found[0]["insight"]["insight_type"], "pattern");

    let agent = format!("/v1/collectives/{cid}/agents/agent-1");
    let (st, _) = s
        .send(M::PUT, &agent, Some(json!({"current_task": "triage"})))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.send(M::PUT, &agent, Some(json!({}))).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "heartbeat");
    let (_, agents) = s.get(&format!("/v1/collectives/{cid}/agents")).await;
    assert_eq!(
        agents[0]["current_task"], "triage",
        "a heartbeat keeps the task"
    );

    let ask = json!({"query_embedding": vector(0), "max_similar": 2, "max_recent": 1});
    let (st, ctx) = s.post(&format!("/v1/collectives/{cid}/context"), ask).await;
    assert_eq!(st, StatusCode::OK, "{ctx}");
    assert_eq!(
        ctx["similar_experiences"][0]["experience"]["id"],
        id.as_str()
    );
    assert_eq!(ctx["recent_experiences"].as_array().unwrap().len(), 1);
    assert_eq!(ctx["insights"][0]["content"], "flaky tests want isolation");
    assert_eq!(ctx["relations"][0]["relation_type"], "supports");
    assert_eq!(ctx["active_agents"][0]["agent_id"], "agent-1");
    let metrics = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let metrics = metrics.text().await.unwrap();
    for line in [
        "pulsedb_http_requests_total{route=\"/v1/collectives\",method=\"POST\",status=\"201\"} 1",
        "pulsedb_http_request_duration_seconds_count{route=\"/v1/collectives/{cid}/experiences\",method=\"POST\"} 1",
        "pulsedb_collectives 1",
        "pulsedb_experiences 3",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in\n{metrics}");
    }
    let figure = |name: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // Every write so far went through a group commit.
    let commits = figure("pulsedb_commit_writes_count ");
    assert!(commits >= 5, "{metrics}");
    assert_eq!(
        figure("pulsedb_commit_writes_bucket{le=\"+Inf\"} "),
        commits
    );
    assert!(figure("pulsedb_commit_writes_sum ") >= commits);
    assert_eq!(figure("pulsedb_engine_in_flight "), 0);
    let (_, changes) = s.get("/v1/changes?since=0&limit=100").await;
    let events = changes["events"].as_array().unwrap();
    assert!(events.len() >= 3);
    assert_eq!(events[0]["event_type"], "created");
    assert!(changes["next"].as_u64().unwrap() > 0);

    let (st, _) = s
        .post(&format!("/v1/experiences/{id}/archive"), json!({}))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, x) = s.get(&format!("/v1/experiences/{id}")).await;
    assert_eq!(x["archived"], true);
    let (st, _) = s
        .send(M::DELETE, &format!("/v1/collectives/{cid}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_error(
        &s.get(&format!("/v1/experiences/{id}")).await,
        404,
        "not_found",
    );
    assert_eq!(s.terminate().code(), Some(0));
}

#[tokio::test]
async fn client_mistakes_get_documented_errors_and_change_nothing() {
    let (_dir, db) = temp_db();
    let s = Server::start(&db, &["--embedder", "none", "--body-limit", "65536"]);
    use reqwest::Method as M;
    let (_, c) = s.post("/v1/collectives", json!({"name": "c"})).await;
    let cid = c["id"].as_str().unwrap().to_string();
    let (_, before) = s.get("/v1/info").await;
    let path = format!("/v1/collectives/{cid}/experiences");

    assert_error(
        &s.raw(M::POST, &path, "{not json").await,
        400,
        "bad_request",
    );
    assert_error(
        &s.post(&path, json!({"content": 7, "embedding": vector(0)}))
            .await,
        400,
        "bad_request",
    );
    assert_error(
        &s.post(
            &path,
            json!({"content": "x", "embedding": vector(0), "importance": "high"}),
        )
        .await,
        400,
        "bad_request",
    );
    assert_error(
        &s.get("/v1/experiences/not-a-uuid").await,
        400,
        "bad_request",
    );
    assert_error(
        &s.get(&format!("{path}?limit=ten")).await,
        400,
        "bad_request",
    );
    assert_error(
        &s.get(&format!("{path}?colour=blue")).await,
        400,
        "bad_request",
    );
    assert_error(&s.get("/v1/nothing/here").await, 404, "not_found");
    assert_error(
        &s.send(M::PUT, "/v1/collectives", None).await,
        405,
        "method_not_allowed",
    );

    let empty = s
        .post(&path, json!({"content": "", "embedding": vector(0)}))
        .await;
    assert_error(&empty, 400, "validation");
    assert_eq!(empty.1["error"]["field"], "content");
    let short = s
        .post(&path, json!({"content": "x", "embedding": [1.0, 2.0]}))
        .await;
    assert_error(&short, 400, "validation");
    assert_eq!(short.1["error"]["field"], "embedding");
    let search = path.replace("/experiences", "/search");
    let short_query = s.post(&search, json!({"vector": [1.0, 2.0]})).await;
    assert_error(&short_query, 400, "validation");
    assert_eq!(short_query.1["error"]["field"], "vector");
    let context = path.replace("/experiences", "/context");
    let short_context = s
        .post(&context, json!({"query_embedding": [1.0, 2.0]}))
        .await;
    assert_error(&short_context, 400, "validation");
    assert_eq!(short_context.1["error"]["field"], "query_embedding");
    let bad_importance = s
        .post(
            &path,
            json!({"content": "x", "embedding": vector(0), "importance": 7.0}),
        )
        .await;
    assert_error(&bad_importance, 400, "validation");
    assert_eq!(bad_importance.1["error"]["field"], "importance");
    let big = json!({"content": "x".repeat(70_000), "embedding": vector(0)});
    assert_error(&s.post(&path, big).await, 413, "payload_too_large");
    let text = s
        .post(
            &format!("/v1/collectives/{cid}/search"),
            json!({"text": "flaky"}),
        )
        .await;
    assert_error(&text, 400, "no_embedder");
    let both = json!({"text": "flaky", "vector": vector(0)});
    assert_error(
        &s.post(&format!("/v1/collectives/{cid}/search"), both).await,
        400,
        "validation",
    );
    let unknown = "/v1/collectives/0190a5c8-0000-7000-8000-000000000000/experiences";
    assert_error(
        &s.post(unknown, json!({"content": "x", "embedding": vector(0)}))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &s.get("/v1/experiences/0190a5c8-0000-7000-8000-000000000000")
            .await,
        404,
        "not_found",
    );

    // Nothing of the above was written.
    let (_, stats) = s.get(&format!("/v1/collectives/{cid}/stats")).await;
    assert_eq!(stats["experience_count"], 0);
    let (_, info) = s.get("/v1/info").await;
    assert_eq!(info["sequence"], before["sequence"]);
}

#[tokio::test]
async fn a_token_guards_every_route_but_healthz() {
    let (_dir, db) = temp_db();
    let mut s = Server::start(&db, &["--embedder", "none", "--token", "s3cret"]);
    let (st, _) = s.post("/v1/collectives", json!({"name": "c"})).await;
    assert_eq!(st, StatusCode::CREATED);
    s.token = Some("wrong".into());
    assert_error(&s.get("/v1/collectives").await, 401, "unauthorized");
    s.token = None;
    assert_error(&s.get("/v1/info").await, 401, "unauthorized");
    assert_eq!(s.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_read_only_server_serves_reads_and_refuses_writes() {
    let (_dir, db) = temp_db();
    let s = Server::start(&db, &["--embedder", "none"]);
    let (_, c) = s.post("/v1/collectives", json!({"name": "c"})).await;
    let cid = c["id"].as_str().unwrap().to_string();
    let path = format!("/v1/collectives/{cid}/experiences");
    let (st, _) = s
        .post(&path, json!({"content": "kept", "embedding": vector(3)}))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(s.terminate().code(), Some(0));

    let s = Server::start(&db, &["--embedder", "none", "--read-only"]);
    let (st, list) = s.get(&path).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        list[0]["content"], "kept",
        "SIGTERM closed the file with the write in it"
    );
    assert_error(
        &s.post(&path, json!({"content": "no", "embedding": vector(4)}))
            .await,
        403,
        "read_only",
    );
    assert_error(
        &s.post("/v1/collectives", json!({"name": "d"})).await,
        403,
        "read_only",
    );
}

#[tokio::test]
async fn text_is_embedded_by_the_builtin_model() {
    let (_dir, db) = temp_db();
    let s = Server::start(&db, &["--embedder", "builtin"]);
    let (_, info) = s.get("/v1/info").await;
    assert_eq!(
        info["embedder"],
        json!({"model": "sentence-transformers/all-MiniLM-L6-v2", "dimension": 384})
    );
    let (_, c) = s.post("/v1/collectives", json!({"name": "c"})).await;
    let cid = c["id"].as_str().unwrap().to_string();
    for content in [
        "retry the flaky integration test with one test thread",
        "the connection pool ran out under load",
        "cache the cargo target directory between builds",
    ] {
        let (st, _) = s
            .post(
                &format!("/v1/collectives/{cid}/experiences"),
                json!({"content": content}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED);
    }
    let (st, hits) = s
        .post(
            &format!("/v1/collectives/{cid}/search"),
            json!({"text": "tests fail at random", "k": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{hits}");
    assert_eq!(
        hits[0]["experience"]["content"],
        "retry the flaky integration test with one test thread"
    );
    assert_error(
        &s.post(
            &format!("/v1/collectives/{cid}/search"),
            json!({"text": "  "}),
        )
        .await,
        400,
        "validation",
    );
}

/// Reads server-sent events from `resp` until `n` have come (or the stream
/// ends); each is (event name, id, data).
async fn read_events(
    resp: &mut reqwest::Response,
    n: usize,
    buf: &mut String,
) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut name, mut id, mut data) =
                ("message".to_string(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if !data.is_empty() {
                out.push((name, id, serde_json::from_str(&data).unwrap()));
            }
            if out.len() == n {
                return out;
            }
        }
        match tokio::time::timeout(Duration::from_secs(20), resp.chunk()).await {
            Ok(Ok(Some(bytes))) => buf.push_str(std::str::from_utf8(&bytes).unwrap()),
            Ok(Ok(None)) => return out,
            other => panic!("watch stream: {other:?}"),
        }
    }
}

#[tokio::test]
async fn watch_streams_events_resumes_without_gaps_and_ends_with_the_collective() {
    let (_dir, db) = temp_db();
    let s = Server::start(&db, &["--embedder", "none"]);
    let (_, c) = s.post("/v1/collectives", json!({"name": "c"})).await;
    let cid = c["id"].as_str().unwrap().to_string();
    let watch = s.url(&format!("/v1/collectives/{cid}/watch"));
    let mut first = s.http.get(&watch).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));

    let path = format!("/v1/collectives/{cid}/experiences");
    for i in 0..3 {
        let (st, _) = s
            .post(
                &path,
                json!({"content": format!("note {i}"), "embedding": vector(i)}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED);
    }
    let mut buf = String::new();
    let events = read_events(&mut first, 3, &mut buf).await;
    assert_eq!(events.len(), 3);
    for (i, (name, id, data)) in events.iter().enumerate() {
        assert_eq!(name, "message");
        assert_eq!(id, &data["sequence"].to_string());
        assert_eq!(data["event_type"], "created");
        assert_eq!(data["experience"]["content"], format!("note {i}"));
    }
    drop(first);

    // Resume after the first event: the other two from the log, then live.
    let mut resumed = s
        .http
        .get(&watch)
        .header("Last-Event-ID", events[0].1.as_str())
        .send()
        .await
        .unwrap();
    let (st, _) = s
        .post(&path, json!({"content": "note 3", "embedding": vector(3)}))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let mut buf = String::new();
    let again = read_events(&mut resumed, 3, &mut buf).await;
    let contents: Vec<&str> = again
        .iter()
        .map(|e| e.2["experience"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["note 1", "note 2", "note 3"]);
    let ids: Vec<u64> = again.iter().map(|e| e.1.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let (st, _) = s
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/collectives/{cid}"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    // The stream ends (read_events returns before 100) once the collective
    // is gone, with at most its experiences' deletions before that.
    let rest = read_events(&mut resumed, 100, &mut buf).await;
    assert!(
        rest.iter().all(|e| e.2["event_type"] == "deleted"),
        "{rest:?}"
    );

    let unknown = s
        .get("/v1/collectives/0190a5c8-0000-7000-8000-000000000000/watch")
        .await;
    assert_error(&unknown, 404, "not_found");
}

#[tokio::test]
async fn sigterm_with_a_watcher_open_still_exits_cleanly() {
    let (_dir, db) = temp_db();
    let s = Server::start(&db, &["--embedder", "none"]);
    let (_, c) = s.post("/v1/collectives", json!({"name": "c"})).await;
    let cid = c["id"].as_str().unwrap().to_string();
    let mut watching = s
        .http
        .get(s.url(&format!("/v1/collectives/{cid}/watch")))
        .send()
        .await
        .unwrap();
    let status = tokio::task::spawn_blocking(move || s.terminate())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let mut buf = String::new();
    assert!(read_events(&mut watching, 1, &mut buf).await.is_empty());
}

/// The JSON-RPC answer in a streamable-HTTP response: plain JSON, or the
/// last `data:` of an event stream.
fn rpc_answer(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| {
        let data = raw
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .rfind(|d| d.starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON-RPC answer in {raw:?}"));
        serde_json::from_str(data).unwrap()
    })
}

#[tokio::test]
async fn mcp_over_http_sits_behind_the_token() {
    let (_dir, db) = temp_db();
    let s = Server::start(&db, &["--embedder", "none", "--token", "t0ken"]);
    let rpc = |id: u64, method: &str, params: Value| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let post = |body: Value, session: Option<String>, token: Option<&str>| {
        let mut req = s
            .http
            .post(s.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(id) = session {
            req = req.header("mcp-session-id", id);
        }
        req.send()
    };
    let init = rpc(
        1,
        "initialize",
        json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "pulsedb-test", "version": "1"},
        }),
    );
    let denied = post(init.clone(), None, None).await.unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);

    let resp = post(init, None, Some("t0ken")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let session = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let body = rpc_answer(&resp.text().await.unwrap());
    assert_eq!(body["result"]["serverInfo"]["name"], "pulsedb", "{body}");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = post(note, session.clone(), Some("t0ken")).await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    let (_, c) = s.post("/v1/collectives", json!({"name": "shared"})).await;
    assert!(c["id"].is_string());
    let call = rpc(
        2,
        "tools/call",
        json!({"name": "list_collectives", "arguments": {}}),
    );
    let resp = post(call, session, Some("t0ken")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = rpc_answer(&resp.text().await.unwrap());
    let text = body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    let list: Value = serde_json::from_str(text).unwrap();
    assert_eq!(list[0]["name"], "shared");
    assert_eq!(s.terminate().code(), Some(0));
}

#[tokio::test]
async fn over_max_in_flight_answers_429_and_writes_nothing() {
    let (_dir, db) = temp_db();
    let s = Server::start(&db, &["--embedder", "none", "--max-in-flight", "1"]);
    let (_, made) = s.post("/v1/collectives", json!({"name": "c"})).await;
    let cid = made["id"].as_str().unwrap().to_string();
    let batch: Vec<Value> = (0..200)
        .map(|i| json!({"content": format!("x{i}"), "embedding": vector(i)}))
        .collect();
    let body = json!({ "experiences": batch });
    let url = s.url(&format!("/v1/collectives/{cid}/experiences/batch"));
    let sends = (0..40).map(|_| s.http.post(&url).json(&body).send());
    // MCP messages count against the same bound.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "pulsedb-test", "version": "1"}}});
    let mcp = (0..40).map(|_| {
        s.http
            .post(s.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .send()
    });
    let (answers, mcp_answers) = futures::future::join(
        futures::future::join_all(sends),
        futures::future::join_all(mcp),
    )
    .await;
    let mut mcp_refused = 0;
    for answer in mcp_answers {
        match answer.unwrap().status().as_u16() {
            200 => {}
            429 => mcp_refused += 1,
            other => panic!("MCP answered {other}"),
        }
    }
    assert!(
        mcp_refused > 0,
        "MCP messages are admitted one at a time too"
    );
    let (mut created, mut refused) = (0, 0);
    for answer in answers {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            201 => created += 1,
            429 => {
                refused += 1;
                assert_eq!(answer.headers()["retry-after"], "1");
                let body: Value = answer.json().await.unwrap();
                assert_eq!(body["error"]["kind"], "overloaded");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused > 0, "40 batches at once, one admitted at a time");
    assert!(created > 0);
    let (_, stats) = s.get(&format!("/v1/collectives/{cid}/stats")).await;
    assert_eq!(stats["experience_count"], 200 * created);
    // Operational routes are not counted.
    assert_eq!(s.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_writers_running_loses_no_acknowledged_write() {
    let (_dir, db) = temp_db();
    let s = Server::start(&db, &["--embedder", "none"]);
    let (_, c) = s.post("/v1/collectives", json!({"name": "c"})).await;
    let cid = c["id"].as_str().unwrap().to_string();
    let url = s.url(&format!("/v1/collectives/{cid}/experiences"));
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (http, url, acknowledged) = (s.http.clone(), url.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let body =
                    json!({"content": format!("w{w} #{i}"), "embedding": vector(w * 1000 + i)});
                // Refused, reset or cut off by the shutdown: not acknowledged.
                let Ok(answer) = http.post(&url).json(&body).send().await else {
                    return;
                };
                if answer.status() != StatusCode::CREATED {
                    return;
                }
                let Ok(created) = answer.json::<Value>().await else {
                    return;
                };
                let id = created["id"].as_str().unwrap().to_string();
                acknowledged.lock().unwrap().push(id);
            }
        }));
    }
    // Let the writers get going, then stop the server under them.
    while acknowledged.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = tokio::task::spawn_blocking(move || s.terminate())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "a clean exit");
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let s = Server::start(&db, &["--embedder", "none"]);
    for id in &acknowledged {
        let (st, x) = s.get(&format!("/v1/experiences/{id}")).await;
        assert_eq!(st, StatusCode::OK, "acknowledged {id} lost: {x}");
    }
    let (_, stats) = s.get(&format!("/v1/collectives/{cid}/stats")).await;
    let stored = stats["experience_count"].as_u64().unwrap();
    // A write can commit after its client stopped listening, never the reverse.
    assert!(stored >= acknowledged.len() as u64);
    let (_, hits) = s
        .post(
            &format!("/v1/collectives/{cid}/search"),
            json!({"vector": vector(0), "k": 1}),
        )
        .await;
    assert_eq!(
        hits[0]["experience"]["content"], "w0 #0",
        "the index sees them too"
    );
}

#[tokio::test]
async fn metadata_passes_through_exactly() {
    let (_dir, db) = temp_db();
    let s = Server::start(&db, &["--embedder", "none"]);
    let (_, c) = s.post("/v1/collectives", json!({"name": "c"})).await;
    let cid = c["id"].as_str().unwrap().to_string();
    let raw = r#"{"zeta":1,"alpha":-5,"big":18446744073709551615,"f":0.25,"list":[1,"two",null],"o":{"b":false,"a":true}}"#;
    let meta: Value = serde_json::from_str(raw).unwrap();
    let (st, made) = s
        .post(
            &format!("/v1/collectives/{cid}/experiences"),
            json!({"content": "m", "embedding": vector(1), "metadata": meta}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().unwrap().to_string();
    let text = s
        .http
        .get(s.url(&format!("/v1/experiences/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Byte for byte: key order, integers, floats.
    assert!(text.contains(&format!("\"metadata\":{raw}")), "{text}");

    let (st, _) = s
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/experiences/{id}"),
            Some(json!({"metadata": {"v": 2}})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, x) = s.get(&format!("/v1/experiences/{id}")).await;
    assert_eq!(x["metadata"], json!({"v": 2}));
    let (_, plain) = s
        .post(
            &format!("/v1/collectives/{cid}/experiences"),
            json!({"content": "p", "embedding": vector(2)}),
        )
        .await;
    let (_, p) = s
        .get(&format!(
            "/v1/experiences/{}",
            plain["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(p["metadata"], json!({}));

    let big =
        json!({"content": "x", "embedding": vector(3), "metadata": {"k": "v".repeat(17_000)}});
    let refused = s
        .post(&format!("/v1/collectives/{cid}/experiences"), big)
        .await;
    assert_error(&refused, 400, "validation");
    assert_eq!(refused.1["error"]["field"], "metadata");
    let not_object = json!({"content": "x", "embedding": vector(3), "metadata": [1]});
    assert_error(
        &s.post(&format!("/v1/collectives/{cid}/experiences"), not_object)
            .await,
        400,
        "bad_request",
    );
}

/// `--snapshot-vectors` keeps the vectors in the index snapshot written at
/// shutdown; without it the snapshot holds the graph alone. Both restart
/// with the same answers.
#[tokio::test]
async fn snapshot_vectors_keeps_the_vectors_in_the_snapshot() {
    const N: usize = 2_500; // past hnsw_threshold: a graph
    let mut sizes = Vec::new();
    for extra in [&[][..], &["--snapshot-vectors"][..]] {
        let (_dir, db) = temp_db();
        let args: Vec<&str> = ["--embedder", "none"]
            .iter()
            .chain(extra)
            .copied()
            .collect();
        let s = Server::start(&db, &args);
        let (_, c) = s.post("/v1/collectives", json!({"name": "snap"})).await;
        let cid = c["id"].as_str().unwrap().to_string();
        for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|&i| json!({"content": format!("v{i}"), "embedding": spread(i)}))
                .collect();
            let (st, _) = s
                .post(
                    &format!("/v1/collectives/{cid}/experiences/batch"),
                    json!({"experiences": batch}),
                )
                .await;
            assert_eq!(st, StatusCode::CREATED);
        }
        let query = json!({"vector": spread(7), "k": 3});
        let (_, before) = s
            .post(&format!("/v1/collectives/{cid}/search"), query.clone())
            .await;
        assert!(s.terminate().success());
        let snapshots = db.with_file_name("server.db.idx");
        let bytes: u64 = std::fs::read_dir(&snapshots)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        sizes.push(bytes);
        let s = Server::start(&db, &args);
        let (_, after) = s
            .post(&format!("/v1/collectives/{cid}/search"), query)
            .await;
        assert_eq!(after, before);
        assert!(s.terminate().success());
    }
    let vectors = (N * 384 * 4) as u64;
    assert!(sizes[1] >= sizes[0] + vectors, "{sizes:?}");
    assert!(sizes[0] < vectors, "{sizes:?}");
}

/// A 384-d vector of its own for every `i` (no two alike).
fn spread(i: usize) -> Vec<f32> {
    (0..384)
        .map(|j| ((i * 384 + j) as f32 * 0.618).sin())
        .collect()
}
