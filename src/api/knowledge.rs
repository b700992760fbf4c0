//! Relations, insights, activities and context assembly on [`PulseHandle`].

use std::collections::HashSet;

use super::engine::{Access, Admission};
use super::PulseHandle;
use crate::activity::{validate_agent_id, Activity, NewActivity};
use crate::collective::CollectiveId;
use crate::error::{NotFoundError, Result};
use crate::experience::{validate_embedding, Experience, ExperienceId};
use crate::id::Timestamp;
use crate::insight::{DerivedInsight, InsightId, NewDerivedInsight};
use crate::relation::{
    ExperienceRelation, NewExperienceRelation, RelationDirection, RelationId, RelationType,
};
use crate::search::{ContextCandidates, ContextRequest};
use crate::storage::{StorageRead, WriteOp};
use crate::validate;

impl PulseHandle {
    // --- relations -------------------------------------------------------

    /// Stores a typed relation between two experiences of one collective.
    ///
    /// # Errors
    /// `Validation` (self-relation, strength outside `[0, 1]`, metadata over
    /// 10 240 bytes, ends in different collectives, an existing relation of
    /// the same type between the same ends), `NotFound(Experience)` for a
    /// missing end, `ReadOnly`, `Closed`, or a fault. Nothing is written on
    /// error.
    pub async fn store_relation(&self, rel: NewExperienceRelation) -> Result<RelationId> {
        let e = &self.engine;
        e.run(
            "store_relation",
            None,
            Access::Write,
            Admission::Wait,
            async {
                rel.validate()?;
                let relation = ExperienceRelation {
                    id: RelationId::new(),
                    source_id: rel.source_id,
                    target_id: rel.target_id,
                    relation_type: rel.relation_type,
                    strength: rel.strength,
                    metadata: rel.metadata,
                    created_at: Timestamp::now(),
                };
                let id = relation.id;
                e.write_direct(WriteOp::StoreRelation(relation)).await?;
                Ok(id)
            },
        )
        .await
    }

    /// One relation, or `None`.
    ///
    /// # Errors
    /// `Closed` or a storage fault.
    pub async fn get_relation(&self, id: RelationId) -> Result<Option<ExperienceRelation>> {
        let e = &self.engine;
        e.run("get_relation", None, Access::Read, Admission::Wait, async {
            e.read_point(|s| s.get_relation(id))
        })
        .await
    }

    /// Deletes a relation.
    ///
    /// # Errors
    /// `NotFound(Relation)`, `ReadOnly`, `Closed`, or a fault.
    pub async fn delete_relation(&self, id: RelationId) -> Result<()> {
        let e = &self.engine;
        e.run(
            "delete_relation",
            None,
            Access::Write,
            Admission::Wait,
            async {
                e.write_direct(WriteOp::DeleteRelation(id)).await?;
                Ok(())
            },
        )
        .await
    }

    /// Experiences related to `id` in `direction`, each with its relation.
    ///
    /// # Errors
    /// `NotFound(Experience)`, `Closed`, or a storage fault.
    pub async fn get_related_experiences(
        &self,
        id: ExperienceId,
        direction: RelationDirection,
    ) -> Result<Vec<(Experience, ExperienceRelation)>> {
        self.get_related_experiences_filtered(id, direction, None)
            .await
    }

    /// As [`PulseHandle::get_related_experiences`], restricted to one
    /// relation type when given.
    ///
    /// # Errors
    /// `NotFound(Experience)`, `Closed`, or a storage fault.
    pub async fn get_related_experiences_filtered(
        &self,
        id: ExperienceId,
        direction: RelationDirection,
        relation_type: Option<RelationType>,
    ) -> Result<Vec<(Experience, ExperienceRelation)>> {
        let e = &self.engine;
        e.run(
            "get_related_experiences",
            None,
            Access::Read,
            Admission::Wait,
            async {
                e.read(move |s| {
                    if s.get_experience(id)?.is_none() {
                        return Err(NotFoundError::Experience(id).into());
                    }
                    let mut rel_ids = Vec::new();
                    if matches!(
                        direction,
                        RelationDirection::Outgoing | RelationDirection::Both
                    ) {
                        rel_ids.extend(s.relation_ids_by_source(id)?);
                    }
                    if matches!(
                        direction,
                        RelationDirection::Incoming | RelationDirection::Both
                    ) {
                        rel_ids.extend(s.relation_ids_by_target(id)?);
                    }
                    let mut out = Vec::with_capacity(rel_ids.len());
                    for rid in rel_ids {
                        let Some(rel) = s.get_relation(rid)? else {
                            continue;
                        };
                        if relation_type.is_some_and(|t| t != rel.relation_type) {
                            continue;
                        }
                        let other = if rel.source_id == id {
                            rel.target_id
                        } else {
                            rel.source_id
                        };
                        if let Some(x) = s.get_experience(other)? {
                            out.push((x, rel));
                        }
                    }
                    Ok(out)
                })
                .await
            },
        )
        .await
    }

    /// Relations of a collective, oldest first.
    ///
    /// # Errors
    /// `Validation` (`limit` in 1 ..= 1000), `NotFound(Collective)`,
    /// `Closed`, or a storage fault.
    pub async fn list_relations(
        &self,
        c: CollectiveId,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<ExperienceRelation>> {
        let e = &self.engine;
        e.run(
            "list_relations",
            Some(c),
            Access::Read,
            Admission::Wait,
            async {
                validate::result_count("limit", limit)?;
                e.read(move |s| s.list_relations(c, limit, offset)).await
            },
        )
        .await
    }

    // --- insights --------------------------------------------------------

    /// Stores an insight derived from 1 ..= 100 experiences of its collective.
    ///
    /// # Errors
    /// `Validation` (see [`NewDerivedInsight::validate`], the embedding's
    /// rules, a source in another collective), `NotFound(Collective)`,
    /// `NotFound(Experience)` for a missing source, `ReadOnly`, `Closed`, or
    /// a fault. Nothing is written on error.
    pub async fn store_insight(&self, insight: NewDerivedInsight) -> Result<InsightId> {
        let c = insight.collective_id;
        let e = &self.engine;
        e.run(
            "store_insight",
            Some(c),
            Access::Write,
            Admission::Wait,
            async {
                insight.validate()?;
                let embedding = match insight.embedding {
                    Some(v) => {
                        validate_embedding(&v, e.metadata.embedding_dimension)?;
                        v
                    }
                    None => self
                        .embed_texts(vec![insight.content.clone()], "embedding")
                        .await?
                        .pop()
                        .unwrap_or_default(),
                };
                let now = Timestamp::now();
                let record = DerivedInsight {
                    id: InsightId::new(),
                    collective_id: c,
                    content: insight.content,
                    embedding,
                    source_experience_ids: insight.source_experience_ids,
                    insight_type: insight.insight_type,
                    confidence: insight.confidence,
                    domain: insight.domain,
                    created_at: now,
                    updated_at: now,
                };
                let id = record.id;
                e.write_indexed(c, WriteOp::StoreInsight(record)).await?;
                Ok(id)
            },
        )
        .await
    }

    /// One insight, or `None`.
    ///
    /// # Errors
    /// `Closed` or a storage fault.
    pub async fn get_insight(&self, id: InsightId) -> Result<Option<DerivedInsight>> {
        let e = &self.engine;
        e.run("get_insight", None, Access::Read, Admission::Wait, async {
            e.read_point(|s| s.get_insight(id))
        })
        .await
    }

    /// The `k` insights of a collective nearest `query` (cosine), best first.
    ///
    /// # Errors
    /// `Validation` (`k`, the query's rules), `NotFound(Collective)`,
    /// `Closed`, or a fault.
    pub async fn get_insights(
        &self,
        c: CollectiveId,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<(DerivedInsight, f32)>> {
        let e = &self.engine;
        e.run(
            "get_insights",
            Some(c),
            Access::Read,
            Admission::Wait,
            async { self.insights_inner(c, query, k).await },
        )
        .await
    }

    async fn insights_inner(
        &self,
        c: CollectiveId,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<(DerivedInsight, f32)>> {
        validate::result_count("k", k)?;
        validate::embedding("query", query, self.engine.metadata.embedding_dimension)?;
        let query = query.to_vec();
        let index = self.engine.index(c).await?;
        let hits = self
            .engine
            .blocking(move || index.search_insights(&query, k))
            .await?;
        self.engine
            .read(move |s| {
                let mut out = Vec::with_capacity(hits.len());
                for (id, sim) in hits {
                    if let Some(i) = s.get_insight(id)? {
                        out.push((i, sim.clamp(-1.0, 1.0)));
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Deletes an insight.
    ///
    /// # Errors
    /// `NotFound(Insight)`, `ReadOnly`, `Closed`, or a fault.
    pub async fn delete_insight(&self, id: InsightId) -> Result<()> {
        let e = &self.engine;
        e.run(
            "delete_insight",
            None,
            Access::Write,
            Admission::Wait,
            async {
                let insight = e
                    .read(move |s| s.get_insight(id))
                    .await?
                    .ok_or(NotFoundError::Insight(id))?;
                e.write_indexed(insight.collective_id, WriteOp::DeleteInsight(id))
                    .await?;
                Ok(())
            },
        )
        .await
    }

    /// Insights of a collective, oldest first.
    ///
    /// # Errors
    /// `Validation` (`limit` in 1 ..= 1000), `NotFound(Collective)`,
    /// `Closed`, or a storage fault.
    pub async fn list_insights(
        &self,
        c: CollectiveId,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<DerivedInsight>> {
        let e = &self.engine;
        e.run(
            "list_insights",
            Some(c),
            Access::Read,
            Admission::Wait,
            async {
                validate::result_count("limit", limit)?;
                e.read(move |s| {
                    let ids = s.list_insight_ids(c, limit, offset)?;
                    let mut out = Vec::with_capacity(ids.len());
                    for id in ids {
                        if let Some(i) = s.get_insight(id)? {
                            out.push(i);
                        }
                    }
                    Ok(out)
                })
                .await
            },
        )
        .await
    }

    // --- activities ------------------------------------------------------

    /// Registers (or replaces, resetting `started_at`) an agent's activity.
    ///
    /// # Errors
    /// `Validation`, `NotFound(Collective)`, `ReadOnly`, `Closed`, or a fault.
    pub async fn register_activity(&self, a: NewActivity) -> Result<()> {
        let c = a.collective_id;
        let e = &self.engine;
        e.run(
            "register_activity",
            Some(c),
            Access::Write,
            Admission::Wait,
            async {
                a.validate()?;
                let now = Timestamp::now();
                let activity = Activity {
                    agent_id: a.agent_id,
                    collective_id: c,
                    current_task: a.current_task,
                    context_summary: a.context_summary,
                    started_at: now,
                    last_heartbeat: now,
                };
                e.write_direct(WriteOp::UpsertActivity(activity)).await?;
                Ok(())
            },
        )
        .await
    }

    /// Refreshes an agent's heartbeat.
    ///
    /// # Errors
    /// `Validation`, `NotFound(Activity)` or `NotFound(Collective)`,
    /// `ReadOnly`, `Closed`, or a fault.
    pub async fn update_heartbeat(&self, agent_id: &str, c: CollectiveId) -> Result<()> {
        let e = &self.engine;
        e.run(
            "update_heartbeat",
            Some(c),
            Access::Write,
            Admission::Wait,
            async {
                validate_agent_id(agent_id)?;
                e.write_direct(WriteOp::Heartbeat {
                    agent_id: agent_id.to_string(),
                    collective_id: c,
                    at: Timestamp::now(),
                })
                .await?;
                Ok(())
            },
        )
        .await
    }

    /// Ends an agent's activity.
    ///
    /// # Errors
    /// `Validation`, `NotFound(Activity)` or `NotFound(Collective)`,
    /// `ReadOnly`, `Closed`, or a fault.
    pub async fn end_activity(&self, agent_id: &str, c: CollectiveId) -> Result<()> {
        let e = &self.engine;
        e.run(
            "end_activity",
            Some(c),
            Access::Write,
            Admission::Wait,
            async {
                validate_agent_id(agent_id)?;
                e.write_direct(WriteOp::EndActivity {
                    agent_id: agent_id.to_string(),
                    collective_id: c,
                })
                .await?;
                Ok(())
            },
        )
        .await
    }

    /// Agents whose heartbeat is within `activity.stale_threshold`, most
    /// recent first.
    ///
    /// # Errors
    /// `NotFound(Collective)`, `Closed`, or a storage fault.
    pub async fn get_active_agents(&self, c: CollectiveId) -> Result<Vec<Activity>> {
        let e = &self.engine;
        e.run(
            "get_active_agents",
            Some(c),
            Access::Read,
            Admission::Wait,
            async { self.active_inner(c).await },
        )
        .await
    }

    async fn active_inner(&self, c: CollectiveId) -> Result<Vec<Activity>> {
        let stale = self.engine.config.activity.stale_threshold;
        let since =
            Timestamp(Timestamp::now().0 - i64::try_from(stale.as_millis()).unwrap_or(i64::MAX));
        self.engine.read(move |s| s.list_activities(c, since)).await
    }

    // --- context ---------------------------------------------------------

    /// Similar and recent experiences, nearest insights, the relations of
    /// the returned experiences and the active agents, in one call. The
    /// independent parts are fetched concurrently.
    ///
    /// # Errors
    /// `Validation` (limits, embedding, weights), `NotFound(Collective)`,
    /// `Closed`, or a fault.
    pub async fn get_context_candidates(&self, req: ContextRequest) -> Result<ContextCandidates> {
        let c = req.collective_id;
        let e = &self.engine;
        e.run(
            "get_context_candidates",
            Some(c),
            Access::Read,
            Admission::Wait,
            async {
                req.validate()?;
                validate::embedding(
                    "query_embedding",
                    &req.query_embedding,
                    e.metadata.embedding_dimension,
                )?;
                let weights = req.recall_weights.or(e.config.decay.default_recall_weights);
                let similar = self.search_inner(
                    c,
                    &req.query_embedding,
                    req.max_similar,
                    req.filter.clone(),
                    weights,
                );
                let recent = self.recent_inner(c, req.max_recent, req.filter.clone());
                let insights = async {
                    if req.include_insights {
                        self.insights_inner(c, &req.query_embedding, req.max_similar)
                            .await
                    } else {
                        Ok(Vec::new())
                    }
                };
                let agents = async {
                    if req.include_active_agents {
                        self.active_inner(c).await
                    } else {
                        Ok(Vec::new())
                    }
                };
                let (similar, recent, insights, agents) =
                    tokio::join!(similar, recent, insights, agents);
                let (similar, recent) = (similar?, recent?);
                let relations = if req.include_relations {
                    let ids: Vec<ExperienceId> = similar
                        .iter()
                        .map(|r| r.experience.id)
                        .chain(recent.iter().map(|x| x.id))
                        .collect();
                    e.read(move |s| relations_touching(s, &ids)).await?
                } else {
                    Vec::new()
                };
                Ok(ContextCandidates {
                    similar_experiences: similar,
                    recent_experiences: recent,
                    insights: insights?.into_iter().map(|(i, _)| i).collect(),
                    relations,
                    active_agents: agents?,
                })
            },
        )
        .await
    }
}

/// Every relation with an end among `ids`, each once, in the order found.
fn relations_touching(
    s: &crate::storage::RedbStorage,
    ids: &[ExperienceId],
) -> Result<Vec<ExperienceRelation>> {
    let mut seen_exp = HashSet::new();
    let mut seen_rel = HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        if !seen_exp.insert(*id) {
            continue;
        }
        let mut rel_ids = s.relation_ids_by_source(*id)?;
        rel_ids.extend(s.relation_ids_by_target(*id)?);
        for rid in rel_ids {
            if seen_rel.insert(rid) {
                if let Some(r) = s.get_relation(rid)? {
                    out.push(r);
                }
            }
        }
    }
    Ok(out)
}
