//! Experiences and search on [`PulseHandle`].

use super::engine::{work_permit, Access, Admission};
use super::PulseHandle;
use crate::collective::CollectiveId;
use crate::error::{Error, NotFoundError, Result, ValidationError};
use crate::experience::{
    energy, validate_embedding, Experience, ExperienceId, ExperienceUpdate, NewExperience,
    MAX_BATCH_ITEMS,
};
use crate::id::Timestamp;
use crate::search::{self, RecallWeights, SearchFilter, SearchOptions, SearchResult};
use crate::storage::{StorageRead, WriteOp};
use crate::validate;

impl PulseHandle {
    /// Records one experience and returns its id. Once this returns, the
    /// experience is durable and visible to every read and search.
    ///
    /// # Errors
    /// `Validation` (see [`NewExperience::validate`]; the embedding must have
    /// the database dimension, be finite and not all zero, and is required
    /// unless the handle has an embedder), `NotFound(Collective)`,
    /// `ReadOnly`, `Closed`, or a fault. Nothing is written on error.
    pub async fn record_experience(&self, exp: NewExperience) -> Result<ExperienceId> {
        let c = exp.collective_id;
        let e = &self.engine;
        e.run(
            "record_experience",
            Some(c),
            Access::Write,
            Admission::Wait,
            async { first(self.record_inner(vec![exp]).await?) },
        )
        .await
    }

    /// As [`PulseHandle::record_experience`], but answers `Error::Overloaded`
    /// at once when `max_in_flight` requests are already in flight.
    ///
    /// # Errors
    /// `Overloaded`, and everything `record_experience` returns.
    pub async fn try_record_experience(&self, exp: NewExperience) -> Result<ExperienceId> {
        let c = exp.collective_id;
        let e = &self.engine;
        e.run(
            "try_record_experience",
            Some(c),
            Access::Write,
            Admission::Try,
            async { first(self.record_inner(vec![exp]).await?) },
        )
        .await
    }

    /// Records up to 10 000 experiences of one collective atomically: all
    /// are written or none. Ids come back in input order; empty input gives
    /// `Ok(vec![])`.
    ///
    /// # Errors
    /// `Validation` (`TooManyItems`, mixed collectives, or any item's rule),
    /// `NotFound(Collective)`, `ReadOnly`, `Closed`, or a fault.
    pub async fn record_experiences(&self, exps: Vec<NewExperience>) -> Result<Vec<ExperienceId>> {
        let c = exps.first().map(|x| x.collective_id);
        let e = &self.engine;
        e.run(
            "record_experiences",
            c,
            Access::Write,
            Admission::Wait,
            async {
                if exps.is_empty() {
                    return Ok(Vec::new());
                }
                self.record_inner(exps).await
            },
        )
        .await
    }

    /// Records experiences exactly as given — ids, timestamps, reinforcement
    /// count and archived flag included — as `list_experiences` returns them
    /// (with embeddings): what restoring an export needs. Up to 10 000 of
    /// one collective, all or nothing; they list in id order, as if recorded
    /// at their ids' times.
    ///
    /// # Errors
    /// `Validation`: every rule of [`NewExperience::validate`], the
    /// embedding's (always required here), `last_reinforced` before
    /// `timestamp`, an `id` given twice or already stored;
    /// `NotFound(Collective)`, `ReadOnly`, `Closed`, or a fault. Nothing is
    /// written on error.
    pub async fn import_experiences(&self, exps: Vec<Experience>) -> Result<Vec<ExperienceId>> {
        let c = exps.first().map(|x| x.collective_id);
        let e = &self.engine;
        e.run(
            "import_experiences",
            c,
            Access::Write,
            Admission::Wait,
            async {
                let Some(c) = c else {
                    return Ok(Vec::new());
                };
                validate::item_count("experiences", exps.len(), MAX_BATCH_ITEMS)?;
                let dim = e.metadata.embedding_dimension;
                for x in &exps {
                    validate_imported(x, c, dim)?;
                }
                let ids = exps.iter().map(|x| x.id).collect();
                e.write_indexed(c, WriteOp::RecordExperiences(exps)).await?;
                Ok(ids)
            },
        )
        .await
    }

    async fn record_inner(&self, mut exps: Vec<NewExperience>) -> Result<Vec<ExperienceId>> {
        validate::item_count("experiences", exps.len(), MAX_BATCH_ITEMS)?;
        let c = exps[0].collective_id;
        let dim = self.engine.metadata.embedding_dimension;
        for x in &exps {
            x.validate()?;
            if x.collective_id != c {
                return Err(ValidationError::invalid(
                    "collective_id",
                    "all experiences of one call must belong to one collective",
                )
                .into());
            }
            if let Some(v) = &x.embedding {
                validate_embedding(v, dim)?;
            }
        }
        self.embed_missing(&mut exps).await?;
        let now = Timestamp::now();
        let records: Vec<Experience> = exps
            .into_iter()
            .map(|x| Experience {
                id: ExperienceId::new(),
                collective_id: x.collective_id,
                content: x.content,
                embedding: x.embedding.unwrap_or_default(),
                experience_type: x.experience_type,
                importance: x.importance,
                confidence: x.confidence,
                applications: 0,
                domain: x.domain,
                tags: x.tags,
                related_files: x.related_files,
                source_agent: x.source_agent,
                source_task: x.source_task,
                metadata: x.metadata,
                timestamp: now,
                last_reinforced: now,
                archived: false,
            })
            .collect();
        let ids = records.iter().map(|r| r.id).collect();
        self.engine
            .write_indexed(c, WriteOp::RecordExperiences(records))
            .await?;
        Ok(ids)
    }

    /// Fills in missing embeddings with the handle's embedder.
    async fn embed_missing(&self, exps: &mut [NewExperience]) -> Result<()> {
        let missing: Vec<usize> = (0..exps.len())
            .filter(|i| exps[*i].embedding.is_none())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = missing.iter().map(|i| exps[*i].content.clone()).collect();
        let vectors = self.embed_texts(texts, "embedding").await?;
        for (i, v) in missing.into_iter().zip(vectors) {
            exps[i].embedding = Some(v);
        }
        Ok(())
    }

    /// Embeds texts on the embedder's thread, in passes shared with other
    /// callers, and checks the output.
    pub(super) async fn embed_texts(
        &self,
        texts: Vec<String>,
        field: &str,
    ) -> Result<Vec<Vec<f32>>> {
        let Some(queue) = &self.engine.embedder else {
            return Err(ValidationError::RequiredField {
                field: field.to_string(),
            }
            .into());
        };
        let n = texts.len();
        let vectors = queue.embed(texts, work_permit()).await?;
        if vectors.len() != n {
            return Err(Error::Embedder {
                reason: format!("returned {} embeddings for {n} texts", vectors.len()),
            });
        }
        let dim = self.engine.metadata.embedding_dimension;
        for v in &vectors {
            validate_embedding(v, dim).map_err(|e| Error::Embedder {
                reason: format!("returned an unusable embedding: {e}"),
            })?;
        }
        Ok(vectors)
    }

    /// One experience with its embedding, or `None`.
    ///
    /// # Errors
    /// `Closed` or a storage fault.
    pub async fn get_experience(&self, id: ExperienceId) -> Result<Option<Experience>> {
        let e = &self.engine;
        e.run(
            "get_experience",
            None,
            Access::Read,
            Admission::Wait,
            async { e.read_point(|s| s.get_experience(id)) },
        )
        .await
    }

    /// The collective an experience belongs to.
    async fn collective_of(&self, id: ExperienceId) -> Result<CollectiveId> {
        self.engine
            .read(move |s| s.get_experience(id))
            .await?
            .map(|x| x.collective_id)
            .ok_or_else(|| NotFoundError::Experience(id).into())
    }

    /// Changes the mutable fields of an experience; only `Some` fields change
    /// (`domain`, `tags` and `related_files` are replaced whole). An empty
    /// update changes nothing and logs nothing.
    ///
    /// # Errors
    /// `Validation`, `NotFound(Experience)`, `ReadOnly`, `Closed`, or a
    /// fault. Nothing changes on error.
    pub async fn update_experience(
        &self,
        id: ExperienceId,
        update: ExperienceUpdate,
    ) -> Result<()> {
        let e = &self.engine;
        e.run(
            "update_experience",
            None,
            Access::Write,
            Admission::Wait,
            async {
                update.validate()?;
                let c = self.collective_of(id).await?;
                if update.is_empty() {
                    return Ok(());
                }
                e.write_indexed(c, WriteOp::UpdateExperience { id, update })
                    .await?;
                Ok(())
            },
        )
        .await
    }

    /// Archives an experience: kept, but left out of search, recent and cold
    /// lists by default.
    ///
    /// # Errors
    /// `NotFound(Experience)`, `ReadOnly`, `Closed`, or a fault.
    pub async fn archive_experience(&self, id: ExperienceId) -> Result<()> {
        self.set_archived(id, true, "archive_experience").await
    }

    /// Brings an archived experience back.
    ///
    /// # Errors
    /// `NotFound(Experience)`, `ReadOnly`, `Closed`, or a fault.
    pub async fn unarchive_experience(&self, id: ExperienceId) -> Result<()> {
        self.set_archived(id, false, "unarchive_experience").await
    }

    async fn set_archived(&self, id: ExperienceId, archived: bool, op: &'static str) -> Result<()> {
        let e = &self.engine;
        e.run(op, None, Access::Write, Admission::Wait, async {
            let c = self.collective_of(id).await?;
            let update = ExperienceUpdate {
                archived: Some(archived),
                ..ExperienceUpdate::default()
            };
            e.write_indexed(c, WriteOp::UpdateExperience { id, update })
                .await?;
            Ok(())
        })
        .await
    }

    /// Deletes an experience, its embedding and its relations.
    ///
    /// # Errors
    /// `NotFound(Experience)`, `ReadOnly`, `Closed`, or a fault.
    pub async fn delete_experience(&self, id: ExperienceId) -> Result<()> {
        let e = &self.engine;
        e.run(
            "delete_experience",
            None,
            Access::Write,
            Admission::Wait,
            async {
                let c = self.collective_of(id).await?;
                e.write_indexed(c, WriteOp::DeleteExperience(id)).await?;
                Ok(())
            },
        )
        .await
    }

    /// Adds one to this instance's reinforcement counter of an experience
    /// (atomically) and returns the total over every instance.
    ///
    /// # Errors
    /// `NotFound(Experience)`, `ReadOnly`, `Closed`, or a fault.
    pub async fn reinforce_experience(&self, id: ExperienceId) -> Result<u32> {
        let e = &self.engine;
        e.run(
            "reinforce_experience",
            None,
            Access::Write,
            Admission::Wait,
            async {
                let c = self.collective_of(id).await?;
                let at = Timestamp::now();
                let committed = e
                    .write_indexed(c, WriteOp::ReinforceExperience { id, at })
                    .await?;
                committed
                    .applied
                    .applications()
                    .ok_or(Error::ActorUnavailable { actor: "storage" })
            },
        )
        .await
    }

    /// The decay score of an experience, in `[0, 1]` (see [`crate::energy`]).
    /// Reading it does not reinforce.
    ///
    /// # Errors
    /// `NotFound(Experience)`, `Closed`, or a storage fault.
    pub async fn energy(&self, id: ExperienceId) -> Result<f32> {
        let e = &self.engine;
        e.run("energy", None, Access::Read, Admission::Wait, async {
            let x = e
                .read(move |s| s.get_experience(id))
                .await?
                .ok_or(NotFoundError::Experience(id))?;
            Ok(energy(
                x.importance,
                x.applications,
                x.last_reinforced,
                Timestamp::now(),
                &e.config.decay,
            ))
        })
        .await
    }

    /// Non-archived experiences with energy below `below`, coldest first.
    ///
    /// # Errors
    /// `Validation` (`below` finite in `[0, 1]`, `limit` in 1 ..= 1000),
    /// `NotFound(Collective)`, `Closed`, or a storage fault.
    pub async fn list_cold_experiences(
        &self,
        c: CollectiveId,
        below: f32,
        limit: usize,
    ) -> Result<Vec<(ExperienceId, f32)>> {
        let e = &self.engine;
        e.run(
            "list_cold_experiences",
            Some(c),
            Access::Read,
            Admission::Wait,
            async {
                validate::unit_interval("below", below)?;
                validate::result_count("limit", limit)?;
                let decay = e.config.decay.clone();
                e.read(move |s| {
                    let now = Timestamp::now();
                    let mut cold = Vec::new();
                    s.scan_experiences(c, false, &mut |x| {
                        if x.archived {
                            return;
                        }
                        let en =
                            energy(x.importance, x.applications, x.last_reinforced, now, &decay);
                        if en < below {
                            cold.push((x.id, en));
                        }
                    })?;
                    cold.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
                    cold.truncate(limit);
                    Ok(cold)
                })
                .await
            },
        )
        .await
    }

    /// Experiences of a collective, oldest first, archived included.
    ///
    /// # Errors
    /// `Validation` (`limit` in 1 ..= 1000), `NotFound(Collective)`,
    /// `Closed`, or a storage fault.
    pub async fn list_experiences(
        &self,
        c: CollectiveId,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Experience>> {
        let e = &self.engine;
        e.run(
            "list_experiences",
            Some(c),
            Access::Read,
            Admission::Wait,
            async {
                validate::result_count("limit", limit)?;
                e.read(move |s| {
                    let ids = s.list_experience_ids(c, limit, offset)?;
                    s.get_experiences(&ids)
                })
                .await
            },
        )
        .await
    }

    /// The newest non-archived experiences, newest first.
    ///
    /// # Errors
    /// `Validation` (`limit` in 1 ..= 1000), `NotFound(Collective)`,
    /// `Closed`, or a storage fault.
    pub async fn get_recent_experiences(
        &self,
        c: CollectiveId,
        limit: usize,
    ) -> Result<Vec<Experience>> {
        self.get_recent_experiences_filtered(c, limit, SearchFilter::default())
            .await
    }

    /// The newest experiences passing `filter`, newest first; `limit` of them
    /// whenever that many match.
    ///
    /// # Errors
    /// As [`PulseHandle::get_recent_experiences`], and `Validation` for a
    /// non-finite threshold.
    pub async fn get_recent_experiences_filtered(
        &self,
        c: CollectiveId,
        limit: usize,
        filter: SearchFilter,
    ) -> Result<Vec<Experience>> {
        let e = &self.engine;
        e.run(
            "get_recent_experiences",
            Some(c),
            Access::Read,
            Admission::Wait,
            async { self.recent_inner(c, limit, filter).await },
        )
        .await
    }

    pub(super) async fn recent_inner(
        &self,
        c: CollectiveId,
        limit: usize,
        filter: SearchFilter,
    ) -> Result<Vec<Experience>> {
        validate::result_count("limit", limit)?;
        filter.validate()?;
        self.engine
            .read(move |s| {
                let mut picked = Vec::with_capacity(limit);
                s.scan_experiences_newest_first(c, &mut |x| {
                    if filter.matches(&x) {
                        picked.push(x.id);
                    }
                    picked.len() < limit
                })?;
                s.get_experiences(&picked)
            })
            .await
    }

    /// The `k` experiences most similar to `query` (cosine), best first,
    /// archived excluded.
    ///
    /// # Errors
    /// `Validation` (`k` in 1 ..= 1000; the query's dimension, finiteness
    /// and non-zero norm), `NotFound(Collective)`, `Closed`, or a fault.
    pub async fn search_similar(
        &self,
        c: CollectiveId,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<SearchResult>> {
        self.search_similar_filtered(c, query, k, SearchFilter::default())
            .await
    }

    /// The `k` experiences most similar to `query` among those passing
    /// `filter`; `k` results whenever `k` match.
    ///
    /// # Errors
    /// As [`PulseHandle::search_similar`].
    pub async fn search_similar_filtered(
        &self,
        c: CollectiveId,
        query: &[f32],
        k: usize,
        filter: SearchFilter,
    ) -> Result<Vec<SearchResult>> {
        let e = &self.engine;
        e.run(
            "search_similar",
            Some(c),
            Access::Read,
            Admission::Wait,
            async { self.search_inner(c, query, k, filter, None).await },
        )
        .await
    }

    /// Search with options: filter and recall weights (defaulting to
    /// `decay.default_recall_weights`). With weights, results are ranked by
    /// `score` among at least the `max(4k, k + 16)` most similar.
    ///
    /// # Errors
    /// As [`PulseHandle::search_similar`], and `Validation` for bad weights.
    pub async fn search(
        &self,
        c: CollectiveId,
        query: &[f32],
        options: SearchOptions,
    ) -> Result<Vec<SearchResult>> {
        let e = &self.engine;
        e.run("search", Some(c), Access::Read, Admission::Wait, async {
            let weights = options.weights.or(e.config.decay.default_recall_weights);
            self.search_inner(c, query, options.k, options.filter, weights)
                .await
        })
        .await
    }

    pub(super) async fn search_inner(
        &self,
        c: CollectiveId,
        query: &[f32],
        k: usize,
        filter: SearchFilter,
        weights: Option<RecallWeights>,
    ) -> Result<Vec<SearchResult>> {
        validate::result_count("k", k)?;
        validate::embedding("query", query, self.engine.metadata.embedding_dimension)?;
        filter.validate()?;
        if let Some(w) = &weights {
            w.validate("weights")?;
        }
        let fetch = search::candidate_count(k, weights.as_ref());
        let query = query.to_vec();
        let e = &self.engine;
        let index = e.index(c).await?;
        let storage = e.storage()?;
        let hits = e
            .blocking(move || index.search(&storage, &query, fetch, &filter))
            .await?;
        Ok(search::rank(
            hits,
            k,
            weights.as_ref(),
            &self.engine.config.decay,
            Timestamp::now(),
        ))
    }
}

fn first(ids: Vec<ExperienceId>) -> Result<ExperienceId> {
    ids.into_iter()
        .next()
        .ok_or(Error::ActorUnavailable { actor: "storage" })
}

/// The rules of a recorded experience, for one given whole.
fn validate_imported(x: &Experience, c: CollectiveId, dim: usize) -> Result<()> {
    if x.collective_id != c {
        return Err(ValidationError::invalid(
            "collective_id",
            "all experiences of one call must belong to one collective",
        )
        .into());
    }
    NewExperience {
        collective_id: x.collective_id,
        content: x.content.clone(),
        experience_type: x.experience_type.clone(),
        embedding: None,
        importance: x.importance,
        confidence: x.confidence,
        domain: x.domain.clone(),
        tags: x.tags.clone(),
        related_files: x.related_files.clone(),
        source_agent: x.source_agent.clone(),
        source_task: x.source_task.clone(),
        metadata: x.metadata.clone(),
    }
    .validate()?;
    validate_embedding(&x.embedding, dim)?;
    if x.last_reinforced < x.timestamp {
        return Err(ValidationError::invalid(
            "last_reinforced",
            "must not be before the experience's timestamp",
        )
        .into());
    }
    Ok(())
}
