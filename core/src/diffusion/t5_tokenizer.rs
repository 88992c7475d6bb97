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

/// Writes a tiny T5 tokenizer folder (`tokenizer.json`, `tokenizer_config.json`,
/// `special_tokens_map.json`) in the layout of FLUX's / SD3's `tokenizer_2`: `<pad>` 0,
/// `</s>` 1, `<unk>` 2, then every character of `corpus` with and without the `▁` word
/// marker, and its words. Whole words score higher than their letters,
/// so the unigram model picks them; SentencePiece's charsmap normalizer is replaced by NFKC
/// (the folder is only a test fixture). Returns the vocabulary size.
#[cfg(feature = "testing")]
pub(crate) fn write_tiny(dir: &Path, corpus: &str) -> Result<usize> {
    use serde_json::json;
    let mut pieces: Vec<(String, f64)> = vec![
        ("<pad>".into(), 0.0),
        ("</s>".into(), 0.0),
        ("<unk>".into(), 0.0),
        ("▁".into(), -2.0),
    ];
    let mut push = |p: String, score: f64| {
        if !pieces.iter().any(|(q, _)| *q == p) {
            pieces.push((p, score));
        }
    };
    for c in corpus.chars().filter(|c| !c.is_whitespace()) {
        push(c.to_string(), -8.0);
        push(format!("▁{c}"), -9.0);
    }
    // Words with the marker, and the parts after punctuation inside a word ("-contrast")
    // without it.
    for w in corpus.split_whitespace() {
        for (i, part) in w.split(|c: char| !c.is_alphanumeric()).enumerate() {
            if part.chars().count() > 1 {
                let piece = if i == 0 {
                    format!("▁{part}")
                } else {
                    part.into()
                };
                push(piece, -4.0 - 0.01 * part.len() as f64);
            }
        }
    }
    let special = |id: usize, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    let metaspace = json!({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
                           "split": true});
    let seq = |id: &str| json!({"Sequence": {"id": id, "type_id": 0}});
    let eos = json!({"SpecialToken": {"id": "</s>", "type_id": 0}});
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "<pad>"), special(1, "</s>"), special(2, "<unk>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
        "pre_tokenizer": metaspace,
        "post_processor": {"type": "TemplateProcessing",
            "single": [seq("A"), eos.clone()],
            "pair": [seq("A"), eos.clone(), seq("B"), eos],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": 2, "vocab": pieces, "byte_fallback": false}
    });
    let tokens = json!({"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"});
    let mut config = tokens.clone();
    config["tokenizer_class"] = json!("T5Tokenizer");
    config["model_max_length"] = json!(T5_MAX_LENGTH);
    config["extra_ids"] = json!(0);
    config["additional_special_tokens"] = json!([]);
    for (name, value) in [
        ("tokenizer.json", &tokenizer),
        ("tokenizer_config.json", &config),
        ("special_tokens_map.json", &tokens),
    ] {
        super::tiny::write_json(&dir.join(name), value)?;
    }
    Ok(pieces.len())
}
