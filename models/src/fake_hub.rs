//! A fake Hugging Face Hub for tests (feature `fake-hub`): HTTP/1.1 on 127.0.0.1, serving
//! one repo from memory at the two endpoints the downloader uses —
//! `/api/models/<repo>/revision/<main|commit>` (the listing, with LFS sizes and SHA-256 for
//! `*.safetensors`) and `/<repo>/resolve/<main|commit>/<file>` (with `Range` support) — and
//! logging every request with its `Range` header. It never touches the network.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The served repo and the request log.
pub struct Repo {
    /// Repo id.
    pub repo: String,
    /// The commit `main` points at.
    pub commit: String,
    /// Files by path in the repo.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Bodies are sent in 8 KiB pieces with this pause between them (lets tests cancel
    /// mid-file).
    pub pause: Option<Duration>,
    /// `(path, Range header)` of every request, in order.
    pub log: Mutex<Vec<(String, Option<String>)>>,
}

/// A running fake Hub (it serves until the process ends).
pub struct FakeHub {
    /// `http://127.0.0.1:<port>`: the value for `HF_ENDPOINT`.
    pub endpoint: String,
    /// What it serves and what it was asked.
    pub repo: Arc<Repo>,
}

/// SHA-256, hex.
pub fn sha256(b: &[u8]) -> String {
    crate::hex(&Sha256::digest(b))
}

/// Every file under `root`, by relative path with `/`.
pub fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    crate::verify::walk(root)
        .into_iter()
        .map(|rel| {
            let data = std::fs::read(root.join(&rel)).expect("readable file");
            (rel, data)
        })
        .collect()
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(String, String)], body: &[u8]) {
    head(stream, status, headers, body.len());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn head(stream: &mut TcpStream, status: &str, headers: &[(String, String)], length: usize) {
    let mut head =
        format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
}

fn listing(r: &Repo) -> Vec<u8> {
    let siblings: Vec<serde_json::Value> = r
        .files
        .iter()
        .map(|(name, data)| {
            if name.ends_with(".safetensors") {
                serde_json::json!({"rfilename": name, "size": data.len(),
                    "lfs": {"size": data.len(), "sha256": sha256(data), "pointerSize": 134}})
            } else {
                serde_json::json!({"rfilename": name, "size": data.len()})
            }
        })
        .collect();
    serde_json::json!({"id": r.repo, "sha": r.commit, "siblings": siblings})
        .to_string()
        .into_bytes()
}

fn handle(r: &Repo, mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
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
    let target = request.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("").to_string();
    r.log
        .lock()
        .expect("log")
        .push((path.clone(), range.clone()));
    let revs = ["main", r.commit.as_str()];
    if revs
        .iter()
        .any(|rev| path == format!("/api/models/{}/revision/{rev}", r.repo))
    {
        let headers = [("Content-Type".into(), "application/json".into())];
        return respond(&mut stream, "200 OK", &headers, &listing(r));
    }
    let file = revs
        .iter()
        .find_map(|rev| path.strip_prefix(&format!("/{}/resolve/{rev}/", r.repo)));
    let Some(data) = file.and_then(|f| r.files.get(f)) else {
        return respond(&mut stream, "404 Not Found", &[], b"not found");
    };
    let start: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if start >= data.len() && !data.is_empty() {
        let headers = [("Content-Range".into(), format!("bytes */{}", data.len()))];
        return respond(&mut stream, "416 Range Not Satisfiable", &headers, b"");
    }
    let body = &data[start.min(data.len())..];
    let headers = [
        ("ETag".to_string(), format!("\"{}\"", sha256(data))),
        ("X-Repo-Commit".to_string(), r.commit.clone()),
        (
            "Content-Range".to_string(),
            format!("bytes {start}-{}/{}", data.len().max(1) - 1, data.len()),
        ),
        ("Accept-Ranges".to_string(), "bytes".to_string()),
    ];
    let Some(pause) = r.pause else {
        return respond(&mut stream, "206 Partial Content", &headers, body);
    };
    head(&mut stream, "206 Partial Content", &headers, body.len());
    for piece in body.chunks(8 << 10) {
        std::thread::sleep(pause);
        if stream
            .write_all(piece)
            .and_then(|_| stream.flush())
            .is_err()
        {
            return;
        }
    }
}

impl FakeHub {
    /// Serves `files` as `repo` at `commit` (also as `main`) on a free port.
    pub fn serve(repo: &str, commit: &str, files: BTreeMap<String, Vec<u8>>) -> Self {
        Self::serve_with(repo, commit, files, None)
    }

    /// As [`FakeHub::serve`], sending bodies in 8 KiB pieces `pause` apart when given.
    pub fn serve_with(
        repo: &str,
        commit: &str,
        files: BTreeMap<String, Vec<u8>>,
        pause: Option<Duration>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("address");
        let repo = Arc::new(Repo {
            repo: repo.into(),
            commit: commit.into(),
            files,
            pause,
            log: Mutex::new(Vec::new()),
        });
        let r = repo.clone();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let r = r.clone();
                std::thread::spawn(move || handle(&r, s));
            }
        });
        Self {
            endpoint: format!("http://{addr}"),
            repo,
        }
    }

    /// The logged requests so far.
    pub fn log(&self) -> Vec<(String, Option<String>)> {
        self.repo.log.lock().expect("log").clone()
    }
}

/// Reads until EOF (lets a helper process serve until its parent closes its stdin).
pub fn wait_for_eof(mut input: impl Read) {
    let mut sink = [0u8; 256];
    while input.read(&mut sink).is_ok_and(|n| n > 0) {}
}
