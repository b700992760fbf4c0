//! Facts about a database file.

use serde::{Deserialize, Serialize};

use crate::id::Timestamp;

/// Facts about an open database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseMetadata {
    /// Version of the on-disk schema.
    pub schema_version: u32,
    /// Dimension of every embedding, locked at creation.
    pub embedding_dimension: usize,
    /// When the file was created.
    pub created_at: Timestamp,
    /// When this handle opened it.
    pub last_opened_at: Timestamp,
}
