//! `pulsedb.Database`: the handle's methods (PYTHON.md "API").

use std::collections::BTreeMap;
use std::path::PathBuf;

use pulsedb::wire::{
    ActivityJson, CollectiveJson, ContextJson, DirectionJson, Hit, InsightTypeJson,
    NewExperienceJson, NewInsightJson, Related, RelationJson, RelationTypeJson, StatsJson,
    WatchEventJson,
};
use pulsedb::{
    Config, ContextRequest, EmbeddingDimension, ExperienceId, NewActivity, NewExperienceRelation,
    NotFoundError, PulseHandle, SearchOptions,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::args::{self, collective, Query};
use crate::call::{run, same_process, Mode};
use crate::convert::{self, experience, from_py, id, json_object, optional_vector, to_py};
use crate::embedder;
use crate::watch::Watch;

/// An open PulseDB database. Every method releases the GIL while the
/// engine works; on a handle from `open_async` each returns an asyncio
/// future instead of its value.
#[pyclass(module = "pulsedb", frozen)]
pub(crate) struct Database {
    /// Taken only by `Drop`.
    db: Option<PulseHandle>,
    mode: Mode,
    /// The process that opened it (see [`same_process`]).
    pid: u32,
}

/// Opens (or creates) the database file at `path`.
#[pyfunction]
#[pyo3(signature = (path, dimension=384, embedder=None, read_only=false))]
pub(crate) fn open(
    py: Python<'_>,
    path: PathBuf,
    dimension: usize,
    embedder: Option<&Bound<'_, PyAny>>,
    read_only: bool,
) -> PyResult<Py<PyAny>> {
    start(py, Mode::Blocking, path, dimension, embedder, read_only)
}

/// As `open`, answering with an asyncio future of a handle whose methods
/// answer with futures.
#[pyfunction]
#[pyo3(signature = (path, dimension=384, embedder=None, read_only=false))]
pub(crate) fn open_async(
    py: Python<'_>,
    path: PathBuf,
    dimension: usize,
    embedder: Option<&Bound<'_, PyAny>>,
    read_only: bool,
) -> PyResult<Py<PyAny>> {
    start(py, Mode::Async, path, dimension, embedder, read_only)
}

fn start(
    py: Python<'_>,
    mode: Mode,
    path: PathBuf,
    dimension: usize,
    embedder: Option<&Bound<'_, PyAny>>,
    read_only: bool,
) -> PyResult<Py<PyAny>> {
    let config = Config {
        embedding_dimension: match dimension {
            384 => EmbeddingDimension::D384,
            768 => EmbeddingDimension::D768,
            d => EmbeddingDimension::Custom(d),
        },
        read_only,
        ..Config::default()
    };
    let embedder = embedder::from_argument(embedder, dimension)?;
    let opening = async move {
        match embedder {
            Some(e) => PulseHandle::open_with_embedder(path, config, e).await,
            None => PulseHandle::open(path, config).await,
        }
    };
    run(py, mode, opening, move |py, db| {
        let pid = std::process::id();
        let db = Some(db);
        Ok(Py::new(py, Database { db, mode, pid })?.into_any())
    })
}

#[pymethods]
impl Database {
    #[pyo3(signature = (name, owner_id=None))]
    fn create_collective(
        &self,
        py: Python<'_>,
        name: String,
        owner_id: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let db = self.handle()?;
        let work = async move {
            match owner_id {
                Some(owner) => db.create_collective_with_owner(&name, &owner).await,
                None => db.create_collective(&name).await,
            }
        };
        self.run(py, work, text)
    }

    fn get_collective(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (db, c) = (self.handle()?, collective(id)?);
        let work = async move {
            db.get_collective(c)
                .await?
                .ok_or_else(|| NotFoundError::Collective(c).into())
        };
        self.run(py, work, |py, x| to_py(py, &CollectiveJson::from(x)))
    }

    fn list_collectives(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let db = self.handle()?;
        self.run(py, async move { db.list_collectives().await }, |py, xs| {
            to_py(
                py,
                &xs.into_iter().map(CollectiveJson::from).collect::<Vec<_>>(),
            )
        })
    }

    fn delete_collective(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (db, c) = (self.handle()?, collective(id)?);
        self.run(py, async move { db.delete_collective(c).await }, nothing)
    }

    fn collective_stats(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (db, c) = (self.handle()?, collective(id)?);
        self.run(
            py,
            async move { db.get_collective_stats(c).await },
            |py, s| to_py(py, &StatsJson::from(s)),
        )
    }

    #[pyo3(signature = (collective, content, *, embedding=None, experience_type=None,
        importance=0.5, confidence=0.5, domain=Vec::new(), tags=None, related_files=Vec::new(),
        source_agent="anonymous".to_string(), source_task=None, metadata=None))]
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        py: Python<'_>,
        collective: &Bound<'_, PyAny>,
        content: String,
        embedding: Option<&Bound<'_, PyAny>>,
        experience_type: Option<&Bound<'_, PyAny>>,
        importance: f32,
        confidence: f32,
        domain: Vec<String>,
        tags: Option<BTreeMap<String, String>>,
        related_files: Vec<String>,
        source_agent: String,
        source_task: Option<String>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let c = args::collective(collective)?;
        let new = NewExperienceJson {
            content,
            embedding: optional_vector(embedding, "embedding")?,
            experience_type: convert::experience_type(experience_type)?,
            importance,
            confidence,
            domain,
            tags: tags.unwrap_or_default(),
            related_files,
            source_agent,
            source_task,
            metadata: json_object(metadata, "metadata")?,
        };
        let db = self.handle()?;
        self.run(
            py,
            async move { db.record_experience(new.into_new(c)).await },
            text,
        )
    }

    /// Records every item or none; ids in input order.
    fn record_many(
        &self,
        py: Python<'_>,
        collective: &Bound<'_, PyAny>,
        items: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let c = args::collective(collective)?;
        let items = items
            .try_iter()?
            .map(|item| Ok(args::record_item(&item?)?.into_new(c)))
            .collect::<PyResult<Vec<_>>>()?;
        let db = self.handle()?;
        self.run(
            py,
            async move { db.record_experiences(items).await },
            |py, ids| to_py(py, &ids.iter().map(ToString::to_string).collect::<Vec<_>>()),
        )
    }

    /// What the collective's vector indexes hold: `indexed`, `staged`
    /// (still in the write buffer, searched exactly), `tombstones`, `hnsw`,
    /// `insights`. A diagnostic, as in the Rust API.
    fn index_stats(&self, py: Python<'_>, collective: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (db, c) = (self.handle()?, args::collective(collective)?);
        self.run(py, async move { db.index_stats(c).await }, |py, s| {
            to_py(py, &s)
        })
    }

    #[pyo3(signature = (id, include_embedding=false))]
    fn get(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        include_embedding: bool,
    ) -> PyResult<Py<PyAny>> {
        let (db, x) = (self.handle()?, experience_id(id)?);
        self.run(
            py,
            async move { db.get_experience(x).await },
            move |py, found| match found {
                Some(x) => experience(py, x, include_embedding),
                None => Ok(py.None()),
            },
        )
    }

    #[pyo3(signature = (id, **fields))]
    fn update(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        fields: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let (db, x, u) = (self.handle()?, experience_id(id)?, args::update(fields)?);
        self.run(
            py,
            async move { db.update_experience(x, u.into()).await },
            nothing,
        )
    }

    fn archive(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (db, x) = (self.handle()?, experience_id(id)?);
        self.run(py, async move { db.archive_experience(x).await }, nothing)
    }

    fn unarchive(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (db, x) = (self.handle()?, experience_id(id)?);
        self.run(py, async move { db.unarchive_experience(x).await }, nothing)
    }

    fn delete(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (db, x) = (self.handle()?, experience_id(id)?);
        self.run(py, async move { db.delete_experience(x).await }, nothing)
    }

    /// Adds one application; returns the total.
    fn reinforce(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (db, x) = (self.handle()?, experience_id(id)?);
        self.run(
            py,
            async move { db.reinforce_experience(x).await },
            |py, n| to_py(py, &n),
        )
    }

    /// The `limit` newest experiences matching `filter` (archived ones
    /// excluded unless the filter says otherwise).
    #[pyo3(signature = (collective, limit=10, filter=None))]
    fn recent(
        &self,
        py: Python<'_>,
        collective: &Bound<'_, PyAny>,
        limit: usize,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let (db, c, f) = (
            self.handle()?,
            args::collective(collective)?,
            args::filter(filter)?,
        );
        self.run(
            py,
            async move { db.get_recent_experiences_filtered(c, limit, f).await },
            |py, xs| {
                let items = xs
                    .into_iter()
                    .map(|x| experience(py, x, false))
                    .collect::<PyResult<Vec<_>>>()?;
                Ok(PyList::new(py, items)?.into_any().unbind())
            },
        )
    }

    #[pyo3(signature = (collective, *, vector=None, text=None, k=10, filter=None, weights=None, include_embedding=false))]
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        py: Python<'_>,
        collective: &Bound<'_, PyAny>,
        vector: Option<&Bound<'_, PyAny>>,
        text: Option<String>,
        k: usize,
        filter: Option<&Bound<'_, PyAny>>,
        weights: Option<&Bound<'_, PyAny>>,
        include_embedding: bool,
    ) -> PyResult<Py<PyAny>> {
        let c = args::collective(collective)?;
        let query = Query::new(py, vector, text)?;
        let options = SearchOptions {
            k,
            filter: args::filter(filter)?,
            weights: args::weights(weights)?,
        };
        let (db, field) = (self.handle()?, query.field());
        let work = args::naming_query(field, async move {
            let v = query.vector(&db).await?;
            db.search(c, &v, options).await
        });
        self.run(py, work, move |py, hits| {
            let items = hits
                .into_iter()
                .map(|h| hit(py, h, include_embedding))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyList::new(py, items)?.into_any().unbind())
        })
    }

    /// What an agent should know before a task (SERVER.md `ContextJson`).
    #[pyo3(signature = (collective, *, vector=None, text=None, max_similar=20, max_recent=10, filter=None))]
    #[allow(clippy::too_many_arguments)]
    fn context(
        &self,
        py: Python<'_>,
        collective: &Bound<'_, PyAny>,
        vector: Option<&Bound<'_, PyAny>>,
        text: Option<String>,
        max_similar: usize,
        max_recent: usize,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let c = args::collective(collective)?;
        let query = Query::new(py, vector, text)?;
        let filter = args::filter(filter)?;
        let (db, field) = (self.handle()?, query.field());
        let work = args::naming_query(field, async move {
            let request = ContextRequest {
                collective_id: c,
                query_embedding: query.vector(&db).await?,
                max_similar,
                max_recent,
                filter,
                ..ContextRequest::default()
            };
            db.get_context_candidates(request).await
        });
        self.run(py, work, |py, found| {
            to_py(py, &ContextJson::new(found, false))
        })
    }

    #[pyo3(signature = (source, target, relation_type, strength=0.5, metadata=None))]
    fn relate(
        &self,
        py: Python<'_>,
        source: &Bound<'_, PyAny>,
        target: &Bound<'_, PyAny>,
        relation_type: &Bound<'_, PyAny>,
        strength: f32,
        metadata: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let relation = NewExperienceRelation {
            source_id: id(source, "source")?,
            target_id: id(target, "target")?,
            relation_type: from_py::<RelationTypeJson>(relation_type, "relation_type")?.into(),
            strength,
            metadata,
        };
        let db = self.handle()?;
        self.run(py, async move { db.store_relation(relation).await }, text)
    }

    #[pyo3(signature = (id, direction="both", relation_type=None))]
    fn related(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        direction: &str,
        relation_type: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let x = experience_id(id)?;
        let direction =
            from_py::<DirectionJson>(PyString::new(py, direction).as_any(), "direction")?.into();
        let relation_type = relation_type
            .filter(|t| !t.is_none())
            .map(|t| from_py::<RelationTypeJson>(t, "relation_type").map(Into::into))
            .transpose()?;
        let db = self.handle()?;
        let work = async move {
            db.get_related_experiences_filtered(x, direction, relation_type)
                .await
        };
        self.run(py, work, |py, pairs| {
            let related: Vec<Related> = pairs
                .into_iter()
                .map(|(x, r)| Related {
                    experience: pulsedb::wire::ExperienceJson::new(x, false),
                    relation: RelationJson::from(r),
                })
                .collect();
            to_py(py, &related)
        })
    }

    #[pyo3(signature = (collective, content, sources, *, embedding=None, insight_type="pattern", confidence=0.5))]
    #[allow(clippy::too_many_arguments)]
    fn add_insight(
        &self,
        py: Python<'_>,
        collective: &Bound<'_, PyAny>,
        content: String,
        sources: &Bound<'_, PyAny>,
        embedding: Option<&Bound<'_, PyAny>>,
        insight_type: &str,
        confidence: f32,
    ) -> PyResult<Py<PyAny>> {
        let c = args::collective(collective)?;
        if sources.is_instance_of::<PyString>() {
            return Err(crate::errors::wrong_type(
                "`sources` must be a list of ids, not a str",
            ));
        }
        let sources = sources
            .try_iter()?
            .map(|s| id(&s?, "sources"))
            .collect::<PyResult<Vec<ExperienceId>>>()?;
        let insight = NewInsightJson {
            content,
            embedding: optional_vector(embedding, "embedding")?,
            source_experience_ids: sources,
            insight_type: from_py::<InsightTypeJson>(
                PyString::new(py, insight_type).as_any(),
                "insight_type",
            )?,
            confidence,
            domain: Vec::new(),
        };
        let db = self.handle()?;
        self.run(
            py,
            async move { db.store_insight(insight.into_new(c)).await },
            text,
        )
    }

    #[pyo3(signature = (collective, agent_id, current_task=None))]
    fn set_activity(
        &self,
        py: Python<'_>,
        collective: &Bound<'_, PyAny>,
        agent_id: String,
        current_task: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let activity = NewActivity {
            agent_id,
            collective_id: args::collective(collective)?,
            current_task,
            context_summary: None,
        };
        let db = self.handle()?;
        self.run(
            py,
            async move { db.register_activity(activity).await },
            nothing,
        )
    }

    fn end_activity(
        &self,
        py: Python<'_>,
        collective: &Bound<'_, PyAny>,
        agent_id: String,
    ) -> PyResult<Py<PyAny>> {
        let (db, c) = (self.handle()?, args::collective(collective)?);
        self.run(
            py,
            async move { db.end_activity(&agent_id, c).await },
            nothing,
        )
    }

    fn active_agents(&self, py: Python<'_>, collective: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (db, c) = (self.handle()?, args::collective(collective)?);
        self.run(
            py,
            async move { db.get_active_agents(c).await },
            |py, xs| {
                to_py(
                    py,
                    &xs.into_iter().map(ActivityJson::from).collect::<Vec<_>>(),
                )
            },
        )
    }

    /// The change log after `since`: `(events, next position)`.
    #[pyo3(signature = (since=0, limit=1000))]
    fn changes(&self, py: Python<'_>, since: u64, limit: usize) -> PyResult<Py<PyAny>> {
        let db = self.handle()?;
        self.run(
            py,
            async move { db.poll_changes_batch(since, limit).await },
            |py, (events, next)| {
                let events: Vec<WatchEventJson> = events.into_iter().map(Into::into).collect();
                Ok((to_py(py, &events)?, next)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind())
            },
        )
    }

    /// The collective's changes from now on: an iterator (an async
    /// iterator on an asyncio handle) of event dicts.
    fn watch(&self, py: Python<'_>, collective: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        same_process(self.pid)?;
        let c = args::collective(collective)?;
        Watch::start(py, self.mode, self.handle()?, c)
    }

    /// The handle's embedder applied to `texts`: float32 numpy arrays.
    fn embed(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Py<PyAny>> {
        let db = self.handle()?;
        let work = async move {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            db.embed(&texts).await
        };
        self.run(py, work, |py, vectors| {
            let arrays = vectors
                .iter()
                .map(|v| convert::numpy_vector(py, v))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyList::new(py, arrays)?.into_any().unbind())
        })
    }

    /// The same database answering with asyncio futures (the engine and
    /// its state are shared; closing either closes both).
    fn as_async(&self) -> Database {
        Database {
            db: self.db.clone(),
            mode: Mode::Async,
            pid: self.pid,
        }
    }

    /// Drains the queued writes, saves the indexes and closes; later calls
    /// raise `ClosedError`. Closing twice is fine.
    fn close(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let db = self.handle()?;
        self.run(py, async move { db.close().await }, nothing)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc: &Bound<'_, pyo3::types::PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        self.close(py)
    }
}

impl Database {
    fn handle(&self) -> PyResult<PulseHandle> {
        self.db
            .clone()
            .ok_or_else(|| crate::errors::ClosedError::new_err("the database handle is closed"))
    }

    fn run<T, F, C>(&self, py: Python<'_>, work: F, convert: C) -> PyResult<Py<PyAny>>
    where
        T: Send + 'static,
        F: std::future::Future<Output = pulsedb::Result<T>> + Send + 'static,
        C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
    {
        same_process(self.pid)?;
        run(py, self.mode, work, convert)
    }
}

/// A handle dropped without `close`: the engine's last reference may flush
/// the file on its way out, which must not hold the GIL.
impl Drop for Database {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            Python::try_attach(|py| py.detach(move || drop(db)));
        }
    }
}

fn experience_id(value: &Bound<'_, PyAny>) -> PyResult<ExperienceId> {
    id(value, "id")
}

fn nothing(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

/// An id (or any displayable answer) as a `str`.
fn text<T: std::fmt::Display>(py: Python<'_>, value: T) -> PyResult<Py<PyAny>> {
    Ok(value.to_string().into_pyobject(py)?.into_any().unbind())
}

/// A search hit (SERVER.md `Hit`), the embedding as a numpy array when
/// asked for.
fn hit(py: Python<'_>, mut h: pulsedb::SearchResult, embedding: bool) -> PyResult<Py<PyAny>> {
    let vector = std::mem::take(&mut h.experience.embedding);
    let dict = to_py(py, &Hit::new(h, false))?;
    if embedding {
        let x = dict.bind(py).get_item("experience")?;
        x.set_item("embedding", convert::numpy_vector(py, &vector)?)?;
    }
    Ok(dict)
}
