//! Python values in, SERVER.md's JSON shapes out.

use std::str::FromStr;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::errors::{invalid, wrong_type};

/// A JSON object, as `metadata` holds.
pub(crate) type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Any serialisable value as Python objects (dicts, lists, str, int, float,
/// bool, None), the shape `serde_json` would give it.
pub(crate) fn to_py<T: Serialize>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    Ok(pythonize::pythonize(py, value)?.unbind())
}

/// A Python value read as `T`; a value of the wrong shape is a
/// `ValidationError` naming `field`.
pub(crate) fn from_py<T: DeserializeOwned>(value: &Bound<'_, PyAny>, field: &str) -> PyResult<T> {
    pythonize::depythonize(value).map_err(|e| {
        invalid(
            value.py(),
            field,
            format!("field `{field}` is invalid: {e}"),
        )
    })
}

/// A JSON object from a dict (`metadata`): keys must be strings and values
/// JSON (None, bool, int, float, str, lists and dicts of them).
pub(crate) fn json_object(value: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<JsonObject> {
    match value {
        None => Ok(JsonObject::new()),
        Some(v) if v.is_none() => Ok(JsonObject::new()),
        Some(v) if v.cast::<PyDict>().is_ok() => {
            check_json(v, field, 0)?;
            from_py(v, field)
        }
        Some(v) => Err(wrong_type(format!(
            "`{field}` must be a dict, not {}",
            type_name(v)
        ))),
    }
}

/// How deep JSON nests before it is refused (serde_json's own limit).
const MAX_JSON_DEPTH: usize = 128;

/// Refuses what JSON cannot hold exactly instead of letting it change on
/// the way: non-finite floats (they would become `null`), keys that are not
/// strings, sets and other objects, nesting past [`MAX_JSON_DEPTH`].
fn check_json(value: &Bound<'_, PyAny>, field: &str, depth: usize) -> PyResult<()> {
    let py = value.py();
    let refuse = |why: String| {
        Err(invalid(
            py,
            field,
            format!("field `{field}` is invalid: {why}"),
        ))
    };
    if depth > MAX_JSON_DEPTH {
        return refuse(format!("nested deeper than {MAX_JSON_DEPTH} levels"));
    }
    if value.is_none()
        || value.is_instance_of::<PyString>()
        || value.is_instance_of::<PyBool>()
        || value.is_instance_of::<PyInt>()
    {
        return Ok(());
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        let f = f.value();
        return if f.is_finite() {
            Ok(())
        } else {
            refuse(format!("{f} is not a JSON number"))
        };
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        for (k, v) in dict.iter() {
            if !k.is_instance_of::<PyString>() {
                return refuse(format!("key {k} is not a str"));
            }
            check_json(&v, field, depth + 1)?;
        }
        return Ok(());
    }
    if value.cast::<PyList>().is_ok() || value.cast::<PyTuple>().is_ok() {
        for item in value.try_iter()? {
            check_json(&item?, field, depth + 1)?;
        }
        return Ok(());
    }
    refuse(format!("a {} is not JSON", type_name(value)))
}

/// An id: a `str` (or `uuid.UUID`) in UUID form.
pub(crate) fn id<T>(value: &Bound<'_, PyAny>, field: &str) -> PyResult<T>
where
    T: FromStr<Err = pulsedb::ValidationError>,
{
    let text = if let Ok(s) = value.cast::<PyString>() {
        s.to_cow()?.into_owned()
    } else if type_name(value) == "UUID" {
        value.str()?.to_cow()?.into_owned()
    } else {
        return Err(wrong_type(format!(
            "`{field}` must be an id string, not {}",
            type_name(value)
        )));
    };
    text.parse().map_err(|e: pulsedb::ValidationError| {
        invalid(value.py(), field, format!("`{field}`: {e}"))
    })
}

/// A vector: a list or tuple of numbers, or a 1-d numpy array of any
/// float dtype (read as float32).
pub(crate) fn vector(value: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<f32>> {
    let py = value.py();
    if value.cast::<PyList>().is_ok() || value.cast::<PyTuple>().is_ok() {
        let items: Vec<f64> = value
            .extract()
            .map_err(|_| wrong_type(format!("`{field}` must hold numbers only")))?;
        return Ok(items.into_iter().map(|x| x as f32).collect());
    }
    if !value.hasattr("__array_interface__")? {
        return Err(wrong_type(format!(
            "`{field}` must be a list of floats or a 1-d numpy array, not {}",
            type_name(value)
        )));
    }
    let array = numpy(py)?.call_method1("ascontiguousarray", (value, "float32"))?;
    let ndim: usize = array.getattr("ndim")?.extract()?;
    if ndim != 1 {
        return Err(invalid(
            py,
            field,
            format!("field `{field}` is invalid: a vector is a 1-d array, this one has {ndim} dimensions"),
        ));
    }
    let bytes = array.call_method0("tobytes")?;
    let bytes = bytes.cast::<PyBytes>()?.as_bytes();
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// An optional vector argument.
pub(crate) fn optional_vector(
    value: Option<&Bound<'_, PyAny>>,
    field: &str,
) -> PyResult<Option<Vec<f32>>> {
    match value {
        Some(v) if !v.is_none() => vector(v, field).map(Some),
        _ => Ok(None),
    }
}

/// A writable float32 numpy array holding `v`.
pub(crate) fn numpy_vector(py: Python<'_>, v: &[f32]) -> PyResult<Py<PyAny>> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
    let buffer = PyByteArray::new(py, &bytes);
    Ok(numpy(py)?
        .call_method1("frombuffer", (buffer, "float32"))?
        .unbind())
}

/// An experience as SERVER.md's JSON, its embedding (when asked for) as
/// a numpy array.
pub(crate) fn experience(
    py: Python<'_>,
    mut x: pulsedb::Experience,
    embedding: bool,
) -> PyResult<Py<PyAny>> {
    let vector = std::mem::take(&mut x.embedding);
    let dict = to_py(py, &pulsedb::wire::ExperienceJson::new(x, false))?;
    if embedding {
        dict.bind(py)
            .set_item("embedding", numpy_vector(py, &vector)?)?;
    }
    Ok(dict)
}

/// `experience_type`: SERVER.md's `{"type": ...}` object, or just the
/// type's name for the types without fields (`"fact"`).
pub(crate) fn experience_type(
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<pulsedb::wire::ExperienceTypeJson>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let field = "experience_type";
    if let Ok(name) = value.cast::<PyString>() {
        let object = PyDict::new(value.py());
        object.set_item("type", name)?;
        return from_py(object.as_any(), field).map(Some);
    }
    if value.cast::<PyDict>().is_ok() {
        return from_py(value, field).map(Some);
    }
    Err(wrong_type(format!(
        "`{field}` must be a str or a dict, not {}",
        type_name(value)
    )))
}

fn numpy(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static NUMPY: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    NUMPY
        .get_or_try_init(py, || py.import("numpy").map(Bound::unbind))
        .map(|m| m.bind(py))
}

pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}
