//! Downloads from a fake Hub on 127.0.0.1 (no network): resume, progress numbers, cancel,
//! offline, unreachable endpoints, then `locate` and `verify` on what was fetched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use ttpo_models::fake_hub::{sha256, FakeHub};
use ttpo_models::{download, locate, verify, Error, Hub, Request, Source, Transfer};

const REPO: &str = "tests/fake-sd";
const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";
const UNET: &str = "unet/diffusion_pytorch_model.safetensors";

/// The cache folder comes from the environment: tests that set it run one at a time.
static ENV: Mutex<()> = Mutex::new(());

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ttpo-models-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A structurally valid safetensors file of `n` f32 values.
fn safetensors(n: usize, fill: u8) -> Vec<u8> {
    let header = format!(
        "{{\"w\":{{\"dtype\":\"F32\",\"shape\":[{n}],\"data_offsets\":[0,{}]}}}}",
        4 * n
    );
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend(std::iter::repeat_n(fill, 4 * n));
    v
}

/// The files of a diffusers SD repo (configs are tiny JSON), plus two the engine does not
/// need.
fn repo_files() -> BTreeMap<String, Vec<u8>> {
    let mut f = BTreeMap::new();
    for name in [
        "model_index.json",
        "unet/config.json",
        "vae/config.json",
        "text_encoder/config.json",
        "scheduler/scheduler_config.json",
        "tokenizer/tokenizer_config.json",
    ] {
        f.insert(name.to_string(), br#"{"a": 1}"#.to_vec());
    }
    f.insert("tokenizer/vocab.json".into(), br#"{"x": 0}"#.to_vec());
    f.insert("tokenizer/merges.txt".into(), b"#version: 0.2\n".to_vec());
    f.insert(UNET.into(), safetensors(60_000, 1));
    f.insert(
        "vae/diffusion_pytorch_model.safetensors".into(),
        safetensors(1000, 2),
    );
    f.insert("text_encoder/model.safetensors".into(), safetensors(500, 3));
    f.insert("unet/diffusion_pytorch_model.bin".into(), vec![0; 1000]);
    f.insert("README.md".into(), b"# fake".to_vec());
    f
}

fn hub(endpoint: &str) -> Hub {
    Hub::new(endpoint, None)
}

fn set_cache(dir: &Path) {
    std::env::set_var("HF_HUB_CACHE", dir);
}

#[test]
fn resumes_reports_progress_and_fetches_nothing_twice() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let d = temp("resume");
    set_cache(&d);
    let files = repo_files();
    let fake = FakeHub::serve(REPO, COMMIT, files.clone());
    // An interrupted download: the first half of the UNet weights as a .part blob.
    let blobs = d.join("models--tests--fake-sd/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let half = files[UNET].len() / 2;
    std::fs::write(
        blobs.join(format!("{}.part", sha256(&files[UNET]))),
        &files[UNET][..half],
    )
    .unwrap();

    let mut events: Vec<(String, u64, u64, u64, u64)> = Vec::new();
    let mut record = |t: &Transfer| {
        events.push((
            t.file.to_string(),
            t.file_done,
            t.file_total,
            t.done,
            t.total,
        ))
    };
    let r = download(
        &hub(&fake.endpoint),
        &Request::new(REPO, "main"),
        &mut record,
        &AtomicBool::new(false),
    )
    .unwrap();
    let snap = d.join(format!("models--tests--fake-sd/snapshots/{COMMIT}"));
    assert_eq!(r.dir, snap);
    assert_eq!(r.commit, COMMIT);
    for (name, data) in &files {
        let needed = !(name.ends_with(".bin") || name == "README.md");
        assert_eq!(snap.join(name).exists(), needed, "{name}");
        if needed {
            assert_eq!(&std::fs::read(snap.join(name)).unwrap(), data, "{name}");
        }
    }
    assert!(
        fake.log().iter().any(|(p, r)| p.ends_with(UNET)
            && p.contains(&format!("/resolve/{COMMIT}/"))
            && r.as_deref() == Some(&format!("bytes={half}-")[..])),
        "the UNet resumes at byte {half}, from the listed commit: {:?}",
        fake.log()
    );
    // Progress: the UNet's first report is where it resumed, its last is its size; the
    // whole-model count only grows and ends at the total of the needed files.
    let total: u64 = files
        .iter()
        .filter(|(n, _)| !(n.ends_with(".bin") || *n == "README.md"))
        .map(|(_, d)| d.len() as u64)
        .sum();
    let unet: Vec<_> = events.iter().filter(|e| e.0 == UNET).collect();
    let size = files[UNET].len() as u64;
    assert_eq!((unet[0].1, unet[0].2), (half as u64, size), "{unet:?}");
    assert_eq!(unet.last().unwrap().1, size);
    assert!(events.windows(2).all(|w| w[0].3 <= w[1].3), "{events:?}");
    assert!(events.iter().all(|e| e.4 == total && e.3 <= total));
    assert_eq!(events.last().unwrap().3, total);
    assert_eq!(
        std::fs::read_to_string(d.join("models--tests--fake-sd/refs/main")).unwrap(),
        COMMIT
    );

    // A second download fetches nothing and reports nothing.
    let n = fake.log().len();
    let mut count = 0;
    let again = download(
        &hub(&fake.endpoint),
        &Request::new(REPO, "main"),
        &mut |_: &Transfer| count += 1,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(again.files.iter().all(|f| !f.2));
    assert_eq!(count, 0);
    assert!(fake.log()[n..]
        .iter()
        .all(|(p, _)| !p.contains("/resolve/")));

    // Found offline; verify passes, also by hash, and catches a corrupted blob.
    let source = Source::Repo {
        repo: REPO.into(),
        revision: "main".into(),
    };
    assert_eq!(locate(&source).unwrap(), snap);
    let report = verify::verify(&snap, None, true).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.checked.len(), 11);
    let unet_blob = std::fs::canonicalize(snap.join(UNET)).unwrap();
    let mut bad = std::fs::read(&unet_blob).unwrap();
    *bad.last_mut().unwrap() ^= 1;
    std::fs::write(&unet_blob, &bad).unwrap();
    let report = verify::verify(&snap, None, true).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].0, UNET);
    assert!(report.problems[0].1.starts_with("SHA-256"));
    bad.truncate(bad.len() - 4);
    std::fs::write(&unet_blob, &bad).unwrap();
    let report = verify::verify(&snap, None, false).unwrap();
    assert!(report.problems[0].1.contains("truncated"), "{report:?}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn cancel_stops_mid_file_and_the_next_download_resumes() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let d = temp("cancel");
    set_cache(&d);
    let files = repo_files();
    let fake = FakeHub::serve_with(REPO, COMMIT, files.clone(), Some(Duration::from_millis(2)));
    let cancel = AtomicBool::new(false);
    let mut reports = 0;
    let e = download(
        &hub(&fake.endpoint),
        &Request::new(REPO, "main"),
        &mut |t: &Transfer| {
            reports += 1;
            if t.file == UNET && t.file_done > 0 {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    let part = d.join(format!(
        "models--tests--fake-sd/blobs/{}.part",
        sha256(&files[UNET])
    ));
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(
        kept > 0 && kept < files[UNET].len() as u64,
        "part of {kept} bytes"
    );
    let after_cancel = reports;
    assert!(locate(&Source::Repo {
        repo: REPO.into(),
        revision: "main".into()
    })
    .is_err());

    // Cancelled before it starts: nothing is contacted.
    let n = fake.log().len();
    let e = download(
        &hub(&fake.endpoint),
        &Request::new(REPO, "main"),
        &mut |_: &Transfer| {},
        &AtomicBool::new(true),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Cancelled));
    assert_eq!(fake.log().len(), n);

    let mut first_unet = None;
    let r = download(
        &hub(&fake.endpoint),
        &Request::new(REPO, "main"),
        &mut |t: &Transfer| {
            if t.file == UNET && first_unet.is_none() {
                first_unet = Some(t.file_done);
            }
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(first_unet, Some(kept), "resumed where the cancel left it");
    assert_eq!(std::fs::read(r.dir.join(UNET)).unwrap(), files[UNET]);
    assert!(after_cancel > 0);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn offline_unreachable_and_unknown_repos_fail_with_their_kind() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let d = temp("fail");
    set_cache(&d);
    let none = AtomicBool::new(false);
    let req = Request::new(REPO, "main");

    let mut offline = hub("http://127.0.0.1:9");
    offline.offline = true;
    let e = download(&offline, &req, &mut |_: &Transfer| {}, &none).unwrap_err();
    assert!(matches!(e, Error::Offline { .. }), "{e}");
    assert!(!e.is_network());

    let t0 = Instant::now();
    let e = download(
        &hub("http://127.0.0.1:9"),
        &req,
        &mut |_: &Transfer| {},
        &none,
    )
    .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(
        matches!(&e, Error::Hub { status: None, .. }) && e.is_network(),
        "{e}"
    );
    assert!(e.to_string().contains("127.0.0.1:9"), "{e}");

    let fake = FakeHub::serve(REPO, COMMIT, BTreeMap::new());
    let e = download(
        &hub(&fake.endpoint),
        &Request::new("nobody/nothing", "main"),
        &mut |_: &Transfer| {},
        &none,
    )
    .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Hub {
                status: Some(404),
                ..
            }
        ) && !e.is_network(),
        "{e}"
    );
    assert!(
        e.to_string().contains("check the repo id and revision"),
        "{e}"
    );

    // A repo without the engine's files.
    let mut files = BTreeMap::new();
    files.insert("model_index.json".to_string(), b"{}".to_vec());
    let fake = FakeHub::serve(REPO, COMMIT, files);
    let e = download(&hub(&fake.endpoint), &req, &mut |_: &Transfer| {}, &none).unwrap_err();
    assert!(
        matches!(&e, Error::NotDiffusers { file, .. } if file == "unet/config.json"),
        "{e}"
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn locate_reads_a_cache_laid_out_by_python() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let d = temp("locate");
    set_cache(&d);
    let source = Source::Repo {
        repo: REPO.into(),
        revision: "main".into(),
    };
    match locate(&source).unwrap_err() {
        Error::NotCached { missing, cache, .. } => {
            assert!(missing.is_empty());
            assert_eq!(cache, d);
        }
        e => panic!("{e}"),
    }
    let snap = d.join(format!("models--tests--fake-sd/snapshots/{COMMIT}"));
    for (name, data) in repo_files() {
        std::fs::create_dir_all(snap.join(&name).parent().unwrap()).unwrap();
        std::fs::write(snap.join(&name), data).unwrap();
    }
    // No ref yet: only the commit finds it.
    assert!(locate(&source).is_err());
    let by_commit = Source::Repo {
        repo: REPO.into(),
        revision: COMMIT.into(),
    };
    assert_eq!(locate(&by_commit).unwrap(), snap);
    std::fs::create_dir_all(d.join("models--tests--fake-sd/refs")).unwrap();
    std::fs::write(d.join("models--tests--fake-sd/refs/main"), COMMIT).unwrap();
    assert_eq!(locate(&source).unwrap(), snap);
    std::fs::remove_file(snap.join("vae/config.json")).unwrap();
    match locate(&source).unwrap_err() {
        e @ Error::NotCached { .. } => {
            assert!(
                e.to_string()
                    .contains("incomplete (missing vae/config.json)"),
                "{e}"
            )
        }
        e => panic!("{e}"),
    }
    let listed = ttpo_models::cache::list_cached();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].repo.as_str(), listed[0].complete), (REPO, false));
    let missing = Source::Dir(d.join("nope"));
    assert!(matches!(locate(&missing), Err(Error::FolderMissing(_))));
    assert_eq!(locate(&Source::Dir(snap.clone())).unwrap(), snap);
    std::fs::remove_dir_all(&d).ok();
}

/// The files of a diffusers FLUX.1 repo (sharded T5 and transformer, as on the Hub) or,
/// with `sd3`, an SD3 repo whose listing looks like FLUX's (no `text_encoder_3`, CLIP-G's
/// tokenizer as tokenizer.json only): the family must come from model_index.json.
fn flow_repo_files(sd3: bool) -> BTreeMap<String, Vec<u8>> {
    let mut f = BTreeMap::new();
    let class = if sd3 {
        "StableDiffusion3Pipeline"
    } else {
        "FluxPipeline"
    };
    f.insert(
        "model_index.json".to_string(),
        format!(r#"{{"_class_name": "{class}"}}"#).into_bytes(),
    );
    for name in [
        "transformer/config.json",
        "vae/config.json",
        "text_encoder/config.json",
        "text_encoder_2/config.json",
        "scheduler/scheduler_config.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer_2/tokenizer_config.json",
        "tokenizer_2/special_tokens_map.json",
    ] {
        f.insert(name.to_string(), br#"{"a": 1}"#.to_vec());
    }
    f.insert("tokenizer/vocab.json".into(), br#"{"x": 0}"#.to_vec());
    f.insert("tokenizer/merges.txt".into(), b"#version: 0.2\n".to_vec());
    f.insert("tokenizer_2/tokenizer.json".into(), br#"{"m": 1}"#.to_vec());
    f.insert("tokenizer_2/spiece.model".into(), vec![7; 300]);
    f.insert(
        "transformer/diffusion_pytorch_model.safetensors.index.json".into(),
        br#"{"weight_map": {"a": "diffusion_pytorch_model-00001-of-00002.safetensors",
                           "b": "diffusion_pytorch_model-00002-of-00002.safetensors"}}"#
            .to_vec(),
    );
    for (i, n) in [(1, 3000), (2, 2000)] {
        f.insert(
            format!("transformer/diffusion_pytorch_model-0000{i}-of-00002.safetensors"),
            safetensors(n, i as u8),
        );
    }
    f.insert(
        "vae/diffusion_pytorch_model.safetensors".into(),
        safetensors(1000, 2),
    );
    f.insert("text_encoder/model.safetensors".into(), safetensors(500, 3));
    f.insert(
        "text_encoder_2/model.safetensors".into(),
        safetensors(700, 4),
    );
    f.insert(
        "transformer/diffusion_pytorch_model.bin".into(),
        vec![0; 100],
    );
    f
}

#[test]
fn flow_families_fetch_their_own_components() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    for sd3 in [false, true] {
        let d = temp(if sd3 { "sd3" } else { "flux" });
        set_cache(&d);
        let files = flow_repo_files(sd3);
        let fake = FakeHub::serve(REPO, COMMIT, files.clone());
        let mut totals = Vec::new();
        let r = download(
            &hub(&fake.endpoint),
            &Request::new(REPO, "main"),
            &mut |t: &Transfer| totals.push((t.done, t.total)),
            &AtomicBool::new(false),
        )
        .unwrap();
        // FLUX reads T5's tokenizer.json, not spiece.model; SD3 reads CLIP-G's BPE
        // tokenizer from tokenizer.json and has no T5 here (optional, as in diffusers).
        let not_needed = |n: &str| n.ends_with(".bin") || n.ends_with("spiece.model");
        for (name, data) in &files {
            let needed = !not_needed(name);
            assert_eq!(r.dir.join(name).exists(), needed, "sd3={sd3} {name}");
            if needed {
                assert_eq!(&std::fs::read(r.dir.join(name)).unwrap(), data, "{name}");
            }
        }
        let total: u64 = files
            .iter()
            .filter(|(n, _)| !not_needed(n))
            .map(|(_, d)| d.len() as u64)
            .sum();
        assert_eq!(totals.last().unwrap(), &(total, total), "sd3={sd3}");
        assert!(ttpo_models::layout::missing_parts(&r.dir).is_empty());
        assert_eq!(
            ttpo_models::layout::Family::of_dir(&r.dir),
            if sd3 {
                ttpo_models::layout::Family::Sd3
            } else {
                ttpo_models::layout::Family::Flux
            }
        );
        // A FLUX folder without its T5 encoder is incomplete and says so.
        if !sd3 {
            std::fs::remove_file(r.dir.join("text_encoder_2/model.safetensors")).unwrap();
            assert_eq!(
                ttpo_models::layout::missing_parts(&r.dir),
                vec!["text_encoder_2/model[.fp16].safetensors".to_string()]
            );
        }
        std::fs::remove_dir_all(&d).ok();
    }
}

/// A repo that is not a diffusion model (pyiqa's checkpoints): exactly the named files are
/// fetched, no `model_index.json` is asked for, and a name the repo lacks is `NotInRepo`.
#[test]
fn named_files_of_a_plain_repo() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let d = temp("named");
    set_cache(&d);
    let mut files = BTreeMap::new();
    files.insert("musiq_koniq_ckpt-e95806b9.pth".to_string(), vec![7u8; 3000]);
    files.insert("ckpt_koniq10k.pt".to_string(), vec![8u8; 2000]);
    files.insert("other.pth".to_string(), vec![9u8; 5000]);
    let fake = FakeHub::serve("chaofengc/IQA-PyTorch-Weights", COMMIT, files.clone());
    let want = vec![
        "musiq_koniq_ckpt-e95806b9.pth".to_string(),
        "ckpt_koniq10k.pt".to_string(),
    ];
    let req = Request {
        files: Some(want.clone()),
        ..Request::new("chaofengc/IQA-PyTorch-Weights", "main")
    };
    let r = download(
        &hub(&fake.endpoint),
        &req,
        &mut |_: &Transfer| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    let got: Vec<&str> = r.files.iter().map(|(f, _, _)| f.as_str()).collect();
    assert_eq!(got, want);
    for f in &want {
        assert_eq!(std::fs::read(r.dir.join(f)).unwrap(), files[f], "{f}");
    }
    assert!(!r.dir.join("other.pth").exists());
    assert!(!r.dir.join("model_index.json").exists());
    // The snapshot is found by revision afterwards (how jobs find the checkpoints).
    assert_eq!(
        ttpo_models::cache::snapshot_dir("chaofengc/IQA-PyTorch-Weights", "main").unwrap(),
        r.dir
    );
    let missing = Request {
        files: Some(vec!["nope.pth".to_string()]),
        ..Request::new("chaofengc/IQA-PyTorch-Weights", "main")
    };
    let e = download(
        &hub(&fake.endpoint),
        &missing,
        &mut |_: &Transfer| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::NotInRepo { file, .. } if file == "nope.pth"),
        "{e}"
    );
    std::fs::remove_dir_all(&d).ok();
}
