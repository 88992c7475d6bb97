//! `ttpo models download` against a local fake Hugging Face endpoint (HTTP/1.1 on
//! 127.0.0.1) serving the tiny model, then offline use of the cache it filled.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use ttpo_models::fake_hub::{read_tree, sha256 as sha, FakeHub};

const REPO: &str = "tests/tiny-sd";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn download_from_a_fake_hub_then_use_the_cache_offline() {
    let d = temp_dir("hub");
    let mut files = read_tree(&tiny_model());
    // A file the engine does not need must not be fetched.
    files.insert("unet/diffusion_pytorch_model.bin".into(), vec![0u8; 1000]);
    files.insert("README.md".into(), b"# tiny".to_vec());
    let fake = FakeHub::serve(REPO, COMMIT, files.clone());
    let endpoint = fake.endpoint.clone();
    let hf_home = d.join("hf");

    // Seed an interrupted download: the first half of the UNet weights as a .part blob.
    let unet = "unet/diffusion_pytorch_model.safetensors";
    let blobs = hf_home.join("hub/models--tests--tiny-sd/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let half = files[unet].len() / 2;
    std::fs::write(
        blobs.join(format!("{}.part", sha(&files[unet]))),
        &files[unet][..half],
    )
    .unwrap();

    let out = run_ok(ttpo(&hf_home).env("HF_ENDPOINT", &endpoint).args([
        "--progress",
        "plain",
        "models",
        "download",
        REPO,
    ]));
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let snap = hf_home.join(format!("hub/models--tests--tiny-sd/snapshots/{COMMIT}"));
    assert_eq!(Path::new(&printed), snap, "prints the snapshot folder");
    assert_eq!(
        std::fs::read_to_string(hf_home.join("hub/models--tests--tiny-sd/refs/main"))
            .unwrap()
            .trim(),
        COMMIT
    );
    for (name, data) in &files {
        let local = snap.join(name);
        if name.ends_with(".bin") || name == "README.md" {
            assert!(
                !local.exists(),
                "{name} is not needed and must not be fetched"
            );
        } else {
            assert_eq!(&std::fs::read(&local).unwrap(), data, "{name} content");
        }
    }
    let log = fake.log();
    assert!(
        log.iter()
            .any(|(p, r)| p.ends_with(unet) && r.as_deref() == Some(&format!("bytes={half}-")[..])),
        "the interrupted download resumes at byte {half}: {log:?}"
    );

    // A second download fetches nothing.
    let n_before = fake.log().len();
    run_ok(
        ttpo(&hf_home)
            .env("HF_ENDPOINT", &endpoint)
            .args(["models", "download", REPO]),
    );
    let fetched: Vec<_> = fake.log()[n_before..]
        .iter()
        .filter(|(p, _)| p.contains("/resolve/"))
        .cloned()
        .collect();
    assert!(fetched.is_empty(), "cached files re-fetched: {fetched:?}");

    // Offline: path, list, verify and a refine come from the cache alone.
    let p = run_ok(
        ttpo(&hf_home)
            .env("HF_HUB_OFFLINE", "1")
            .args(["models", "path", REPO]),
    );
    assert_eq!(String::from_utf8_lossy(&p.stdout).trim(), printed);
    let l = run_ok(ttpo(&hf_home).args(["models", "list", "--json"]));
    let lj = json_of(&l);
    assert_eq!(lj["models"][0]["repo"], REPO);
    assert_eq!(lj["models"][0]["complete"], true);
    assert_eq!(lj["models"][0]["family"], "Stable Diffusion 1.x/2.x");
    run_ok(ttpo(&hf_home).args(["--offline", "models", "verify", REPO, "--sha256"]));
    let input = photo(&d, "in.png", 64, 0);
    let r = run_ok(
        ttpo(&hf_home)
            .env("HF_HUB_OFFLINE", "1")
            .args(["--model", REPO, "--progress", "none", "refine"])
            .arg(&input)
            .arg("-o")
            .arg(d.join("out.png"))
            .args(FAST),
    );
    assert!(d.join("out.png").exists(), "{}", stderr(&r));
    // HF_HUB_CACHE moves the cache: nothing there, so offline fails with the fix named.
    let e = ttpo(&hf_home)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", d.join("empty-cache"))
        .args(["--model", REPO, "models", "path"])
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(3));
    assert!(
        stderr(&e).contains(&format!("ttpo models download {REPO}")),
        "{}",
        stderr(&e)
    );
}

#[test]
fn unknown_repo_on_the_hub_is_a_model_error() {
    let d = temp_dir("hub404");
    let fake = FakeHub::serve(REPO, COMMIT, BTreeMap::new());
    let endpoint = fake.endpoint.clone();
    let e = ttpo(&d)
        .env("HF_ENDPOINT", &endpoint)
        .args(["models", "download", "nobody/nothing"])
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(3), "{}", stderr(&e));
    assert_eq!(stderr(&e).trim_end().lines().count(), 1, "{}", stderr(&e));
    assert!(stderr(&e).contains("404"), "{}", stderr(&e));
}
