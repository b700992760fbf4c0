//! Identifier newtypes and the timestamp type shared by every concept.

use serde::{Deserialize, Serialize};

/// Defines a UUIDv7 identifier newtype.
macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// A UUIDv7: ids created later sort after ids created earlier.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                $name(uuid::Uuid::now_v7())
            }

            /// The 16 bytes of the id, big-endian UUID layout.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// Rebuilds an id from [`Self::as_bytes`] output.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                $name(uuid::Uuid::from_bytes(bytes))
            }
        }

        /// In the server's OpenAPI document: a UUID string.
        #[cfg(feature = "server")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::id::uuid_schema()
            }
        }

        #[cfg(feature = "server")]
        impl utoipa::ToSchema for $name {}

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        /// Parses the hyphenated (or simple) UUID form [`Display`] writes.
        ///
        /// [`Display`]: std::fmt::Display
        impl std::str::FromStr for $name {
            type Err = $crate::ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s).map($name).map_err(|e| {
                    $crate::ValidationError::invalid("id", format!("{s:?} is not a UUID: {e}"))
                })
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

pub(crate) use define_id;

/// The OpenAPI schema of every id: a string in UUID format.
#[cfg(feature = "server")]
pub(crate) fn uuid_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .into()
}

define_id!(
    /// Persistent identity of one database file.
    InstanceId
);

/// A point in time: milliseconds since the Unix epoch (UTC).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(&self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use crate::ExperienceId;

    #[test]
    fn ids_parse_what_they_display_and_name_the_field_otherwise() {
        let id = ExperienceId::new();
        assert_eq!(id.to_string().parse::<ExperienceId>(), Ok(id));
        let err = "not-a-uuid".parse::<ExperienceId>().unwrap_err();
        assert_eq!(err.field(), "id");
        assert!(err.to_string().contains("not-a-uuid"), "{err}");
    }
}
