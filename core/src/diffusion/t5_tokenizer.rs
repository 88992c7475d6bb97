//! The T5 tokenizer of FLUX.1 / SD3 (`tokenizer_2/tokenizer.json`: SentencePiece unigram,
//! Metaspace, `</s>` appended by the file's post-processor), read with the `tokenizers` crate.
//!
//! Why the crate and not our own unigram: it is already in the dependency tree (candle-core
//! pulls it with the same features, so it adds no build time), and with default features off
//! it needs no C++ (no onig, no esaxx). The normalizer of T5's file is SentencePiece's
//! precompiled charsmap, which the crate implements and a hand-written one would have to
//! re-implement byte for byte.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

/// FLUX.1-dev's and SD3's `max_sequence_length` (schnell uses 256).
pub const T5_MAX_LENGTH: usize = 512;

/// A `tokenizer.json` with the padding and truncation the pipelines ask transformers' fast
/// tokenizer for (`padding="max_length"`, `truncation=True`).
pub struct T5Tokenizer {
    inner: Tokenizer,
    path: PathBuf,
}

impl std::fmt::Debug for T5Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("T5Tokenizer")
            .field("path", &self.path)
            .finish()
    }
}

impl T5Tokenizer {
    /// Reads `tokenizer.json` from the folder `dir` (the pipeline's `tokenizer_2/`).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let invalid = |reason: String| Error::InvalidFile {
            path: path.clone(),
            reason,
        };
        let inner = Tokenizer::from_file(&path).map_err(|e| {
            if path.exists() {
                invalid(format!("not a usable tokenizer.json: {e}"))
            } else {
                Error::io(&path, std::io::ErrorKind::NotFound.into())
            }
        })?;
        for token in ["<pad>", "</s>"] {
            if inner.token_to_id(token).is_none() {
                return Err(invalid(format!("no {token} token")));
            }
        }
        Ok(Self { inner, path })
    }

    /// Token ids of `prompt`, `</s>` appended, cut to `max_length` (the `</s>` kept) and
    /// padded with `<pad>` to exactly `max_length`.
    pub fn encode(&self, prompt: &str, max_length: usize) -> Result<Vec<u32>> {
        let mut tok = self.inner.clone();
        let pad = self.inner.token_to_id("<pad>").unwrap_or(0);
        let err = |e: tokenizers::Error| Error::InvalidFile {
            path: self.path.clone(),
            reason: format!("tokenizing: {e}"),
        };
        tok.with_truncation(Some(TruncationParams {
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(err)?
        .with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(max_length),
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id: pad,
            pad_type_id: 0,
            pad_token: "<pad>".into(),
        }));
        Ok(tok.encode(prompt, true).map_err(err)?.get_ids().to_vec())
    }

    /// The vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
