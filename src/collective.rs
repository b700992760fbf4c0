//! Collectives: the unit of shared memory a group of agents works in.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::id::{define_id, Timestamp};
use crate::validate;

define_id!(
    /// Identifies one collective.
    CollectiveId
);

/// Largest collective name, in bytes.
pub const MAX_COLLECTIVE_NAME_BYTES: usize = 255;
/// Largest owner id, in bytes.
pub const MAX_OWNER_ID_BYTES: usize = 255;

/// A collective: a named, isolated memory shared by a group of agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collective {
    /// Its id.
    pub id: CollectiveId,
    /// Human-readable name.
    pub name: String,
    /// Optional owner (user, team, tenant).
    pub owner_id: Option<String>,
    /// Dimension of its embeddings (the database's).
    pub embedding_dimension: u16,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change of the collective record itself.
    pub updated_at: Timestamp,
}

/// Figures about one collective, computed from the stored data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectiveStats {
    /// Experiences, archived ones included.
    pub experience_count: u64,
    /// Archived experiences.
    pub archived_count: u64,
    /// Derived insights.
    pub insight_count: u64,
    /// Relations between its experiences.
    pub relation_count: u64,
    /// Bytes its records take in the database (keys and values, before redb's
    /// own page overhead).
    pub storage_bytes: u64,
    /// Time of its oldest experience.
    pub oldest_experience: Option<Timestamp>,
    /// Time of its newest experience.
    pub newest_experience: Option<Timestamp>,
}

/// Checks a collective name: non-empty, not only whitespace, ≤ 255 bytes.
///
/// # Errors
/// `RequiredField("name")` or `InvalidField("name")`.
pub fn validate_collective_name(name: &str) -> Result<(), ValidationError> {
    if name.trim().is_empty() {
        return Err(ValidationError::RequiredField {
            field: "name".into(),
        });
    }
    validate::bounded_text("name", name, MAX_COLLECTIVE_NAME_BYTES)
}

/// Checks an owner id: 1 ..= 255 bytes.
///
/// # Errors
/// `RequiredField("owner_id")` or `InvalidField("owner_id")`.
pub fn validate_owner_id(owner: &str) -> Result<(), ValidationError> {
    validate::required_text("owner_id", owner, MAX_OWNER_ID_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: Result<(), ValidationError>) -> String {
        match r {
            Err(ValidationError::InvalidField { field, .. })
            | Err(ValidationError::RequiredField { field }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_are_1_to_255_bytes_and_not_blank() {
        assert!(validate_collective_name("a").is_ok());
        assert!(validate_collective_name(&"é".repeat(127)).is_ok()); // 254 bytes
        assert!(validate_collective_name(&"x".repeat(MAX_COLLECTIVE_NAME_BYTES)).is_ok());
        assert_eq!(field(validate_collective_name(&"x".repeat(256))), "name");
        assert_eq!(field(validate_collective_name(&"é".repeat(128))), "name");
        assert_eq!(field(validate_collective_name("")), "name");
        assert_eq!(field(validate_collective_name(" \t\n")), "name");
    }

    #[test]
    fn owner_ids_are_1_to_255_bytes() {
        assert!(validate_owner_id("o").is_ok());
        assert!(validate_owner_id(&"x".repeat(MAX_OWNER_ID_BYTES)).is_ok());
        assert_eq!(field(validate_owner_id(&"x".repeat(256))), "owner_id");
        assert_eq!(field(validate_owner_id("")), "owner_id");
    }
}
