//! Text in, vectors out: the handle's embedder, for callers that hold
//! sentences rather than embeddings.

use super::engine::{Access, Admission};
use super::PulseHandle;
use crate::collective::CollectiveId;
use crate::error::{Error, Result, ValidationError};
use crate::experience::{MAX_BATCH_ITEMS, MAX_CONTENT_BYTES};
use crate::search::{SearchOptions, SearchResult};

/// Checks texts to embed: at most [`MAX_BATCH_ITEMS`] of them, each
/// 1 ..= [`MAX_CONTENT_BYTES`] bytes (the limits of experience content).
///
/// | rule | error |
/// |---|---|
/// | more than 10 000 texts | `TooManyItems { field: "texts" }` |
/// | an empty (or whitespace-only) text | `InvalidField { field: "texts[i]" }` |
/// | a text over 102 400 bytes | `ContentTooLarge` |
fn validate_texts(field: &str, texts: &[&str]) -> Result<()> {
    if texts.len() > MAX_BATCH_ITEMS {
        return Err(ValidationError::TooManyItems {
            field: field.to_string(),
            count: texts.len(),
            max: MAX_BATCH_ITEMS,
        }
        .into());
    }
    for (i, text) in texts.iter().enumerate() {
        validate_text(&format!("{field}[{i}]"), text)?;
    }
    Ok(())
}

/// One text to embed: not empty (nor whitespace only), at most
/// [`MAX_CONTENT_BYTES`] bytes.
fn validate_text(field: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(ValidationError::InvalidField {
            field: field.to_string(),
            reason: "must not be empty".into(),
        }
        .into());
    }
    if text.len() > MAX_CONTENT_BYTES {
        return Err(ValidationError::ContentTooLarge {
            size: text.len(),
            max: MAX_CONTENT_BYTES,
        }
        .into());
    }
    Ok(())
}

impl PulseHandle {
    /// Embeds `texts` with the handle's embedder, one vector per text in
    /// order. Runs on the blocking pool, never on an async worker thread.
    ///
    /// # Errors
    /// `NoEmbedder` when the handle was opened without one; `Validation`
    /// for more than 10 000 texts, an empty one or one over 102 400 bytes;
    /// `Embedder` when the model fails; `Closed`. Nothing is written.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let e = &self.engine;
        e.run("embed", None, Access::Read, Admission::Wait, async {
            if e.embedder.is_none() {
                return Err(Error::NoEmbedder);
            }
            validate_texts("texts", texts)?;
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let owned = texts.iter().map(|t| t.to_string()).collect();
            self.embed_texts(owned, "texts").await
        })
        .await
    }

    /// Embeds `text`, then searches collective `c` with it, as
    /// [`PulseHandle::search`] does with a vector.
    ///
    /// # Errors
    /// As [`PulseHandle::embed`] for the text (field `text`) and as
    /// [`PulseHandle::search`] for the rest.
    pub async fn search_text(
        &self,
        c: CollectiveId,
        text: &str,
        options: SearchOptions,
    ) -> Result<Vec<SearchResult>> {
        let e = &self.engine;
        e.run(
            "search_text",
            Some(c),
            Access::Read,
            Admission::Wait,
            async {
                if e.embedder.is_none() {
                    return Err(Error::NoEmbedder);
                }
                validate_text("text", text)?;
                let query = self
                    .embed_texts(vec![text.to_string()], "text")
                    .await?
                    .into_iter()
                    .next()
                    .ok_or(Error::Embedder {
                        reason: "returned no embedding".into(),
                    })?;
                let weights = options.weights.or(e.config.decay.default_recall_weights);
                self.search_inner(c, &query, options.k, options.filter, weights)
                    .await
            },
        )
        .await
    }
}
