//! What the engine needs from a diffusers Stable Diffusion 1.x/2.x folder: the parts a folder
//! must have, the files to fetch from a repo listing, and a structural check of safetensors
//! files.

use crate::hub::Listing;
use std::io::Read;
use std::path::Path;

/// The weighted components: folder and weight-file base name.
const COMPONENTS: [(&str, &str); 3] = [
    ("unet", "diffusion_pytorch_model"),
    ("vae", "diffusion_pytorch_model"),
    ("text_encoder", "model"),
];

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

/// What a diffusers SD folder lacks for this engine (empty = complete).
pub fn missing_parts(dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    let mut need = |ok: bool, what: &str| {
        if !ok {
            missing.push(what.to_string());
        }
    };
    need(dir.join("model_index.json").exists(), "model_index.json");
    for (comp, base) in COMPONENTS {
        need(
            dir.join(comp).join("config.json").exists(),
            &format!("{comp}/config.json"),
        );
        need(
            has_weights(&dir.join(comp), base),
            &format!("{comp}/{base}[.fp16].safetensors"),
        );
    }
    let tok = dir.join("tokenizer");
    need(
        tok.join("tokenizer.json").exists()
            || (tok.join("vocab.json").exists() && tok.join("merges.txt").exists()),
        "tokenizer/vocab.json + merges.txt",
    );
    need(
        dir.join("scheduler/scheduler_config.json").exists()
            || dir.join("scheduler/config.json").exists(),
        "scheduler/scheduler_config.json",
    );
    missing
}

/// Picks the files this engine needs from a repo listing: configs, tokenizer, scheduler,
/// and one weight file per component (`.fp16` when `fp16` and listed). A sharded weight is
/// its index here; the download adds the shards it names.
pub fn select_files(listing: &Listing, fp16: bool) -> Vec<String> {
    let has = |f: &str| listing.siblings.iter().any(|s| s.rfilename == f);
    let mut files = vec!["model_index.json".to_string()];
    for (comp, base) in COMPONENTS {
        files.push(format!("{comp}/config.json"));
        let plain = format!("{comp}/{base}.safetensors");
        let half = format!("{comp}/{base}.fp16.safetensors");
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
    for f in [
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/tokenizer_config.json",
        "tokenizer/special_tokens_map.json",
    ] {
        files.push(f.into());
    }
    if has("tokenizer/tokenizer.json") {
        files.push("tokenizer/tokenizer.json".into());
    }
    files.push(
        if has("scheduler/scheduler_config.json") || !has("scheduler/config.json") {
            "scheduler/scheduler_config.json".into()
        } else {
            "scheduler/config.json".into()
        },
    );
    let tok_json = has("tokenizer/tokenizer.json");
    let optional = |f: &str| {
        f.ends_with("tokenizer_config.json")
            || f.ends_with("special_tokens_map.json")
            || (tok_json && (f.ends_with("vocab.json") || f.ends_with("merges.txt")))
    };
    files.retain(|f| has(f) || !optional(f));
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
