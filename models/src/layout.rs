//! What the engine needs from a diffusers model folder of each family it runs (Stable
//! Diffusion 1.x/2.x, FLUX.1, SD3/3.5): the parts a folder must have, the files to fetch from
//! a repo listing, and a structural check of safetensors files.
//!
//! The family is read from `model_index.json`'s `_class_name`, as diffusers decides which
//! pipeline to build (core's `diffusion::model_folder` reads it the same way to pick the
//! backbone; this crate is network code and core must not depend on it, so the small class
//! test lives in both).

use crate::hub::Listing;
use std::io::Read;
use std::path::Path;

/// The model families the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Stable Diffusion 1.x/2.x (UNet, DDIM).
    StableDiffusion,
    /// FLUX.1 dev/schnell (rectified flow, T5 + CLIP-L).
    Flux,
    /// Stable Diffusion 3 / 3.5 (rectified flow, CLIP-L + CLIP-G + optional T5).
    Sd3,
}

/// One weighted component: its folder, weight-file base name, and whether the engine can
/// run without it (SD3 runs without its T5 encoder, as diffusers does with
/// `text_encoder_3=None`; it is still fetched when the repo has it).
struct Component {
    folder: &'static str,
    base: &'static str,
    optional: bool,
}

/// A tokenizer folder and what it must hold.
#[derive(Clone, Copy)]
enum Tokenizer {
    /// CLIP's byte-level BPE: `vocab.json` + `merges.txt` (or a `tokenizer.json`).
    Bpe(&'static str),
    /// T5's SentencePiece unigram, read from `tokenizer.json`; optional with its encoder.
    T5(&'static str, bool),
}

const fn part(folder: &'static str, base: &'static str, optional: bool) -> Component {
    Component {
        folder,
        base,
        optional,
    }
}

const UNET: &str = "diffusion_pytorch_model";
const MODEL: &str = "model";

impl Family {
    /// The family of a `model_index.json` `_class_name` (anything that is neither FLUX nor
    /// SD3 is treated as Stable Diffusion 1.x/2.x, whose pipelines have many names).
    pub fn of_class(class: &str) -> Self {
        if class.starts_with("Flux") {
            Family::Flux
        } else if class.starts_with("StableDiffusion3") {
            Family::Sd3
        } else {
            Family::StableDiffusion
        }
    }

    /// The family of a local folder, from its `model_index.json` (Stable Diffusion when the
    /// file is missing or unreadable: [`missing_parts`] then reports it).
    pub fn of_dir(dir: &Path) -> Self {
        std::fs::read_to_string(dir.join("model_index.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("_class_name")?.as_str().map(Self::of_class))
            .unwrap_or(Family::StableDiffusion)
    }

    /// The family a repo listing most likely holds, from its file names alone (before
    /// `model_index.json` is fetched): a `transformer/` with a third text encoder or a BPE
    /// second tokenizer (CLIP-G) is SD3, a `transformer/` otherwise FLUX, else SD.
    pub fn of_listing(listing: &Listing) -> Self {
        let has = |f: &str| listing.siblings.iter().any(|s| s.rfilename == f);
        let under = |d: &str| listing.siblings.iter().any(|s| s.rfilename.starts_with(d));
        if !has("transformer/config.json") {
            Family::StableDiffusion
        } else if under("text_encoder_3/") || has("tokenizer_2/merges.txt") {
            Family::Sd3
        } else {
            Family::Flux
        }
    }

    /// A short name for listings.
    pub fn label(self) -> &'static str {
        match self {
            Family::StableDiffusion => "Stable Diffusion 1.x/2.x",
            Family::Flux => "FLUX.1",
            Family::Sd3 => "Stable Diffusion 3",
        }
    }

    fn components(self) -> &'static [Component] {
        const SD: [Component; 3] = [
            part("unet", UNET, false),
            part("vae", UNET, false),
            part("text_encoder", MODEL, false),
        ];
        const FLUX: [Component; 4] = [
            part("transformer", UNET, false),
            part("vae", UNET, false),
            part("text_encoder", MODEL, false),
            part("text_encoder_2", MODEL, false),
        ];
        const SD3: [Component; 5] = [
            part("transformer", UNET, false),
            part("vae", UNET, false),
            part("text_encoder", MODEL, false),
            part("text_encoder_2", MODEL, false),
            part("text_encoder_3", MODEL, true),
        ];
        match self {
            Family::StableDiffusion => &SD,
            Family::Flux => &FLUX,
            Family::Sd3 => &SD3,
        }
    }

    fn tokenizers(self) -> &'static [Tokenizer] {
        match self {
            Family::StableDiffusion => &[Tokenizer::Bpe("tokenizer")],
            Family::Flux => &[
                Tokenizer::Bpe("tokenizer"),
                Tokenizer::T5("tokenizer_2", false),
            ],
            Family::Sd3 => &[
                Tokenizer::Bpe("tokenizer"),
                Tokenizer::Bpe("tokenizer_2"),
                Tokenizer::T5("tokenizer_3", true),
            ],
        }
    }
}

fn has_weights(dir: &Path, base: &str) -> bool {
    [
        format!("{base}.safetensors"),
        format!("{base}.fp16.safetensors"),
        format!("{base}.safetensors.index.json"),
        format!("{base}.fp16.safetensors.index.json"),
    ]
    .iter()
    .any(|f| dir.join(f).exists())
}

/// What a diffusers folder lacks for this engine (empty = complete), for its family.
pub fn missing_parts(dir: &Path) -> Vec<String> {
    let family = Family::of_dir(dir);
    let mut missing = Vec::new();
    let mut need = |ok: bool, what: &str| {
        if !ok {
            missing.push(what.to_string());
        }
    };
    need(dir.join("model_index.json").exists(), "model_index.json");
    for c in family.components() {
        let d = dir.join(c.folder);
        if c.optional && !d.exists() {
            continue;
        }
        need(
            d.join("config.json").exists(),
            &format!("{}/config.json", c.folder),
        );
        need(
            has_weights(&d, c.base),
            &format!("{}/{}[.fp16].safetensors", c.folder, c.base),
        );
    }
    for t in family.tokenizers() {
        match *t {
            Tokenizer::Bpe(f) => {
                let tok = dir.join(f);
                need(
                    tok.join("tokenizer.json").exists()
                        || (tok.join("vocab.json").exists() && tok.join("merges.txt").exists()),
                    &format!("{f}/vocab.json + merges.txt"),
                );
            }
            Tokenizer::T5(f, optional) => {
                // Optional together with its encoder: present when text_encoder_3 is.
                let encoder = format!("text_encoder{}", &f["tokenizer".len()..]);
                if optional && !dir.join(encoder).exists() {
                    continue;
                }
                need(
                    dir.join(f).join("tokenizer.json").exists(),
                    &format!("{f}/tokenizer.json"),
                );
            }
        }
    }
    need(
        dir.join("scheduler/scheduler_config.json").exists()
            || dir.join("scheduler/config.json").exists(),
        "scheduler/scheduler_config.json",
    );
    missing
}

/// Picks the files this engine needs for `family` from a repo listing: configs, tokenizers,
/// scheduler, and one weight file per component (`.fp16` when `fp16` and listed). A sharded
/// weight is its index here; the download adds the shards it names. An optional component
/// the repo does not have is left out.
pub fn select_files(listing: &Listing, fp16: bool, family: Family) -> Vec<String> {
    let has = |f: &str| listing.siblings.iter().any(|s| s.rfilename == f);
    let mut files = vec!["model_index.json".to_string()];
    for c in family.components() {
        let config = format!("{}/config.json", c.folder);
        if c.optional && !has(&config) {
            continue;
        }
        files.push(config);
        let plain = format!("{}/{}.safetensors", c.folder, c.base);
        let half = format!("{}/{}.fp16.safetensors", c.folder, c.base);
        let order = if fp16 {
            [half.clone(), plain.clone()]
        } else {
            [plain.clone(), half.clone()]
        };
        if let Some(f) = order.iter().find(|f| has(f)) {
            files.push(f.clone());
        } else {
            let idx = order
                .iter()
                .map(|f| format!("{f}.index.json"))
                .find(|f| has(f));
            files.push(idx.unwrap_or(plain));
        }
    }
    let mut optional_files = Vec::new();
    for t in family.tokenizers() {
        match *t {
            Tokenizer::Bpe(f) => {
                let json = format!("{f}/tokenizer.json");
                let tok_json = has(&json);
                for (name, needed) in [
                    ("vocab.json", !tok_json),
                    ("merges.txt", !tok_json),
                    ("tokenizer_config.json", false),
                    ("special_tokens_map.json", false),
                ] {
                    let file = format!("{f}/{name}");
                    files.push(file.clone());
                    if !needed {
                        optional_files.push(file);
                    }
                }
                if tok_json {
                    files.push(json);
                }
            }
            Tokenizer::T5(f, optional) => {
                let json = format!("{f}/tokenizer.json");
                if optional && !has(&json) {
                    continue;
                }
                files.push(json);
                for name in ["tokenizer_config.json", "special_tokens_map.json"] {
                    let file = format!("{f}/{name}");
                    files.push(file.clone());
                    optional_files.push(file);
                }
            }
        }
    }
    files.push(
        if has("scheduler/scheduler_config.json") || !has("scheduler/config.json") {
            "scheduler/scheduler_config.json".into()
        } else {
            "scheduler/config.json".into()
        },
    );
    files.retain(|f| has(f) || !optional_files.contains(f));
    files
}

/// The shard files a `*.safetensors.index.json` names, relative to the repo root.
pub fn index_shards(index_file: &str, index_json: &serde_json::Value) -> Vec<String> {
    let dir = Path::new(index_file).parent().unwrap_or(Path::new(""));
    let mut shards: Vec<String> = index_json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.values()
                .filter_map(|s| s.as_str())
                .map(|s| dir.join(s).to_string_lossy().replace('\\', "/"))
                .collect()
        })
        .unwrap_or_default();
    shards.sort();
    shards.dedup();
    shards
}

/// Checks a safetensors file's structure: header length, JSON header, and that the data
/// section is exactly as long as the header says (catches truncation and garbage without
/// loading the weights).
pub fn check_safetensors(path: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| format!("only {len} bytes: not a safetensors file"))?;
    let n = u64::from_le_bytes(n);
    if n == 0 || n > 100 << 20 || 8 + n > len {
        return Err(format!(
            "header length {n} does not fit the {len}-byte file: corrupt or not safetensors"
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| e.to_string())?;
    let v: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| format!("header is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("header is not a JSON object")?;
    let mut end = 0u64;
    for (name, t) in obj {
        if name == "__metadata__" {
            continue;
        }
        let offs = t
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .ok_or_else(|| format!("tensor {name} has no data_offsets"))?;
        let e = offs.get(1).and_then(|x| x.as_u64()).unwrap_or(0);
        end = end.max(e);
    }
    let want = 8 + n + end;
    if want != len {
        return Err(format!(
            "file has {len} bytes but its header describes {want}: truncated or corrupt"
        ));
    }
    Ok(())
}
