//! Small checks shared by the per-concept validation functions.

use crate::error::ValidationError;

pub(crate) type Checked = std::result::Result<(), ValidationError>;

/// A score-like value: finite and within `0.0..=1.0`.
pub(crate) fn unit_interval(field: &str, value: f32) -> Checked {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::invalid(
            field,
            format!("must be finite and within 0.0..=1.0, got {value}"),
        ))
    }
}

/// A required string of `1..=max` UTF-8 bytes.
pub(crate) fn required_text(field: &str, value: &str, max: usize) -> Checked {
    if value.is_empty() {
        return Err(ValidationError::RequiredField {
            field: field.into(),
        });
    }
    bounded_text(field, value, max)
}

/// A string of at most `max` UTF-8 bytes.
pub(crate) fn bounded_text(field: &str, value: &str, max: usize) -> Checked {
    if value.len() > max {
        return Err(ValidationError::invalid(
            field,
            format!("is {} bytes, the limit is {max}", value.len()),
        ));
    }
    Ok(())
}

/// A list of at most `max` items.
pub(crate) fn item_count(field: &str, count: usize, max: usize) -> Checked {
    if count > max {
        return Err(ValidationError::TooManyItems {
            field: field.into(),
            count,
            max,
        });
    }
    Ok(())
}

/// A result count (`k`, `limit`, …) within `1..=MAX_RESULTS`.
pub(crate) fn result_count(field: &str, value: usize) -> Checked {
    if (1..=MAX_RESULTS).contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::invalid(
            field,
            format!("must be within 1..={MAX_RESULTS}, got {value}"),
        ))
    }
}

/// Largest `k`, `limit`, `max_similar` or `max_recent`.
pub const MAX_RESULTS: usize = 1000;

/// An embedding: exact dimension, every component finite, not all zero.
pub(crate) fn embedding(field: &str, vector: &[f32], dimension: usize) -> Checked {
    if vector.len() != dimension {
        return Err(ValidationError::DimensionMismatch {
            expected: dimension,
            got: vector.len(),
        });
    }
    if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
        return Err(ValidationError::invalid(
            field,
            format!("component {i} is not finite"),
        ));
    }
    if vector.iter().all(|x| *x == 0.0) {
        return Err(ValidationError::invalid(field, "must not be all zeros"));
    }
    Ok(())
}
