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
