//! `pulsedb mcp` over stdio and `/mcp` on `pulsedb serve` over streamable
//! HTTP, driven by an MCP client (rmcp): the tools of SERVER.md, their
//! schemas, and failures as `isError` results an LLM can act on.

mod harness;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

async fn start(db: &std::path::Path, embedder: &str) -> RunningService<RoleClient, ()> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pulsedb"));
    cmd.arg("mcp")
        .arg("--db")
        .arg(db)
        .args(["--embedder", embedder]);
    let transport = TokioChildProcess::new(cmd).expect("spawn pulsedb mcp");
    ().serve(transport).await.expect("MCP handshake")
}

/// An rmcp client of `/mcp` on a running server, with `token`.
async fn connect(
    server: &harness::Server,
    token: Option<&str>,
) -> Result<RunningService<RoleClient, ()>, String> {
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::transport::StreamableHttpClientTransport;
    let mut config = StreamableHttpClientTransportConfig::with_uri(server.url("/mcp"));
    if let Some(t) = token {
        config = config.auth_header(t);
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    ().serve(transport).await.map_err(|e| e.to_string())
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    client
        .call_tool(params)
        .await
        .expect("a tool result, not a protocol error")
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

fn ok(result: CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "{}", text(&result));
    serde_json::from_str(&text(&result)).expect("JSON")
}

fn failed(result: CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "{}", text(&result));
    text(&result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tools_share_a_memory_by_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let client = start(&dir.path().join("mcp.db"), "builtin").await;

    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("pulsedb")
    );
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "active_agents",
            "add_insight",
            "context",
            "forget",
            "list_collectives",
            "recall",
            "reinforce",
            "relate",
            "related",
            "remember",
            "set_activity"
        ]
    );
    let remember = tools.iter().find(|t| t.name == "remember").unwrap();
    let schema = serde_json::to_value(&remember.input_schema).unwrap();
    assert!(schema["properties"]["collective"].is_object(), "{schema}");
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        required.contains(&"collective") && required.contains(&"content"),
        "{schema}"
    );

    let flaky = ok(call(&client, "remember", json!({
        "collective": "team", "content": "retry the flaky integration test with one test thread",
        "kind": "solution", "domain": ["testing"], "agent": "claude",
    })).await)["id"].as_str().unwrap().to_string();
    let pool = ok(call(
        &client,
        "remember",
        json!({
            "collective": "team", "content": "the database connection pool ran out under load",
        }),
    )
    .await)["id"]
        .as_str()
        .unwrap()
        .to_string();

    let hits = ok(call(
        &client,
        "recall",
        json!({"collective": "team", "query": "tests fail at random", "k": 1}),
    )
    .await);
    assert_eq!(hits[0]["id"], flaky.as_str());
    assert_eq!(hits[0]["kind"], "solution");
    assert_eq!(hits[0]["agent"], "claude");
    let filtered = ok(call(
        &client,
        "recall",
        json!({"collective": "team", "query": "database", "domain": ["testing"]}),
    )
    .await);
    assert_eq!(filtered.as_array().unwrap().len(), 1, "domain filter");

    let rel = ok(call(
        &client,
        "relate",
        json!({"source": flaky, "target": pool, "relation": "related_to"}),
    )
    .await);
    assert!(rel["id"].is_string());
    let related = ok(call(
        &client,
        "related",
        json!({"id": flaky, "direction": "outgoing"}),
    )
    .await);
    assert_eq!(related[0]["experience"]["id"], pool.as_str());
    assert_eq!(
        ok(call(&client, "reinforce", json!({"id": pool})).await)["applications"],
        1
    );
    let insight = ok(call(&client, "add_insight", json!({
        "collective": "team", "content": "nondeterminism hides in shared state", "sources": [flaky],
    })).await);
    assert!(insight["id"].is_string());
    ok(call(
        &client,
        "set_activity",
        json!({"collective": "team", "agent": "claude", "task": "fix CI"}),
    )
    .await);
    let agents = ok(call(&client, "active_agents", json!({"collective": "team"})).await);
    assert_eq!(
        agents[0],
        json!({"agent": "claude", "task": "fix CI", "since": agents[0]["since"]})
    );
    let ctx = ok(call(
        &client,
        "context",
        json!({"collective": "team", "query": "CI is red again"}),
    )
    .await);
    assert_eq!(ctx["similar"].as_array().unwrap().len(), 2);
    assert_eq!(
        ctx["insights"][0]["content"],
        "nondeterminism hides in shared state"
    );
    assert_eq!(ctx["active_agents"][0]["agent"], "claude");
    let list = ok(call(&client, "list_collectives", json!({})).await);
    assert_eq!(list[0]["name"], "team");
    assert_eq!(list[0]["experiences"], 2);
    ok(call(&client, "forget", json!({"id": pool})).await);
    let list = ok(call(&client, "list_collectives", json!({})).await);
    assert_eq!(list[0]["experiences"], 1);

    // Failures are results an LLM can act on.
    let msg = failed(
        call(
            &client,
            "recall",
            json!({"collective": "nobody", "query": "x"}),
        )
        .await,
    );
    assert!(
        msg.contains("nobody") && msg.contains("list_collectives"),
        "{msg}"
    );
    let msg = failed(call(&client, "reinforce", json!({"id": "not-an-id"})).await);
    assert!(msg.contains("`id`"), "{msg}");
    let msg = failed(call(&client, "forget", json!({"id": pool})).await);
    assert!(msg.contains("not found"), "{msg}");
    let msg = failed(
        call(
            &client,
            "remember",
            json!({"collective": "team", "content": ""}),
        )
        .await,
    );
    assert!(msg.contains("content"), "{msg}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_embedder_text_tools_say_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let client = start(&dir.path().join("mcp.db"), "none").await;
    let msg = failed(
        call(
            &client,
            "remember",
            json!({"collective": "c", "content": "hello"}),
        )
        .await,
    );
    assert!(msg.contains("--embedder builtin"), "{msg}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_streamable_http_the_tools_sit_behind_the_token() {
    let (_dir, db) = harness::temp_db();
    let server = harness::Server::start(&db, &["--embedder", "builtin", "--token", "s3cret"]);
    assert!(
        connect(&server, None).await.is_err(),
        "no token, no session"
    );
    assert!(connect(&server, Some("wrong")).await.is_err());

    let client = connect(&server, Some("s3cret")).await.expect("MCP session");
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("pulsedb")
    );
    assert_eq!(client.list_all_tools().await.unwrap().len(), 11);
    let id = ok(call(
        &client,
        "remember",
        json!({"collective": "web", "content": "pin the toolchain in rust-toolchain.toml"}),
    )
    .await)["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(call(
        &client,
        "remember",
        json!({"collective": "web", "content": "the cafeteria closes at three"}),
    )
    .await);
    let hits = ok(call(
        &client,
        "recall",
        json!({"collective": "web", "query": "which compiler version to use", "k": 1}),
    )
    .await);
    assert_eq!(hits[0]["id"], id.as_str());
    // The same memory over HTTP/JSON.
    let (_, listed) = server.get("/v1/collectives").await;
    assert_eq!(listed[0]["name"], "web");
    failed(call(&client, "forget", json!({"id": "not-a-uuid"})).await);
    client.cancel().await.unwrap();
}
