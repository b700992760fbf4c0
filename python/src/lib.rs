//! `pulsedb._native`: the engine as a Python extension module (PYTHON.md).
//!
//! Every call parses its Python arguments with the GIL held, runs the
//! engine's future on PulseDB's own tokio runtime with the GIL released,
//! and shapes the answer as SERVER.md's JSON (`pulsedb::wire`) in Python
//! objects. A handle opened for asyncio answers each call with an asyncio
//! future instead of blocking ([`call::Mode`]).

mod args;
mod call;
mod convert;
mod database;
mod embedder;
mod errors;
mod watch;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<database::Database>()?;
    m.add_class::<watch::Watch>()?;
    m.add_function(wrap_pyfunction!(database::open, m)?)?;
    m.add_function(wrap_pyfunction!(database::open_async, m)?)?;
    errors::register(py, m)?;
    Ok(())
}
