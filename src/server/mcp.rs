//! The MCP tools of SERVER.md on the official Rust SDK (`rmcp`), for LLM
//! hosts: `pulsedb mcp` serves them over stdio. Collectives are named (and
//! created on first write); text is embedded by the server's embedder. A
//! failed call is a tool result with `isError: true` and a message an LLM
//! can act on, never a protocol error.

use std::collections::BTreeMap;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::wire::{
    DirectionJson, ExperienceJson, ExperienceTypeTagJson, InsightTypeJson, RelationTypeJson,
};
use crate::{
    CollectiveId, Error, ExperienceId, ExperienceType, ExperienceTypeTag, NewActivity,
    NewDerivedInsight, NewExperience, NewExperienceRelation, PulseHandle, SearchFilter,
    SearchOptions, Severity, ValidationError,
};

/// A tool's answer: JSON text, or the message of an `isError` result.
type Answer = Result<String, String>;

/// The MCP server: the tools over one handle.
#[derive(Clone)]
pub struct PulseTools {
    db: PulseHandle,
    tool_router: ToolRouter<Self>,
}

/// What an LLM reads when a call fails.
fn explain(e: Error) -> String {
    let needs_model = matches!(
        &e,
        Error::Validation(ValidationError::RequiredField { field }) if field == "embedding"
    );
    if needs_model {
        return explain(Error::NoEmbedder);
    }
    match e {
        Error::NoEmbedder => "this server has no embedder, so it cannot read text: start it with \
                              `pulsedb mcp --db FILE --embedder builtin` (the model comes from \
                              `make model`)"
            .into(),
        Error::Validation(v) => format!("invalid input: {v}"),
        Error::NotFound(n) => {
            format!(
                "{n} was not found: check the id (ids come from remember, recall or add_insight)"
            )
        }
        other => format!("the memory could not do that: {other}"),
    }
}

fn answer(value: Value) -> Answer {
    Ok(value.to_string())
}

fn parse_id(field: &str, s: &str) -> Result<ExperienceId, String> {
    s.parse::<uuid::Uuid>()
        .map(|u| ExperienceId::from_bytes(u.into_bytes()))
        .map_err(|_| format!("`{field}` must be an experience id (a UUID), got {s:?}"))
}

/// An experience type from its snake_case name, the content filling its text.
fn kind_of(tag: ExperienceTypeTag, content: &str) -> ExperienceType {
    let text = content.to_string();
    match tag {
        ExperienceTypeTag::Difficulty => ExperienceType::Difficulty {
            description: text,
            severity: Severity::Medium,
        },
        ExperienceTypeTag::Solution => ExperienceType::Solution {
            problem_ref: None,
            approach: text,
            worked: true,
        },
        ExperienceTypeTag::ErrorPattern => ExperienceType::ErrorPattern {
            signature: text,
            fix: String::new(),
            prevention: String::new(),
        },
        ExperienceTypeTag::SuccessPattern => ExperienceType::SuccessPattern {
            task_type: String::new(),
            approach: text,
            quality: 0.5,
        },
        ExperienceTypeTag::UserPreference => ExperienceType::UserPreference {
            category: String::new(),
            preference: text,
            strength: 0.5,
        },
        ExperienceTypeTag::ArchitecturalDecision => ExperienceType::ArchitecturalDecision {
            decision: text,
            rationale: String::new(),
        },
        ExperienceTypeTag::TechInsight => ExperienceType::TechInsight {
            technology: String::new(),
            insight: text,
        },
        ExperienceTypeTag::Fact => ExperienceType::Fact {
            statement: text,
            source: String::new(),
        },
        ExperienceTypeTag::Generic => ExperienceType::Generic { category: None },
    }
}

/// The compact form of an experience an LLM gets back.
fn compact(x: crate::Experience) -> Value {
    let kind = ExperienceTypeTagJson::from(x.experience_type.tag());
    let mut v = json!({
        "id": x.id,
        "content": x.content,
        "kind": kind,
        "domain": x.domain,
        "tags": x.tags,
        "agent": x.source_agent,
        "timestamp": x.timestamp.0,
    });
    if !x.metadata.is_empty() {
        v["metadata"] = Value::Object(x.metadata);
    }
    v
}

#[derive(Deserialize, JsonSchema)]
struct Remember {
    /// The collective (shared memory) to write to, by name; created if new.
    collective: String,
    /// What was learnt, in plain words.
    content: String,
    /// The kind of experience: difficulty, solution, error_pattern,
    /// success_pattern, user_preference, architectural_decision,
    /// tech_insight, fact or generic (default).
    kind: Option<ExperienceTypeTagJson>,
    /// Areas it belongs to, e.g. ["testing"].
    domain: Option<Vec<String>>,
    /// Key-value labels.
    tags: Option<BTreeMap<String, String>>,
    /// 0 to 1 (default 0.5).
    importance: Option<f32>,
    /// Who learnt it.
    agent: Option<String>,
    /// Any JSON object to keep with it (at most 16 KiB), returned as given.
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize, JsonSchema)]
struct Recall {
    /// The collective to search, by name.
    collective: String,
    /// What to look for, in plain words.
    query: String,
    /// How many results (default 5).
    k: Option<usize>,
    /// Only these areas.
    domain: Option<Vec<String>>,
    /// Only experiences with all these labels.
    tags: Option<BTreeMap<String, String>>,
    /// Only these kinds.
    kind: Option<Vec<ExperienceTypeTagJson>>,
}

#[derive(Deserialize, JsonSchema)]
struct Context {
    /// The collective, by name.
    collective: String,
    /// The task at hand, in plain words.
    query: String,
    /// Similar experiences to include (default 10).
    max_similar: Option<usize>,
    /// Recent experiences to include (default 5).
    max_recent: Option<usize>,
}

#[derive(Deserialize, JsonSchema)]
struct Relate {
    /// The experience the relation starts from (id).
    source: String,
    /// The experience it points to (id).
    target: String,
    /// supports, contradicts, elaborates, supersedes, implies or related_to.
    relation: RelationTypeJson,
    /// 0 to 1 (default 1).
    strength: Option<f32>,
}

#[derive(Deserialize, JsonSchema)]
struct Related {
    /// The experience (id).
    id: String,
    /// outgoing, incoming or both (default).
    direction: Option<DirectionJson>,
}

#[derive(Deserialize, JsonSchema)]
struct ById {
    /// The experience (id).
    id: String,
}

#[derive(Deserialize, JsonSchema)]
struct AddInsight {
    /// The collective, by name; created if new.
    collective: String,
    /// The insight, in plain words.
    content: String,
    /// The experiences it was drawn from (ids).
    sources: Vec<String>,
    /// pattern (default), synthesis, abstraction or correlation.
    kind: Option<InsightTypeJson>,
    /// 0 to 1 (default 0.5).
    confidence: Option<f32>,
}

#[derive(Deserialize, JsonSchema)]
struct SetActivity {
    /// The collective, by name; created if new.
    collective: String,
    /// The agent's name.
    agent: String,
    /// What the agent is working on.
    task: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct InCollective {
    /// The collective, by name.
    collective: String,
}

impl PulseTools {
    /// The tools over `db`.
    pub fn new(db: PulseHandle) -> Self {
        PulseTools {
            db,
            tool_router: Self::tool_router(),
        }
    }

    /// The id of collective `name`; created when `create` and missing.
    async fn collective(&self, name: &str, create: bool) -> Result<CollectiveId, String> {
        if let Some(id) = self.db.resolve_collective(name).await.map_err(explain)? {
            return Ok(id);
        }
        if create {
            return self.db.create_collective(name).await.map_err(explain);
        }
        Err(format!(
            "there is no collective named {name:?}: list_collectives shows them; \
             remember something to create it"
        ))
    }

    async fn query_vector(&self, query: &str) -> Result<Vec<f32>, String> {
        self.db
            .embed(&[query])
            .await
            .map_err(explain)?
            .pop()
            .ok_or_else(|| "the embedder returned nothing".to_string())
    }
}

#[tool_router]
impl PulseTools {
    #[tool(description = "Write something learnt to a shared memory; returns its id.")]
    async fn remember(&self, Parameters(p): Parameters<Remember>) -> Answer {
        let c = self.collective(&p.collective, true).await?;
        let kind = p.kind.map_or(ExperienceTypeTag::Generic, Into::into);
        let new = NewExperience {
            collective_id: c,
            experience_type: kind_of(kind, &p.content),
            content: p.content,
            embedding: None,
            importance: p.importance.unwrap_or(0.5),
            domain: p.domain.unwrap_or_default(),
            tags: p.tags.unwrap_or_default(),
            source_agent: p.agent.unwrap_or_else(|| "mcp".into()),
            metadata: p.metadata.unwrap_or_default(),
            ..NewExperience::default()
        };
        let id = self.db.record_experience(new).await.map_err(explain)?;
        answer(json!({ "id": id }))
    }

    #[tool(description = "Search a shared memory by meaning; best matches first.")]
    async fn recall(&self, Parameters(p): Parameters<Recall>) -> Answer {
        let c = self.collective(&p.collective, false).await?;
        let options = SearchOptions {
            k: p.k.unwrap_or(5),
            filter: SearchFilter {
                domains: p.domain,
                tags_all: p.tags,
                experience_types: p.kind.map(|ks| ks.into_iter().map(Into::into).collect()),
                ..SearchFilter::default()
            },
            weights: None,
        };
        let hits = self
            .db
            .search_text(c, &p.query, options)
            .await
            .map_err(explain)?;
        let list: Vec<Value> = hits
            .into_iter()
            .map(|h| {
                let mut v = compact(h.experience);
                v["similarity"] = json!(h.similarity);
                v
            })
            .collect();
        answer(json!(list))
    }

    #[tool(
        description = "Everything useful before a task: similar and recent experiences, insights, relations and active agents."
    )]
    async fn context(&self, Parameters(p): Parameters<Context>) -> Answer {
        let c = self.collective(&p.collective, false).await?;
        let request = crate::ContextRequest {
            collective_id: c,
            query_embedding: self.query_vector(&p.query).await?,
            max_similar: p.max_similar.unwrap_or(10),
            max_recent: p.max_recent.unwrap_or(5),
            ..crate::ContextRequest::default()
        };
        let found = self
            .db
            .get_context_candidates(request)
            .await
            .map_err(explain)?;
        answer(json!({
            "similar": found.similar_experiences.into_iter().map(|h| {
                let mut v = compact(h.experience);
                v["similarity"] = json!(h.similarity);
                v
            }).collect::<Vec<_>>(),
            "recent": found.recent_experiences.into_iter().map(compact).collect::<Vec<_>>(),
            "insights": found.insights.into_iter().map(|i| json!({"id": i.id, "content": i.content})).collect::<Vec<_>>(),
            "relations": found.relations.into_iter().map(|r| json!({
                "source": r.source_id, "target": r.target_id,
                "relation": RelationTypeJson::from(r.relation_type),
            })).collect::<Vec<_>>(),
            "active_agents": found.active_agents.into_iter().map(|a| json!({
                "agent": a.agent_id, "task": a.current_task,
            })).collect::<Vec<_>>(),
        }))
    }

    #[tool(
        description = "Link two experiences (supports, contradicts, elaborates, supersedes, implies, related_to); returns the relation id."
    )]
    async fn relate(&self, Parameters(p): Parameters<Relate>) -> Answer {
        let rel = NewExperienceRelation {
            source_id: parse_id("source", &p.source)?,
            target_id: parse_id("target", &p.target)?,
            relation_type: p.relation.into(),
            strength: p.strength.unwrap_or(1.0),
            metadata: None,
        };
        let id = self.db.store_relation(rel).await.map_err(explain)?;
        answer(json!({ "id": id }))
    }

    #[tool(description = "The experiences linked to one, with their relations.")]
    async fn related(&self, Parameters(p): Parameters<Related>) -> Answer {
        let id = parse_id("id", &p.id)?;
        let direction = p.direction.unwrap_or(DirectionJson::Both).into();
        let pairs = self
            .db
            .get_related_experiences(id, direction)
            .await
            .map_err(explain)?;
        let list: Vec<Value> = pairs
            .into_iter()
            .map(|(x, r)| {
                json!({
                    "relation": {"id": r.id, "type": RelationTypeJson::from(r.relation_type), "strength": r.strength},
                    "experience": ExperienceJson::new(x, false),
                })
            })
            .collect();
        answer(json!(list))
    }

    #[tool(description = "Mark an experience as useful again; returns how often it was applied.")]
    async fn reinforce(&self, Parameters(p): Parameters<ById>) -> Answer {
        let id = parse_id("id", &p.id)?;
        let n = self.db.reinforce_experience(id).await.map_err(explain)?;
        answer(json!({ "applications": n }))
    }

    #[tool(description = "Delete an experience (and its relations).")]
    async fn forget(&self, Parameters(p): Parameters<ById>) -> Answer {
        let id = parse_id("id", &p.id)?;
        self.db.delete_experience(id).await.map_err(explain)?;
        answer(json!({ "forgotten": id }))
    }

    #[tool(description = "Record an insight drawn from experiences; returns its id.")]
    async fn add_insight(&self, Parameters(p): Parameters<AddInsight>) -> Answer {
        let c = self.collective(&p.collective, true).await?;
        let sources = p
            .sources
            .iter()
            .map(|s| parse_id("sources", s))
            .collect::<Result<Vec<_>, _>>()?;
        let insight = NewDerivedInsight {
            collective_id: c,
            content: p.content,
            embedding: None,
            source_experience_ids: sources,
            insight_type: p.kind.unwrap_or(InsightTypeJson::Pattern).into(),
            confidence: p.confidence.unwrap_or(0.5),
            domain: Vec::new(),
        };
        let id = self.db.store_insight(insight).await.map_err(explain)?;
        answer(json!({ "id": id }))
    }

    #[tool(description = "The shared memories: names, ids and experience counts.")]
    async fn list_collectives(&self) -> Answer {
        let all = self.db.list_collectives().await.map_err(explain)?;
        let mut list = Vec::with_capacity(all.len());
        for c in all {
            let stats = self.db.get_collective_stats(c.id).await.map_err(explain)?;
            list.push(json!({"name": c.name, "id": c.id, "experiences": stats.experience_count}));
        }
        answer(json!(list))
    }

    #[tool(description = "Announce what an agent is working on in a collective.")]
    async fn set_activity(&self, Parameters(p): Parameters<SetActivity>) -> Answer {
        let c = self.collective(&p.collective, true).await?;
        let activity = NewActivity {
            agent_id: p.agent,
            collective_id: c,
            current_task: p.task,
            context_summary: None,
        };
        self.db.register_activity(activity).await.map_err(explain)?;
        answer(json!({ "ok": true }))
    }

    #[tool(description = "The agents active in a collective and their tasks.")]
    async fn active_agents(&self, Parameters(p): Parameters<InCollective>) -> Answer {
        let c = self.collective(&p.collective, false).await?;
        let agents = self.db.get_active_agents(c).await.map_err(explain)?;
        let list: Vec<Value> = agents
            .into_iter()
            .map(|a| json!({"agent": a.agent_id, "task": a.current_task, "since": a.started_at.0}))
            .collect();
        answer(json!(list))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for PulseTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("pulsedb", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "PulseDB is a memory shared by many agents. Before a task, `context` or \
                 `recall` what the others learnt; after it, `remember` what you learnt \
                 and `reinforce` what helped.",
            )
    }
}
