//! The package's exceptions and the mapping of engine errors onto them.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;

create_exception!(
    pulsedb,
    PulseDBError,
    PyException,
    "Every error PulseDB raises."
);
create_exception!(
    pulsedb,
    ValidationError,
    PulseDBError,
    "An input breaks a documented limit; `.field` names it."
);
create_exception!(
    pulsedb,
    NotFoundError,
    PulseDBError,
    "The named entity does not exist."
);
create_exception!(
    pulsedb,
    ReadOnlyError,
    PulseDBError,
    "The database is open read-only."
);
create_exception!(pulsedb, ClosedError, PulseDBError, "The handle is closed.");
create_exception!(
    pulsedb,
    OverloadedError,
    PulseDBError,
    "Too much work in flight; retry later."
);
create_exception!(
    pulsedb,
    DatabaseLockedError,
    PulseDBError,
    "The database file is open in another process."
);
create_exception!(
    pulsedb,
    NoEmbedderError,
    PulseDBError,
    "Text was given and there is no embedder (or its model is missing)."
);
create_exception!(
    pulsedb,
    ChangesCompactedError,
    PulseDBError,
    "The change log no longer holds that position; `.oldest` is the oldest it holds."
);

pub(crate) fn register(py: Python<'_>, m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("PulseDBError", py.get_type::<PulseDBError>())?;
    m.add("ValidationError", py.get_type::<ValidationError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("ReadOnlyError", py.get_type::<ReadOnlyError>())?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    m.add("OverloadedError", py.get_type::<OverloadedError>())?;
    m.add("DatabaseLockedError", py.get_type::<DatabaseLockedError>())?;
    m.add("NoEmbedderError", py.get_type::<NoEmbedderError>())?;
    m.add(
        "ChangesCompactedError",
        py.get_type::<ChangesCompactedError>(),
    )?;
    Ok(())
}

/// The exception for an engine error; the message is the engine's.
pub(crate) fn to_py(py: Python<'_>, e: pulsedb::Error) -> PyErr {
    use pulsedb::Error as E;
    let message = e.to_string();
    match e {
        E::Validation(v) => invalid(py, v.field(), message),
        E::NotFound(_) => NotFoundError::new_err(message),
        E::ReadOnly => ReadOnlyError::new_err(message),
        E::Closed => ClosedError::new_err(message),
        E::Overloaded => OverloadedError::new_err(message),
        E::DatabaseLocked => DatabaseLockedError::new_err(message),
        E::NoEmbedder => NoEmbedderError::new_err(message),
        E::ChangesCompacted { oldest } => with_attribute(
            py,
            ChangesCompactedError::new_err(message),
            "oldest",
            oldest,
        ),
        _ => PulseDBError::new_err(message),
    }
}

/// A `ValidationError` naming `field`.
pub(crate) fn invalid(py: Python<'_>, field: &str, message: impl Into<String>) -> PyErr {
    with_attribute(py, ValidationError::new_err(message.into()), "field", field)
}

/// A `TypeError`: a Python value of the wrong type or an unknown keyword.
pub(crate) fn wrong_type(message: impl Into<String>) -> PyErr {
    PyTypeError::new_err(message.into())
}

fn with_attribute<'py, V>(py: Python<'py>, err: PyErr, name: &str, value: V) -> PyErr
where
    V: IntoPyObject<'py>,
{
    // Setting an attribute on a fresh exception instance cannot fail short
    // of memory exhaustion; the exception is raised either way.
    let _ = err.value(py).setattr(name, value);
    err
}
