//! The CLIP byte-level BPE tokenizer, read from a model folder's `tokenizer/`: either
//! `vocab.json` + `merges.txt` (most SD repos) or a `tokenizer.json`.
//!
//! Normalisation follows transformers' `CLIPTokenizer` without ftfy: lower-case, collapse
//! whitespace. Sequences are `<start> tokens[..L-2] <end>` padded to L (77) with the pad
//! token the folder's config names (`<|endoftext|>` for SD 1.x, `!` for SD 2.x).

use crate::error::{Error, Result};
use regex::Regex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Start-of-text token.
pub const BOS: &str = "<|startoftext|>";
/// End-of-text token.
pub const EOS: &str = "<|endoftext|>";

/// A loaded tokenizer.
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
    pattern: Regex,
    bos: u32,
    eos: u32,
    pad: u32,
    max_len: usize,
}

/// GPT-2's reversible map from bytes to printable unicode characters.
pub fn bytes_to_unicode() -> [char; 256] {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    let mut map = ['\0'; 256];
    for (b, c) in printable.iter().zip(chars) {
        map[*b as usize] = char::from_u32(c).expect("valid code point");
    }
    map
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    super::config::read_json(path)
}

/// A special-token entry is either a string or `{"content": ...}`.
fn token_content(v: &serde_json::Value) -> Option<String> {
    v.as_str()
        .map(str::to_owned)
        .or_else(|| v.get("content").and_then(|c| c.as_str()).map(str::to_owned))
}

impl ClipTokenizer {
    /// Loads from a `tokenizer/` folder. `max_len` caps the sequence (the text encoder's
    /// `max_position_embeddings`).
    pub fn from_folder(dir: &Path, max_len: usize) -> Result<Self> {
        let vocab_json = dir.join("vocab.json");
        let merges_txt = dir.join("merges.txt");
        let tok_json = dir.join("tokenizer.json");
        let (vocab, merges, source): (HashMap<String, u32>, Vec<(String, String)>, PathBuf) =
            if vocab_json.exists() && merges_txt.exists() {
                let v = read_json(&vocab_json)?;
                let vocab = parse_vocab(&v, &vocab_json)?;
                let text = super::config::read_text(&merges_txt)?;
                let merges = text
                    .lines()
                    .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
                    .map(|l| {
                        let mut it = l.split(' ');
                        match (it.next(), it.next()) {
                            (Some(a), Some(b)) => Ok((a.to_owned(), b.to_owned())),
                            _ => Err(invalid(&merges_txt, format!("bad merge line {l:?}"))),
                        }
                    })
                    .collect::<Result<_>>()?;
                (vocab, merges, vocab_json)
            } else if tok_json.exists() {
                let j = read_json(&tok_json)?;
                let model = j
                    .get("model")
                    .ok_or_else(|| invalid(&tok_json, "no \"model\""))?;
                let mut vocab = parse_vocab(
                    model.get("vocab").unwrap_or(&serde_json::Value::Null),
                    &tok_json,
                )?;
                let merges = model
                    .get("merges")
                    .and_then(|m| m.as_array())
                    .ok_or_else(|| invalid(&tok_json, "no model.merges"))?
                    .iter()
                    .map(|m| match m {
                        serde_json::Value::String(s) => s
                            .split_once(' ')
                            .map(|(a, b)| (a.to_owned(), b.to_owned()))
                            .ok_or_else(|| invalid(&tok_json, format!("bad merge {s:?}"))),
                        serde_json::Value::Array(a) if a.len() == 2 => Ok((
                            a[0].as_str().unwrap_or_default().to_owned(),
                            a[1].as_str().unwrap_or_default().to_owned(),
                        )),
                        _ => Err(invalid(&tok_json, "bad merge entry")),
                    })
                    .collect::<Result<_>>()?;
                for t in j
                    .get("added_tokens")
                    .and_then(|a| a.as_array())
                    .into_iter()
                    .flatten()
                {
                    if let (Some(c), Some(id)) = (
                        t.get("content").and_then(|c| c.as_str()),
                        t.get("id").and_then(|i| i.as_u64()),
                    ) {
                        vocab.insert(c.to_owned(), id as u32);
                    }
                }
                (vocab, merges, tok_json)
            } else {
                return Err(Error::MissingFile {
                    path: vocab_json,
                    hint: "a CLIP tokenizer needs vocab.json + merges.txt or tokenizer.json".into(),
                });
            };
        let id = |tok: &str| {
            vocab
                .get(tok)
                .copied()
                .ok_or_else(|| invalid(&source, format!("vocabulary lacks {tok:?}")))
        };
        let (bos, eos) = (id(BOS)?, id(EOS)?);
        // The pad token: tokenizer_config.json, else special_tokens_map.json, else <end>.
        let mut pad_tok = None;
        let mut max_len = max_len;
        for name in ["tokenizer_config.json", "special_tokens_map.json"] {
            let p = dir.join(name);
            if p.exists() {
                let j = read_json(&p)?;
                if pad_tok.is_none() {
                    pad_tok = j.get("pad_token").and_then(token_content);
                }
                if let Some(m) = j.get("model_max_length").and_then(|m| m.as_u64()) {
                    max_len = max_len.min(m as usize);
                }
            }
        }
        let pad = id(pad_tok.as_deref().unwrap_or(EOS))?;
        let pattern = Regex::new(
            r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        )
        .expect("valid regex");
        if max_len < 2 {
            return Err(invalid(&source, "maximum sequence length below 2"));
        }
        Ok(Self {
            ranks: merges
                .into_iter()
                .enumerate()
                .map(|(i, m)| (m, i))
                .collect(),
            vocab,
            byte_chars: bytes_to_unicode(),
            pattern,
            bos,
            eos,
            pad,
            max_len,
        })
    }

    /// Sequence length of [`ClipTokenizer::encode`]'s output.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// BPE pieces of one pre-tokenised word.
    fn bpe(&self, word: &str) -> Vec<String> {
        let chars: Vec<char> = word.bytes().map(|b| self.byte_chars[b as usize]).collect();
        let mut parts: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        if let Some(last) = parts.last_mut() {
            last.push_str("</w>");
        }
        loop {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    self.ranks
                        .get(&(w[0].clone(), w[1].clone()))
                        .map(|r| (*r, i))
                })
                .min();
            let Some((rank, _)) = best else { break };
            // Merge every occurrence of the best pair, left to right.
            let mut merged = Vec::with_capacity(parts.len());
            let mut i = 0;
            while i < parts.len() {
                if i + 1 < parts.len()
                    && self.ranks.get(&(parts[i].clone(), parts[i + 1].clone())) == Some(&rank)
                {
                    merged.push(format!("{}{}", parts[i], parts[i + 1]));
                    i += 2;
                } else {
                    merged.push(parts[i].clone());
                    i += 1;
                }
            }
            parts = merged;
        }
        parts
    }

    /// Token ids of `text` without start/end tokens.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let clean = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let mut ids = Vec::new();
        for m in self.pattern.find_iter(&clean) {
            let w = m.as_str();
            if let Some(&id) = (w == BOS || w == EOS).then(|| self.vocab.get(w)).flatten() {
                ids.push(id);
                continue;
            }
            for piece in self.bpe(w) {
                // Pieces outside the vocabulary cannot occur with a consistent vocab/merges
                // pair; fall back to the single byte characters, which always exist.
                match self.vocab.get(&piece) {
                    Some(&id) => ids.push(id),
                    None => ids.extend(
                        piece
                            .trim_end_matches("</w>")
                            .chars()
                            .filter_map(|c| self.vocab.get(&c.to_string()).copied()),
                    ),
                }
            }
        }
        ids
    }

    /// `<start> ids <end> <pad>...`, truncated and padded to [`ClipTokenizer::max_len`].
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.bos];
        ids.extend(self.tokenize(text).into_iter().take(self.max_len - 2));
        ids.push(self.eos);
        ids.resize(self.max_len, self.pad);
        ids
    }
}

fn parse_vocab(v: &serde_json::Value, path: &Path) -> Result<HashMap<String, u32>> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(path, "vocabulary is not a JSON object"))?;
    obj.iter()
        .map(|(k, v)| {
            v.as_u64()
                .map(|id| (k.clone(), id as u32))
                .ok_or_else(|| invalid(path, format!("token {k:?} has a non-integer id")))
        })
        .collect()
}

/// Writes a small but real CLIP BPE vocabulary (the 256 byte characters, their word-final
/// forms, merges learned from `corpus`, then the two special tokens), as `vocab.json` +
/// `merges.txt`. Used for tiny test models.
pub fn write_tiny_vocab(dir: &Path, corpus: &str, merges: usize) -> Result<usize> {
    let bc = bytes_to_unicode();
    // CLIP's vocabulary lists the byte characters in the map's insertion order, which is
    // ascending code point ('!' first, id 0).
    let mut ordered = bc;
    ordered.sort_unstable();
    let mut vocab: Vec<String> = ordered.iter().map(|c| c.to_string()).collect();
    vocab.extend(ordered.iter().map(|c| format!("{c}</w>")));
    // Learn merges greedily (most frequent adjacent pair, ties by first occurrence).
    let mut words: Vec<Vec<String>> = corpus
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut p: Vec<String> = w.bytes().map(|b| bc[b as usize].to_string()).collect();
            p.last_mut().expect("non-empty").push_str("</w>");
            p
        })
        .collect();
    let mut learned = Vec::new();
    while learned.len() < merges {
        let mut counts: Vec<((String, String), usize)> = Vec::new();
        for w in &words {
            for pair in w.windows(2) {
                let key = (pair[0].clone(), pair[1].clone());
                match counts.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((key, 1)),
                }
            }
        }
        let Some(best) = counts
            .iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        for w in &mut words {
            let mut i = 0;
            while i + 1 < w.len() {
                if w[i] == best.0 && w[i + 1] == best.1 {
                    let joined = format!("{}{}", w[i], w[i + 1]);
                    w.splice(i..i + 2, [joined]);
                }
                i += 1;
            }
        }
        vocab.push(format!("{}{}", best.0, best.1));
        learned.push(best);
    }
    vocab.push(BOS.into());
    vocab.push(EOS.into());
    let map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), serde_json::Value::from(i)))
        .collect();
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(p, e))
    };
    write(
        "vocab.json",
        serde_json::to_string(&map).expect("serialisable"),
    )?;
    let mut m = String::from("#version: 0.2\n");
    for (a, b) in &learned {
        m.push_str(&format!("{a} {b}\n"));
    }
    write("merges.txt", m)?;
    Ok(vocab.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection_onto_printables() {
        let m = bytes_to_unicode();
        let mut seen: Vec<char> = m.to_vec();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        assert_eq!(m[b'!' as usize], '!');
        assert_eq!(m[b' ' as usize], 'Ġ');
    }

    #[test]
    fn tiny_vocab_round_trip() {
        let dir = std::env::temp_dir().join(format!("ttpo-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 7 merges turn every corpus word into one token; asking for more stops there.
        let n = write_tiny_vocab(&dir, "the cat sat on the mat, the cat", 10).unwrap();
        assert_eq!(n, 512 + 7 + 2);
        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"pad_token": "!", "model_max_length": 8}"#,
        )
        .unwrap();
        let t = ClipTokenizer::from_folder(&dir, 77).unwrap();
        assert_eq!(t.max_len(), 8);
        // "the" and "cat" were merged into whole-word tokens.
        let ids = t.tokenize("The  CAT");
        assert_eq!(ids.len(), 2, "{ids:?}");
        let enc = t.encode("the cat sat on the mat again and again");
        assert_eq!(enc.len(), 8);
        assert_eq!(enc[0], t.bos);
        assert_eq!(enc[7], t.eos);
        let empty = t.encode("");
        assert_eq!(empty[..3], [t.bos, t.eos, 0]); // "!" is id 0
        std::fs::remove_dir_all(&dir).ok();
    }
}
