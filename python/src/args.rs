//! Arguments that take more than a type check: experiences to record,
//! updates, queries and filters.

use std::collections::BTreeMap;

use pulsedb::wire::{
    ExperienceTypeTagJson, ExperienceUpdateJson, NewExperienceJson, RecallWeightsJson,
};
use pulsedb::{CollectiveId, PulseHandle, SearchFilter, Timestamp, ValidationError};
use pyo3::conversion::FromPyObjectOwned;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert::{experience_type, from_py, json_object, optional_vector, type_name};
use crate::errors::{invalid, wrong_type};

/// The keyword names of `record`, which `record_many` items use as keys.
const RECORD_FIELDS: &[&str] = &[
    "content",
    "embedding",
    "experience_type",
    "importance",
    "confidence",
    "domain",
    "tags",
    "related_files",
    "source_agent",
    "source_task",
    "metadata",
];

/// One `record_many` item: a dict with `content` and `record`'s keywords.
pub(crate) fn record_item(item: &Bound<'_, PyAny>) -> PyResult<NewExperienceJson> {
    let item = item.cast::<PyDict>().map_err(|_| {
        wrong_type(format!(
            "record_many items must be dicts, not {}",
            type_name(item)
        ))
    })?;
    for key in item.keys() {
        let known = key
            .cast::<PyString>()
            .ok()
            .and_then(|k| k.to_cow().ok().map(|k| RECORD_FIELDS.contains(&&*k)));
        if known != Some(true) {
            return Err(wrong_type(format!(
                "record_many item has an unknown key {key}"
            )));
        }
    }
    let get = |key: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
        Ok(item.get_item(key)?.filter(|v| !v.is_none()))
    };
    let content = get("content")?.ok_or_else(|| wrong_type("record_many item needs `content`"))?;
    Ok(NewExperienceJson {
        content: typed(&content, "content", "a str")?,
        embedding: optional_vector(get("embedding")?.as_ref(), "embedding")?,
        experience_type: experience_type(get("experience_type")?.as_ref())?,
        importance: typed_or(get("importance")?, "importance", "a float", 0.5)?,
        confidence: typed_or(get("confidence")?, "confidence", "a float", 0.5)?,
        domain: typed_or(get("domain")?, "domain", "a list of str", Vec::new())?,
        tags: typed_or(
            get("tags")?,
            "tags",
            "a dict of str to str",
            BTreeMap::new(),
        )?,
        related_files: typed_or(
            get("related_files")?,
            "related_files",
            "a list of str",
            Vec::new(),
        )?,
        source_agent: typed_or(
            get("source_agent")?,
            "source_agent",
            "a str",
            "anonymous".into(),
        )?,
        source_task: get("source_task")?
            .map(|v| typed(&v, "source_task", "a str"))
            .transpose()?,
        metadata: json_object(get("metadata")?.as_ref(), "metadata")?,
    })
}

/// `update`'s keyword arguments.
pub(crate) fn update(fields: Option<&Bound<'_, PyDict>>) -> PyResult<ExperienceUpdateJson> {
    let mut u = ExperienceUpdateJson::default();
    let Some(fields) = fields else { return Ok(u) };
    for (key, value) in fields.iter() {
        let key: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        match key.as_str() {
            "importance" => u.importance = Some(typed(&value, &key, "a float")?),
            "confidence" => u.confidence = Some(typed(&value, &key, "a float")?),
            "domain" => u.domain = Some(typed(&value, &key, "a list of str")?),
            "tags" => u.tags = Some(typed(&value, &key, "a dict of str to str")?),
            "related_files" => u.related_files = Some(typed(&value, &key, "a list of str")?),
            "archived" => u.archived = Some(typed(&value, &key, "a bool")?),
            "metadata" => u.metadata = Some(json_object(Some(&value), &key)?),
            _ => {
                return Err(wrong_type(format!(
                    "update() got an unexpected keyword argument '{key}'"
                )))
            }
        }
    }
    Ok(u)
}

/// A search `filter` (SERVER.md's `SearchFilter` as a dict). Unknown keys
/// and values of the wrong type are `TypeError`s; an unknown experience
/// type is a `ValidationError` naming `filter`.
pub(crate) fn filter(value: Option<&Bound<'_, PyAny>>) -> PyResult<SearchFilter> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(SearchFilter::default());
    };
    let dict = value
        .cast::<PyDict>()
        .map_err(|_| wrong_type(format!("`filter` must be a dict, not {}", type_name(value))))?;
    let mut f = SearchFilter::default();
    for (key, value) in dict.iter() {
        let key: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        let name = format!("filter `{key}`");
        match key.as_str() {
            "domains" => f.domains = Some(typed(&value, &name, "a list of str")?),
            "tags_all" => f.tags_all = Some(typed(&value, &name, "a dict of str to str")?),
            "experience_types" => {
                let names: Vec<String> = typed(&value, &name, "a list of str")?;
                let names = PyList::new(value.py(), names)?;
                let tags: Vec<ExperienceTypeTagJson> = from_py(names.as_any(), "filter")?;
                f.experience_types = Some(tags.into_iter().map(Into::into).collect());
            }
            "min_importance" => f.min_importance = Some(typed(&value, &name, "a float")?),
            "min_confidence" => f.min_confidence = Some(typed(&value, &name, "a float")?),
            "since" => {
                f.since = Some(Timestamp(typed(
                    &value,
                    &name,
                    "an int (Unix milliseconds)",
                )?))
            }
            "exclude_archived" => f.exclude_archived = typed(&value, &name, "a bool")?,
            _ => return Err(wrong_type(format!("`filter` has an unknown key '{key}'"))),
        }
    }
    Ok(f)
}

/// Recall `weights`: `{"similarity": float, "energy": float}`.
pub(crate) fn weights(
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<pulsedb::RecallWeights>> {
    match value.filter(|v| !v.is_none()) {
        None => Ok(None),
        Some(v) if v.cast::<PyDict>().is_ok() => {
            Ok(Some(from_py::<RecallWeightsJson>(v, "weights")?.into()))
        }
        Some(v) => Err(wrong_type(format!(
            "`weights` must be a dict, not {}",
            type_name(v)
        ))),
    }
}

/// A query: exactly one of a vector and a text (embedded when run).
pub(crate) enum Query {
    Vector(Vec<f32>),
    Text(String),
}

impl Query {
    pub(crate) fn new(
        py: Python<'_>,
        vector: Option<&Bound<'_, PyAny>>,
        text: Option<String>,
    ) -> PyResult<Query> {
        match (optional_vector(vector, "vector")?, text) {
            (Some(v), None) => Ok(Query::Vector(v)),
            (None, Some(t)) => Ok(Query::Text(t)),
            (Some(_), Some(_)) => Err(invalid(
                py,
                "vector",
                "give exactly one of `vector` and `text`, not both",
            )),
            (None, None) => Err(invalid(
                py,
                "vector",
                "give exactly one of `vector` and `text`",
            )),
        }
    }

    /// The argument the query came in: `vector` or `text`.
    pub(crate) fn field(&self) -> &'static str {
        match self {
            Query::Vector(_) => "vector",
            Query::Text(_) => "text",
        }
    }

    /// The query vector: as given, or the text embedded by the handle's
    /// embedder.
    pub(crate) async fn vector(self, db: &PulseHandle) -> pulsedb::Result<Vec<f32>> {
        match self {
            Query::Vector(v) => Ok(v),
            Query::Text(t) => db.embed(&[&t]).await?.pop().ok_or_else(|| {
                ValidationError::InvalidField {
                    field: "text".into(),
                    reason: "the embedder returned nothing".into(),
                }
                .into()
            }),
        }
    }
}

/// The engine names a bad query after its own parameters (`query`,
/// `query_embedding`, `embedding`, `texts[0]`, `content`): reported against
/// the argument given, `vector` or `text`.
pub(crate) fn as_query_error(e: pulsedb::Error, field: &'static str) -> pulsedb::Error {
    const QUERY_FIELDS: &[&str] = &[
        "query",
        "query_embedding",
        "embedding",
        "texts[0]",
        "content",
    ];
    match e {
        pulsedb::Error::Validation(v) if QUERY_FIELDS.contains(&v.field()) => {
            ValidationError::InvalidField {
                field: field.into(),
                reason: v.to_string(),
            }
            .into()
        }
        other => other,
    }
}

/// `work` with its query errors named after `field` ([`as_query_error`]).
pub(crate) async fn naming_query<T>(
    field: &'static str,
    work: impl std::future::Future<Output = pulsedb::Result<T>>,
) -> pulsedb::Result<T> {
    work.await.map_err(|e| as_query_error(e, field))
}

/// The collective id argument.
pub(crate) fn collective(value: &Bound<'_, PyAny>) -> PyResult<CollectiveId> {
    crate::convert::id(value, "collective")
}

fn typed<'py, T: FromPyObjectOwned<'py>>(
    value: &Bound<'py, PyAny>,
    key: &str,
    what: &str,
) -> PyResult<T> {
    value
        .extract()
        .map_err(|_| wrong_type(format!("`{key}` must be {what}, not {}", type_name(value))))
}

fn typed_or<'py, T: FromPyObjectOwned<'py>>(
    value: Option<Bound<'py, PyAny>>,
    key: &str,
    what: &str,
    default: T,
) -> PyResult<T> {
    value.map_or(Ok(default), |v| typed(&v, key, what))
}
