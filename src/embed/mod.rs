//! Text to vectors: the queue that batches concurrent callers' texts into
//! shared passes of the handle's embedder, and (feature `embedder`) the
//! built-in all-MiniLM-L6-v2.

#[cfg(feature = "embedder")]
mod builtin;
pub(crate) mod queue;

#[cfg(feature = "embedder")]
pub use builtin::BuiltinEmbedder;
