//! The model parameter through the OpenFX host: a Hugging Face Hub id resolves (through
//! libttpo's `ttpo_model_resolve`) in a Hugging Face cache laid out by hand, as
//! huggingface_hub writes it, and renders exactly what the model's folder renders; a Hub id
//! that is not in the cache, and the default model when nothing is set, fail the render with
//! a persistent message naming `ttpo models download <id>` — a render never downloads.
//!
//! One test in its own binary: it sets the process environment (HF_HUB_CACHE) before the
//! plug-in or any other thread runs.

mod common;

use std::path::Path;

use common::{bundle, photo, render8, s, temp_dir, tiny_model};
use ttpo_ofx_host::ofx::*;
use ttpo_ofx_host::{Effect, ImageBuf, Plugin, Val};

/// `<cache>/models--acme--tiny/{refs/main, snapshots/<commit>/…}`, the snapshot's entries
/// linked to the tiny model's.
fn fake_cache(cache: &Path, model: &Path) {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = cache.join("models--acme--tiny");
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for e in std::fs::read_dir(model).unwrap().flatten() {
        std::os::unix::fs::symlink(e.path(), snap.join(e.file_name())).unwrap();
    }
}

fn persistent(inst: &Effect) -> String {
    inst.persistent.lock().unwrap().clone().unwrap_or_default()
}

#[test]
fn hub_ids_resolve_in_the_cache_and_missing_models_say_how_to_download() {
    let cache = temp_dir("hf").join("hub");
    fake_cache(&cache, &tiny_model());
    std::env::set_var("HF_HUB_CACHE", &cache);
    std::env::remove_var("TTPO_MODEL_DIR");
    // Were anything to try the network, it would fail at once (nothing listens there).
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");

    let p = Plugin::load(&bundle()).expect("plug-in loads");
    let d = p.describe().unwrap();
    let f = p.describe_in_context(&d, CONTEXT_FILTER).unwrap();
    let inst = p.create_instance(&f, CONTEXT_FILTER).unwrap();
    p.set_param(&inst, "strengths", s("0.3,0.6"));
    p.set_param(&inst, "steps", Val::Int(4));
    p.set_param(&inst, "metrics", s("sharpness"));
    p.set_param(&inst, "seed", Val::Int(7));
    let img = photo(64);
    let input = ImageBuf::from_rgba8(&img, DEPTH_BYTE, 4, ttpo_ofx_host::Rows::BottomUp, 0);

    // A Hub id in the cache renders, and exactly as the folder it stands for.
    p.set_param(&inst, "modelDir", s("acme/tiny"));
    let (st, by_id) = render8(&p, &inst, &img);
    assert_eq!(st, STAT_OK, "Hub id: {}", persistent(&inst));
    assert!(by_id.max_diff(&input) > 0.05, "the model ran");
    p.set_param(&inst, "modelDir", s(tiny_model().to_str().unwrap()));
    let (st, by_folder) = render8(&p, &inst, &img);
    assert_eq!(st, STAT_OK, "folder: {}", persistent(&inst));
    assert_eq!(by_id.max_diff(&by_folder), 0.0, "same model, same bytes");

    // A Hub id that is not on the machine: a clean failure that says what to run.
    p.set_param(&inst, "modelDir", s("acme/missing"));
    let (st, _) = render8(&p, &inst, &img);
    assert_eq!(st, STAT_FAILED);
    let m = persistent(&inst);
    eprintln!("missing model message: {m}");
    assert!(m.contains("`ttpo models download acme/missing`"), "{m}");
    assert!(m.contains("never downloads"), "{m}");
    assert!(
        m.contains(&cache.display().to_string()),
        "names the cache searched: {m}"
    );
    assert!(
        !cache.join("models--acme--missing").exists(),
        "nothing was downloaded"
    );

    // Empty: no TTPO_MODEL_DIR, so the default repo, which is not in this cache either.
    p.set_param(&inst, "modelDir", s(""));
    let (st, _) = render8(&p, &inst, &img);
    assert_eq!(st, STAT_FAILED);
    let m = persistent(&inst);
    assert!(
        m.contains("`ttpo models download stabilityai/stable-diffusion-2-1-base`"),
        "{m}"
    );

    // Back to the cached id: renders again (from the cache of results) and clears the message.
    p.set_param(&inst, "modelDir", s("acme/tiny"));
    let (st, again) = render8(&p, &inst, &img);
    assert_eq!(st, STAT_OK);
    assert!(inst.persistent.lock().unwrap().is_none());
    assert_eq!(again.max_diff(&by_id), 0.0);
    assert_eq!(p.destroy_instance(inst), STAT_OK);
}
