//! The learned metrics' checkpoints through the CLI: `ttpo models download --metrics` from a
//! fake Hub, jobs finding the Hugging Face cache's copy, offline and missing-file errors.
//! (The metrics' numbers are checked against pyiqa in core/tests/iqa_*.rs.)

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use ttpo_models::fake_hub::FakeHub;

const IQA_REPO: &str = "chaofengc/IQA-PyTorch-Weights";
const COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// `ttpo` whose default checkpoint folders are empty temporary ones.
fn isolated(hf_home: &Path, d: &Path) -> Command {
    let mut c = ttpo(hf_home);
    for (k, sub) in [
        ("TTPO_IQA_DIR", "iqa"),
        ("XDG_DATA_HOME", "data"),
        ("TORCH_HOME", "torch"),
    ] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
        c.env(k, d.join(sub));
    }
    c
}

#[test]
fn checkpoints_download_by_metric_name_and_jobs_find_them() {
    let d = temp_dir("iqa");
    let hf_home = d.join("hf");
    let mut files = BTreeMap::new();
    // Not real checkpoints: the test is about where files come from; loading them fails
    // with an error naming the file in the cache.
    for (f, n) in [
        ("musiq_koniq_ckpt-e95806b9.pth", 1000),
        ("ckpt_koniq10k.pt", 1200),
        ("cfanet_nr_koniq_res50-9a73138b.pth", 1400),
        ("unrelated.pth", 9000),
    ] {
        files.insert(f.to_string(), vec![1u8; n]);
    }
    let fake = FakeHub::serve(IQA_REPO, COMMIT, files);
    let img = photo(&d, "in.png", 96, 0);

    // Offline with nothing anywhere: the error names the command that fetches the file.
    let out = isolated(&hf_home, &d)
        .env("HF_HUB_OFFLINE", "1")
        .args(["score", img.to_str().unwrap(), "--metrics", "topiq"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ttpo models download --metrics topiq")
            && stderr(&out).contains("cfanet_nr_koniq_res50-9a73138b.pth"),
        "{}",
        stderr(&out)
    );

    // The preset fetches its three files (not the unrelated one) and prints the folder.
    let out = run_ok(
        isolated(&hf_home, &d)
            .env("HF_ENDPOINT", &fake.endpoint)
            .args(["models", "download", "--metrics", "reproduction"]),
    );
    let snap = hf_home.join(format!(
        "hub/models--chaofengc--IQA-PyTorch-Weights/snapshots/{COMMIT}"
    ));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        snap.to_str().unwrap()
    );
    for f in [
        "musiq_koniq_ckpt-e95806b9.pth",
        "ckpt_koniq10k.pt",
        "cfanet_nr_koniq_res50-9a73138b.pth",
    ] {
        assert!(snap.join(f).is_file(), "{f}");
    }
    assert!(!snap.join("unrelated.pth").exists());
    assert!(
        stderr(&out).contains("Noncommercial"),
        "licences shown: {}",
        stderr(&out)
    );

    // `models list` shows where each checkpoint is and its licence; and the restoration
    // networks of the restore folder with theirs.
    let rdir = d.join("restore");
    std::fs::create_dir_all(rdir.join("esrgan-slim/x2")).unwrap();
    std::fs::write(rdir.join("esrgan-slim/x2/model.json"), "{}").unwrap();
    let l = json_of(&run_ok(
        isolated(&hf_home, &d)
            .env("TTPO_RESTORE_DIR", &rdir)
            .args(["models", "list", "--json"]),
    ));
    let iqa = l["iqa"].as_array().unwrap();
    assert_eq!(iqa.len(), 3);
    for c in iqa {
        let file = c["file"].as_str().unwrap();
        assert_eq!(c["path"], snap.join(file).to_str().unwrap(), "{c}");
        assert!(!c["licence"].as_str().unwrap().is_empty());
    }
    let restore = l["restore"].as_array().unwrap();
    let present: Vec<&str> = restore
        .iter()
        .filter(|r| r["present"] == true)
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(present, ["rdn-x2"]);
    assert!(restore
        .iter()
        .all(|r| r["licence"].as_str().is_some_and(|l| !l.is_empty())));

    // A job offline now takes the cached copy: the (fake) file is read from there.
    let out = isolated(&hf_home, &d)
        .env("HF_HUB_OFFLINE", "1")
        .args(["score", img.to_str().unwrap(), "--metrics", "musiq"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(snap.join("musiq_koniq_ckpt-e95806b9.pth").to_str().unwrap()),
        "{}",
        stderr(&out)
    );

    // An explicit folder is the only place looked in.
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = isolated(&hf_home, &d)
        .env("HF_HUB_OFFLINE", "1")
        .args(["score", img.to_str().unwrap(), "--metrics", "topiq"])
        .arg("--iqa-model-dir")
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            empty
                .join("cfanet_nr_koniq_res50-9a73138b.pth")
                .to_str()
                .unwrap()
        ),
        "{}",
        stderr(&out)
    );

    // Unknown names are refused before anything is fetched.
    let out = isolated(&hf_home, &d)
        .args(["models", "download", "--metrics", "niqe"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    std::fs::remove_dir_all(&d).ok();
}
