//! Embedders given from Python: `"builtin"` or any object with
//! `embed_documents(list[str]) -> list[list[float]]` and a `model_id`.

use std::sync::Arc;

use pulsedb::{BuiltinEmbedder, Embedder};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::convert::{type_name, vector};
use crate::errors::{wrong_type, NoEmbedderError};

/// The embedder `open` was given, if any; `dimension` is the database's.
pub(crate) fn from_argument(
    value: Option<&Bound<'_, PyAny>>,
    dimension: usize,
) -> PyResult<Option<Arc<dyn Embedder>>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Ok(name) = value.cast::<PyString>() {
        if name.to_cow()? != "builtin" {
            return Err(wrong_type(format!(
                "embedder must be None, \"builtin\" or an object with embed_documents, not {name:?}"
            )));
        }
        // Loading reads ~90 MB of weights: not with the GIL held.
        let loaded = value.py().detach(BuiltinEmbedder::locate);
        return loaded
            .map(|e| Some(Arc::new(e) as Arc<dyn Embedder>))
            .map_err(|e| NoEmbedderError::new_err(e.to_string()));
    }
    if !value.hasattr("embed_documents")? {
        return Err(wrong_type(format!(
            "embedder must have an embed_documents method ({} has none)",
            type_name(value)
        )));
    }
    let model_id: String = value
        .getattr("model_id")
        .and_then(|m| m.extract())
        .map_err(|_| wrong_type("embedder must have a `model_id` str attribute"))?;
    Ok(Some(Arc::new(PythonEmbedder {
        object: value.clone().unbind(),
        model_id,
        dimension,
    })))
}

/// A Python object embedding for the engine; called on the engine's
/// embedder thread, which takes the GIL for the call.
struct PythonEmbedder {
    object: Py<PyAny>,
    model_id: String,
    dimension: usize,
}

impl Embedder for PythonEmbedder {
    fn embed_batch(&self, texts: &[&str]) -> pulsedb::Result<Vec<Vec<f32>>> {
        let embedded = Python::try_attach(|py| -> PyResult<Vec<Vec<f32>>> {
            let rows = self
                .object
                .bind(py)
                .call_method1("embed_documents", (texts.to_vec(),))?;
            rows.try_iter()?
                .map(|row| vector(&row?, "embedding"))
                .collect()
        });
        match embedded {
            Some(Ok(vectors)) => Ok(vectors),
            Some(Err(e)) => Err(pulsedb::Error::Embedder {
                reason: format!("the Python embedder failed: {e}"),
            }),
            None => Err(pulsedb::Error::Embedder {
                reason: "the Python interpreter is shutting down".into(),
            }),
        }
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }
}
