//! The server's JSON shapes (SERVER.md "HTTP conventions"), separate from
//! the library's types so that the storage codec never changes with the
//! wire: snake_case enums, `{"type": ...}` experience types, integer
//! millisecond timestamps, `null` fields left out, embeddings only on
//! request. Requests take the library's defaults for missing fields.
//! Each type mirrors the library type of the same name (see API.md); the
//! fields are documented there.

#![allow(missing_docs)]

//!
//! The HTTP server and the Python package both speak these shapes (feature
//! `wire`); with the server, each also describes itself in the OpenAPI
//! document and the MCP tools' schemas.

mod collective;
mod experience;
mod knowledge;
mod search;

pub use collective::*;
pub use experience::*;
pub use knowledge::*;
pub use search::*;

/// Writes an `f32` as the `f64` nearest its shortest decimal form: the JSON
/// text is the same (`0.7`), and a reader of doubles (Python) gets `0.7`
/// rather than `0.699999988…`.
pub(crate) fn decimal<S: serde::Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    let shortest = v.to_string().parse::<f64>().unwrap_or(f64::from(*v));
    s.serialize_f64(shortest)
}
