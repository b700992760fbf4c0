//! One agent process of `make demo`'s server part: it talks to a running
//! `pulsedb serve` over HTTP/JSON only (plain sentences; the server embeds
//! them).
//!
//! `http_agent URL learn NAME FIELD` announces the agent, then for each
//! lesson of FIELD asks the shared memory whether someone already knows it
//! (reinforcing it if so) and records it otherwise. `http_agent URL ask`
//! asks questions in words no agent used and prints the answers.

use serde_json::{json, Value};

/// A lesson this close to one already recorded is the same lesson.
const SAME_LESSON: f64 = 0.9;

const LESSONS: [(&str, [&str; 4]); 3] = [
    (
        "testing",
        [
            "retry the flaky integration test with one test thread",
            "seed the random generator so that test failures reproduce",
            "mock the clock instead of sleeping in unit tests",
            "a test that passes alone but fails in the suite shares global state",
        ],
    ),
    (
        "build",
        [
            "cache the cargo target directory between CI runs",
            "pin the compiler version in rust-toolchain.toml",
            "link with lld to cut link times in half",
            "compile the C++ dependency once and reuse the artefact",
        ],
    ),
    (
        "database",
        [
            "add an index on user_id: the orders query scanned the whole table",
            "the connection pool ran out under load, raise its size",
            "run migrations in a transaction so a failure leaves no half schema",
            "batch the inserts: one transaction per row was the bottleneck",
        ],
    ),
];

const QUESTIONS: [&str; 3] = [
    "tests fail at random",
    "make the CI build faster",
    "a query is slow",
];

type Failure = Box<dyn std::error::Error>;

struct Memory {
    http: reqwest::Client,
    base: String,
}

impl Memory {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, Failure> {
        let answer = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await?;
        let status = answer.status();
        let text = answer.text().await?;
        if !status.is_success() {
            return Err(format!("{path}: {status}: {text}").into());
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// The shared collective's id (created by whichever agent comes first).
    async fn collective(&self) -> Result<String, Failure> {
        let _ = self
            .call(
                reqwest::Method::POST,
                "/v1/collectives",
                json!({"name": "swarm"}),
            )
            .await;
        let all = self
            .call(reqwest::Method::GET, "/v1/collectives", Value::Null)
            .await?;
        all.as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == "swarm"))
            .and_then(|c| c["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| "no collective named swarm".into())
    }
}

async fn learn(m: &Memory, name: &str, field: &str) -> Result<(), Failure> {
    let lessons = LESSONS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, l)| l)
        .ok_or("unknown field")?;
    let c = m.collective().await?;
    let task = json!({"current_task": format!("working on {field}")});
    m.call(
        reqwest::Method::PUT,
        &format!("/v1/collectives/{c}/agents/{name}"),
        task,
    )
    .await?;
    let (mut recorded, mut reinforced) = (0, 0);
    for lesson in lessons {
        let ask = json!({"text": lesson, "k": 1, "filter": {"domains": [field]}});
        let known = m
            .call(
                reqwest::Method::POST,
                &format!("/v1/collectives/{c}/search"),
                ask,
            )
            .await?;
        match known.get(0) {
            Some(hit) if hit["similarity"].as_f64().unwrap_or(0.0) >= SAME_LESSON => {
                let id = hit["experience"]["id"].as_str().unwrap_or_default();
                m.call(
                    reqwest::Method::POST,
                    &format!("/v1/experiences/{id}/reinforce"),
                    json!({}),
                )
                .await?;
                reinforced += 1;
            }
            _ => {
                let new = json!({"content": lesson, "domain": [field], "source_agent": name});
                m.call(
                    reqwest::Method::POST,
                    &format!("/v1/collectives/{c}/experiences"),
                    new,
                )
                .await?;
                recorded += 1;
            }
        }
    }
    println!("  {name} ({field}): {recorded} recorded, {reinforced} already known and reinforced");
    Ok(())
}

async fn ask(m: &Memory) -> Result<(), Failure> {
    let c = m.collective().await?;
    let agents = m
        .call(
            reqwest::Method::GET,
            &format!("/v1/collectives/{c}/agents"),
            Value::Null,
        )
        .await?;
    let stats = m
        .call(
            reqwest::Method::GET,
            &format!("/v1/collectives/{c}/stats"),
            Value::Null,
        )
        .await?;
    println!(
        "  the collective holds {} experiences from {} agents; asked in other words:",
        stats["experience_count"],
        agents.as_array().map_or(0, Vec::len)
    );
    for question in QUESTIONS {
        let query = json!({"text": question, "k": 2});
        let hits = m
            .call(
                reqwest::Method::POST,
                &format!("/v1/collectives/{c}/search"),
                query,
            )
            .await?;
        println!("    \"{question}\"");
        for hit in hits.as_array().into_iter().flatten() {
            let x = &hit["experience"];
            println!(
                "      {:.2}  {} ({}, reinforced {}×)",
                hit["similarity"].as_f64().unwrap_or(0.0),
                x["content"].as_str().unwrap_or_default(),
                x["source_agent"].as_str().unwrap_or_default(),
                x["applications"]
            );
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: http_agent URL (learn NAME FIELD | ask)";
    let base = args.first().ok_or(usage)?.trim_end_matches('/').to_string();
    let mut http = reqwest::Client::builder();
    if let Ok(token) = std::env::var("PULSEDB_TOKEN") {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse()?,
        );
        http = http.default_headers(headers);
    }
    let m = Memory {
        http: http.build()?,
        base,
    };
    match args.get(1).map(String::as_str) {
        Some("learn") if args.len() == 4 => learn(&m, &args[2], &args[3]).await,
        Some("ask") => ask(&m).await,
        _ => Err(usage.into()),
    }
}
