//! Model resolution and management: an explicit diffusers folder, or a Hugging Face repo
//! resolved from (and downloaded into) the standard Hugging Face cache.

use crate::error::{code, CliError, CliResult};
use crate::ui::ProgressMode;
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The default model repo.
pub const DEFAULT_REPO: &str = "stabilityai/stable-diffusion-2-1-base";

/// Where the model comes from (built from the global options).
#[derive(Clone, Debug)]
pub struct ModelSpec {
    /// An explicit diffusers-layout folder (`--model-dir` / `TTPO_MODEL_DIR`).
    pub dir: Option<PathBuf>,
    /// Hub repo id.
    pub repo: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// Resolve from the cache only.
    pub offline: bool,
    /// Prefer the `.fp16` weight files when downloading.
    pub fp16: bool,
    /// Progress display.
    pub progress: ProgressMode,
}

impl ModelSpec {
    /// A human-readable description for logs and JSON.
    pub fn describe(&self) -> serde_json::Value {
        match &self.dir {
            Some(d) => serde_json::json!({ "dir": d }),
            None => serde_json::json!({ "repo": self.repo, "revision": self.revision }),
        }
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// `HF_HUB_OFFLINE` is set to a true value.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| truthy(&v))
}

/// The Hub endpoint: `HF_ENDPOINT` or `https://huggingface.co`.
pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into())
        .trim_end_matches('/')
        .to_string()
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from)
}

/// The Hugging Face home: `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else
/// `~/.cache/huggingface` (the same rules as the Python tools).
pub fn hf_home() -> PathBuf {
    if let Some(h) = std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("huggingface");
    }
    home()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("huggingface")
}

/// The hub cache: `HF_HUB_CACHE` (or the older `HUGGINGFACE_HUB_CACHE`), else
/// `<hf_home>/hub`.
pub fn hub_cache_dir() -> PathBuf {
    for var in ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return PathBuf::from(v);
        }
    }
    hf_home().join("hub")
}

fn token() -> Option<String> {
    if let Ok(t) = std::env::var("HF_TOKEN") {
        if !t.trim().is_empty() {
            return Some(t.trim().to_string());
        }
    }
    let path = std::env::var_os("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| hf_home().join("token"));
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The cache folder of a model repo.
pub fn repo_folder(repo: &str) -> PathBuf {
    hub_cache_dir().join(format!("models--{}", repo.replace('/', "--")))
}

fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The cached snapshot folder of `repo` at `revision`, if the revision is known locally.
pub fn snapshot_dir(repo: &str, revision: &str) -> Option<PathBuf> {
    let folder = repo_folder(repo);
    let commit = if is_commit(revision) {
        revision.to_string()
    } else {
        std::fs::read_to_string(folder.join("refs").join(revision))
            .ok()?
            .trim()
            .to_string()
    };
    let dir = folder.join("snapshots").join(commit);
    dir.is_dir().then_some(dir)
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

/// What a diffusers SD folder lacks for this engine (empty = complete).
pub fn missing_parts(dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    let mut need = |ok: bool, what: &str| {
        if !ok {
            missing.push(what.to_string());
        }
    };
    need(dir.join("model_index.json").exists(), "model_index.json");
    for (comp, base) in [
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
    ] {
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

fn not_cached_error(spec: &ModelSpec, why: &str) -> CliError {
    CliError::new(
        code::MODEL_MISSING,
        format!(
            "model {} ({}) is {why} in the Hugging Face cache {} and offline mode is on; fetch it with `ttpo models download {}` or pass --model-dir DIR",
            spec.repo,
            spec.revision,
            hub_cache_dir().display(),
            spec.repo
        ),
    )
}

/// The local folder of the model, downloading it unless offline.
pub fn resolve(spec: &ModelSpec) -> CliResult<PathBuf> {
    if let Some(dir) = &spec.dir {
        if !dir.is_dir() {
            return Err(CliError::new(
                code::MODEL_MISSING,
                format!("model folder {} does not exist", dir.display()),
            ));
        }
        return Ok(dir.clone());
    }
    if let Some(dir) = snapshot_dir(&spec.repo, &spec.revision) {
        let missing = missing_parts(&dir);
        if missing.is_empty() {
            return Ok(dir);
        }
        if spec.offline {
            return Err(not_cached_error(
                spec,
                &format!("incomplete (missing {})", missing.join(", ")),
            ));
        }
    } else if spec.offline {
        return Err(not_cached_error(spec, "not"));
    }
    download(spec, false).map(|r| r.dir)
}

/// One file of the Hub's listing.
#[derive(Clone, Debug, Deserialize)]
pub struct Sibling {
    pub rfilename: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub lfs: Option<Lfs>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Lfs {
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
}

impl Sibling {
    fn expected_size(&self) -> Option<u64> {
        self.lfs.as_ref().and_then(|l| l.size).or(self.size)
    }
}

/// The Hub's answer to `/api/models/{repo}/revision/{rev}?blobs=true`.
#[derive(Clone, Debug, Deserialize)]
pub struct Listing {
    pub sha: String,
    pub siblings: Vec<Sibling>,
}

/// Picks the files this engine needs from a repo listing: configs, tokenizer, scheduler,
/// and one weight file per component (`.fp16` when `fp16` and listed).
pub fn select_files(listing: &Listing, fp16: bool) -> Vec<String> {
    let has = |f: &str| listing.siblings.iter().any(|s| s.rfilename == f);
    let mut files = vec!["model_index.json".to_string()];
    for (comp, base) in [
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
    ] {
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
            // Sharded checkpoints: the index (its shards are added after it is read).
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

/// Download progress for one file.
struct DlProgress {
    bar: ProgressBar,
    plain: bool,
}

impl hf_hub::api::Progress for DlProgress {
    fn init(&mut self, size: usize, filename: &str) {
        self.bar.set_length(size as u64);
        self.bar.set_position(0);
        self.bar.set_message(filename.to_string());
        if self.plain {
            eprintln!("downloading {filename} ({})", HumanBytes(size as u64));
        }
    }
    fn update(&mut self, size: usize) {
        self.bar.inc(size as u64);
    }
    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn download_bar(mode: ProgressMode) -> DlProgress {
    let mode = mode.resolve();
    let target = if mode == ProgressMode::Bar {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(0), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    DlProgress {
        bar,
        plain: mode == ProgressMode::Plain,
    }
}

fn hub_error(spec: &ModelSpec, what: &str, e: impl std::fmt::Display) -> CliError {
    let msg = crate::error::one_line(&e.to_string());
    let hint = if msg.contains("401") || msg.contains("403") {
        " (a gated or private repo needs a token: set HF_TOKEN)"
    } else if msg.contains("404") {
        " (check the repo id and revision)"
    } else {
        " (check the network or HF_ENDPOINT; use --model-dir for a local folder)"
    };
    CliError::new(
        code::MODEL_MISSING,
        format!("{what} {} from {}: {msg}{hint}", spec.repo, endpoint()),
    )
}

/// Result of a download.
pub struct Downloaded {
    pub dir: PathBuf,
    pub commit: String,
    pub files: Vec<(String, u64, bool)>,
}

/// The Hub's file listing of the repo at the spec's revision.
pub fn fetch_listing(spec: &ModelSpec) -> CliResult<Listing> {
    let api = build_api(spec)?;
    let repo = api.repo(Repo::with_revision(
        spec.repo.clone(),
        RepoType::Model,
        spec.revision.clone(),
    ));
    let resp = repo
        .info_request()
        .query("blobs", "true")
        .call()
        .map_err(|e| hub_error(spec, "cannot list", e))?;
    let mut body = String::new();
    resp.into_reader()
        .take(64 << 20)
        .read_to_string(&mut body)
        .map_err(|e| hub_error(spec, "cannot list", e))?;
    serde_json::from_str(&body).map_err(|e| hub_error(spec, "unexpected listing for", e))
}

fn build_api(spec: &ModelSpec) -> CliResult<hf_hub::api::sync::Api> {
    ApiBuilder::from_cache(Cache::new(hub_cache_dir()))
        .with_endpoint(endpoint())
        .with_token(token())
        .with_progress(false)
        .with_retries(3)
        .build()
        .map_err(|e| hub_error(spec, "cannot reach", e))
}

fn file_len(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// Removes a cached file (the snapshot link and the blob it points to).
fn forget(path: &Path) {
    if let Ok(target) = std::fs::canonicalize(path) {
        let _ = std::fs::remove_file(&target);
    }
    let _ = std::fs::remove_file(path);
}

/// Downloads (or completes) the model in the cache. Already-complete files are skipped;
/// interrupted downloads resume from their `.part` file. Sizes are checked against the
/// Hub's listing.
pub fn download(spec: &ModelSpec, force: bool) -> CliResult<Downloaded> {
    if spec.offline {
        return Err(not_cached_error(spec, "not downloadable while"));
    }
    let listing = fetch_listing(spec)?;
    let api = build_api(spec)?;
    let repo = api.repo(Repo::with_revision(
        spec.repo.clone(),
        RepoType::Model,
        spec.revision.clone(),
    ));
    let snap = repo_folder(&spec.repo).join("snapshots").join(&listing.sha);
    let mut queue = select_files(&listing, spec.fp16);
    let mut done = Vec::new();
    let mut i = 0;
    while i < queue.len() {
        let file = queue[i].clone();
        i += 1;
        let sib = listing.siblings.iter().find(|s| s.rfilename == file);
        if sib.is_none() {
            return Err(CliError::new(
                code::MODEL_MISSING,
                format!(
                    "{} ({}) has no {file}: not a diffusers Stable Diffusion 1.x/2.x repo",
                    spec.repo, spec.revision
                ),
            ));
        }
        let expected = sib.and_then(|s| s.expected_size());
        let local = snap.join(&file);
        if force {
            forget(&local);
        }
        let have = file_len(&local);
        let fresh = match (have, expected) {
            (Some(h), Some(e)) => h == e,
            (Some(_), None) => true,
            _ => false,
        };
        let path = if fresh {
            local
        } else {
            if have.is_some() {
                forget(&local);
            }
            repo.download_with_progress(&file, download_bar(spec.progress))
                .map_err(|e| hub_error(spec, &format!("cannot download {file} of"), e))?
        };
        let got = file_len(&path).unwrap_or(0);
        if let Some(e) = expected {
            if got != e {
                forget(&path);
                return Err(CliError::new(
                    code::MODEL_INVALID,
                    format!(
                        "downloaded {file} of {} has {got} bytes but the Hub lists {e}; run the download again",
                        spec.repo
                    ),
                ));
            }
        }
        if file.ends_with(".safetensors.index.json") {
            let dir = Path::new(&file).parent().unwrap_or(Path::new(""));
            let text = std::fs::read_to_string(&path)?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                CliError::new(code::MODEL_INVALID, format!("{}: {e}", path.display()))
            })?;
            let mut shards: Vec<String> = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.values()
                        .filter_map(|s| s.as_str())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            for s in shards {
                let f = dir.join(s).to_string_lossy().replace('\\', "/");
                if !queue.contains(&f) {
                    queue.push(f);
                }
            }
        }
        done.push((file, got, !fresh));
    }
    let dir = snapshot_dir(&spec.repo, &listing.sha).unwrap_or(snap);
    // A download by commit leaves no branch ref; make the requested revision resolve.
    if !is_commit(&spec.revision) {
        let refs = repo_folder(&spec.repo).join("refs");
        let _ = std::fs::create_dir_all(&refs);
        let _ = std::fs::write(refs.join(&spec.revision), &listing.sha);
    }
    Ok(Downloaded {
        dir,
        commit: listing.sha,
        files: done,
    })
}

/// One cached repo.
#[derive(Debug, serde::Serialize)]
pub struct CachedModel {
    pub repo: String,
    pub revision: String,
    pub commit: String,
    pub path: PathBuf,
    pub complete: bool,
    pub missing: Vec<String>,
    pub bytes: u64,
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += dir_size(&p);
            } else if let Ok(m) = std::fs::metadata(&p) {
                total += m.len();
            }
        }
    }
    total
}

/// Every model repo in the hub cache with each of its refs.
pub fn list_cached() -> Vec<CachedModel> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(hub_cache_dir()) else {
        return out;
    };
    let mut folders: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("models--"))
        })
        .collect();
    folders.sort();
    for folder in folders {
        let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let repo = name["models--".len()..].replace("--", "/");
        let mut refs: Vec<(String, String)> = Vec::new();
        collect_refs(&folder.join("refs"), "", &mut refs);
        if refs.is_empty() {
            if let Ok(rd) = std::fs::read_dir(folder.join("snapshots")) {
                for e in rd.flatten() {
                    let c = e.file_name().to_string_lossy().into_owned();
                    refs.push((c.clone(), c));
                }
            }
        }
        refs.sort();
        let bytes = dir_size(&folder.join("blobs"));
        for (revision, commit) in refs {
            let path = folder.join("snapshots").join(&commit);
            let missing = missing_parts(&path);
            out.push(CachedModel {
                repo: repo.clone(),
                revision,
                commit,
                path,
                complete: missing.is_empty(),
                missing,
                bytes,
            });
        }
    }
    out
}

fn collect_refs(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        let p = e.path();
        if p.is_dir() {
            collect_refs(&p, &format!("{name}/"), out);
        } else if let Ok(c) = std::fs::read_to_string(&p) {
            out.push((name, c.trim().to_string()));
        }
    }
}

/// Checks a safetensors file's structure: header length, JSON header, and that the data
/// section is exactly as long as the header says (catches truncation and garbage).
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

/// Files under `dir` (following links), relative paths with `/`.
pub fn walk(dir: &Path) -> Vec<String> {
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    go(base, &p, out);
                } else if let Ok(r) = p.strip_prefix(base) {
                    out.push(r.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out.sort();
    out
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
