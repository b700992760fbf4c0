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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_counts_are_1_to_1000() {
        assert!(result_count("k", 1).is_ok());
        assert!(result_count("k", MAX_RESULTS).is_ok());
        for bad in [0, MAX_RESULTS + 1] {
            match result_count("limit", bad) {
                Err(ValidationError::InvalidField { field, .. }) => assert_eq!(field, "limit"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn embeddings_need_the_exact_dimension_finite_and_non_zero() {
        assert!(embedding("embedding", &[0.0, 0.0, 1e-30], 3).is_ok());
        assert!(crate::experience::validate_embedding(&[1.0; 4096], 4096).is_ok());
        assert_eq!(
            embedding("embedding", &[1.0; 4], 3),
            Err(ValidationError::DimensionMismatch {
                expected: 3,
                got: 4
            })
        );
        assert_eq!(
            embedding("embedding", &[1.0; 2], 3),
            Err(ValidationError::DimensionMismatch {
                expected: 3,
                got: 2
            })
        );
        assert!(matches!(
            embedding("embedding", &[], 3),
            Err(ValidationError::DimensionMismatch { .. })
        ));
        for bad in [
            vec![1.0, f32::NAN, 1.0],
            vec![f32::INFINITY, 1.0, 1.0],
            vec![1.0, 1.0, f32::NEG_INFINITY],
            vec![0.0, 0.0, 0.0],
            vec![-0.0, 0.0, -0.0],
        ] {
            match embedding("query_embedding", &bad, 3) {
                Err(ValidationError::InvalidField { field, .. }) => {
                    assert_eq!(field, "query_embedding", "{bad:?}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn text_checks_count_bytes() {
        let two_byte = "é".repeat(5); // 10 bytes, 5 chars
        assert!(bounded_text("f", &two_byte, 10).is_ok());
        assert!(bounded_text("f", &two_byte, 9).is_err());
        assert!(required_text("f", "", 10).is_err());
        assert!(bounded_text("f", "", 0).is_ok());
        assert!(item_count("f", 3, 3).is_ok());
        assert!(matches!(
            item_count("f", 4, 3),
            Err(ValidationError::TooManyItems {
                count: 4,
                max: 3,
                ..
            })
        ));
        for ok in [0.0, 1.0, -0.0] {
            assert!(unit_interval("f", ok).is_ok());
        }
        for bad in [f32::NAN, -1e-9, 1.000_001, f32::INFINITY] {
            assert!(unit_interval("f", bad).is_err());
        }
    }
}
