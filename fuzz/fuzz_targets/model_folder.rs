//! Model folder parsing: the first input byte picks one file of the tiny model folder
//! (`model_index.json`, a component `config.json`, the scheduler config, a tokenizer file,
//! or the JSON header of a safetensors file), the rest replaces it, and the real loader
//! (`ttpo::Engine::load`) runs on the folder. When it loads, a prompt is encoded and a job
//! is created, which reads the derived sizes (pad multiple, native size, tile bytes).
//!
//! Property: an `Err`, never a panic, an abort or a huge allocation (run with
//! `-rss_limit_mb=4096 -malloc_limit_mb=4096`, see scripts/fuzz.sh).
//!
//! Each process mirrors the tiny model with symbolic links, so a run writes only the one
//! file it replaces, and puts the link back afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use ttpo_fuzz::{tiny_model_dir, Bytes};

/// Text files replaced whole by the input.
const TEXT: &[&str] = &[
    "model_index.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "scheduler/scheduler_config.json",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
    "tokenizer/tokenizer_config.json",
    "tokenizer/special_tokens_map.json",
    // Replaces vocab.json + merges.txt (they are removed for the run).
    "tokenizer/tokenizer.json",
];
/// Safetensors files whose JSON header is replaced by the input (the data stays).
const WEIGHTS: &[&str] = &[
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
];

fn all_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read the tiny model") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            all_files(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).expect("inside").to_path_buf());
        }
    }
}

/// This process's mirror of the tiny model: folders, and a link per file.
fn mirror() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = tiny_model_dir();
        let dir = std::env::temp_dir().join(format!("ttpo-fuzz-model-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut files = Vec::new();
        all_files(src, src, &mut files);
        for f in files {
            let to = dir.join(&f);
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            std::os::unix::fs::symlink(src.join(&f), to).expect("symlink");
        }
        dir
    })
}

/// The data section (after the header) of each weight file.
fn weight_data() -> &'static [Vec<u8>] {
    static DATA: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    DATA.get_or_init(|| {
        WEIGHTS
            .iter()
            .map(|w| {
                let bytes = std::fs::read(tiny_model_dir().join(w)).expect("read weights");
                let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
                bytes[8 + n..].to_vec()
            })
            .collect()
    })
}

fn relink(rel: &str) {
    let p = mirror().join(rel);
    let _ = std::fs::remove_file(&p);
    let src = tiny_model_dir().join(rel);
    if src.exists() {
        std::os::unix::fs::symlink(src, &p).expect("symlink");
    }
}

fn replace(rel: &str, contents: &[u8]) {
    let p = mirror().join(rel);
    let _ = std::fs::remove_file(&p);
    std::fs::write(&p, contents).expect("write");
}

fn load_and_use(dir: &Path) {
    let cfg = ttpo::EngineConfig {
        device: ttpo::DeviceChoice::Cpu,
        precision: Some(ttpo::Precision::F32),
        ..Default::default()
    };
    let Ok(engine) = ttpo::Engine::load(&[dir], &cfg) else {
        return;
    };
    let b = &engine.backbones()[0];
    let _ = b.encode_text(&["a photo of a cat, high quality"]);
    let _ = b.vae_tile_bytes(64);
    let img = ttpo::Image::filled(16, 16, [0.5; 3]).expect("image");
    let _ = ttpo::Job::new(Arc::new(engine), img, ttpo::Options::default());
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let sel = b.u8() as usize % (TEXT.len() + WEIGHTS.len());
    let payload = b.rest();
    let dir = mirror();
    if let Some(&rel) = TEXT.get(sel) {
        let tokenizer_json = rel == "tokenizer/tokenizer.json";
        if tokenizer_json {
            for f in ["tokenizer/vocab.json", "tokenizer/merges.txt"] {
                let _ = std::fs::remove_file(dir.join(f));
            }
        }
        replace(rel, payload);
        load_and_use(dir);
        relink(rel);
        if tokenizer_json {
            relink("tokenizer/vocab.json");
            relink("tokenizer/merges.txt");
        }
    } else {
        let k = sel - TEXT.len();
        let mut file = (payload.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(payload);
        file.extend_from_slice(&weight_data()[k]);
        replace(WEIGHTS[k], &file);
        load_and_use(dir);
        relink(WEIGHTS[k]);
    }
});
