//! `ttpo models download` against a local fake Hugging Face endpoint (HTTP/1.1 on
//! 127.0.0.1) serving the tiny model, then offline use of the cache it filled.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

const REPO: &str = "tests/tiny-sd";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

struct Fake {
    files: BTreeMap<String, Vec<u8>>,
    /// (path, Range header) of every request.
    log: Mutex<Vec<(String, Option<String>)>>,
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(String, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn handle(fake: &Fake, mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let target = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let path = target.split('?').next().unwrap_or("").to_string();
    fake.log.lock().unwrap().push((path.clone(), range.clone()));
    let listing = format!("/api/models/{REPO}/revision/main");
    let resolve = format!("/{REPO}/resolve/main/");
    if path == listing {
        let siblings: Vec<serde_json::Value> = fake
            .files
            .iter()
            .map(|(name, data)| {
                if name.ends_with(".safetensors") {
                    serde_json::json!({"rfilename": name, "size": data.len(),
                        "lfs": {"size": data.len(), "sha256": sha(data), "pointerSize": 134}})
                } else {
                    serde_json::json!({"rfilename": name, "size": data.len()})
                }
            })
            .collect();
        let body = serde_json::json!({"id": REPO, "sha": COMMIT, "siblings": siblings}).to_string();
        respond(
            &mut stream,
            "200 OK",
            &[("Content-Type".into(), "application/json".into())],
            body.as_bytes(),
        );
    } else if let Some(name) = path.strip_prefix(&resolve) {
        let Some(data) = fake.files.get(name) else {
            respond(&mut stream, "404 Not Found", &[], b"not found");
            return;
        };
        let start: usize = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split('-').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let end: usize = range
            .as_deref()
            .and_then(|r| r.split('-').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(data.len() - 1)
            .min(data.len() - 1);
        let etag = if name.ends_with(".safetensors") {
            sha(data)
        } else {
            sha(data)[..40].to_string()
        };
        let headers = vec![
            ("ETag".to_string(), format!("\"{etag}\"")),
            ("X-Repo-Commit".to_string(), COMMIT.to_string()),
            (
                "Content-Range".to_string(),
                format!("bytes {start}-{end}/{}", data.len()),
            ),
            ("Accept-Ranges".to_string(), "bytes".to_string()),
        ];
        respond(
            &mut stream,
            "206 Partial Content",
            &headers,
            &data[start..=end],
        );
    } else {
        respond(&mut stream, "404 Not Found", &[], b"not found");
    }
}

fn serve(files: BTreeMap<String, Vec<u8>>) -> (String, Arc<Fake>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Arc::new(Fake {
        files,
        log: Mutex::new(Vec::new()),
    });
    let f = fake.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let f = f.clone();
            std::thread::spawn(move || handle(&f, s));
        }
    });
    (format!("http://{addr}"), fake)
}

fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn go(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                go(base, &p, out);
            } else {
                let rel = p
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let mut v = Vec::new();
                std::fs::File::open(&p)
                    .unwrap()
                    .read_to_end(&mut v)
                    .unwrap();
                out.insert(rel, v);
            }
        }
    }
    let mut m = BTreeMap::new();
    go(root, root, &mut m);
    m
}

#[test]
fn download_from_a_fake_hub_then_use_the_cache_offline() {
    let d = temp_dir("hub");
    let mut files = read_tree(&tiny_model());
    // A file the engine does not need must not be fetched.
    files.insert("unet/diffusion_pytorch_model.bin".into(), vec![0u8; 1000]);
    files.insert("README.md".into(), b"# tiny".to_vec());
    let (endpoint, fake) = serve(files.clone());
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
    let log = fake.log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|(p, r)| p.ends_with(unet) && r.as_deref() == Some(&format!("bytes={half}-")[..])),
        "the interrupted download resumes at byte {half}: {log:?}"
    );

    // A second download fetches nothing.
    let n_before = fake.log.lock().unwrap().len();
    run_ok(
        ttpo(&hf_home)
            .env("HF_ENDPOINT", &endpoint)
            .args(["models", "download", REPO]),
    );
    let fetched: Vec<_> = fake.log.lock().unwrap()[n_before..]
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
    let (endpoint, _fake) = serve(BTreeMap::new());
    let e = ttpo(&d)
        .env("HF_ENDPOINT", &endpoint)
        .args(["models", "download", "nobody/nothing"])
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(3), "{}", stderr(&e));
    assert_eq!(stderr(&e).trim_end().lines().count(), 1, "{}", stderr(&e));
    assert!(stderr(&e).contains("404"), "{}", stderr(&e));
}
