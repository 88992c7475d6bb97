//! Scores image files with no-reference quality metrics.
//!
//! `cargo run --release -p ttpo --example score -- --metric niqe,brisque,piqe [--brisque-model DIR] IMAGES... [--json]`
//!
//! With `--json`, one JSON object per image: `{"image": path, "niqe": v, ...}`; a metric that
//! cannot score an image gives `null` plus an `errors` entry.

use std::path::PathBuf;
use ttpo::{Image, Options};

fn main() {
    let mut opts = Options::default();
    let mut json = false;
    let mut images = Vec::new();
    let mut args = std::env::args().skip(1);
    let usage = "usage: score --metric niqe,brisque,piqe [--brisque-model DIR] [--clip-model DIR] IMAGES... [--json]";
    while let Some(a) = args.next() {
        match a.as_str() {
            "--metric" | "--metrics" => {
                opts.scoring.metrics = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            "--brisque-model" => opts.scoring.brisque_model = args.next().map(PathBuf::from),
            "--clip-model" => opts.scoring.clip_model = args.next().map(PathBuf::from),
            "--json" => json = true,
            _ if !a.starts_with("--") => images.push(a),
            _ => {
                eprintln!("{usage}");
                std::process::exit(2)
            }
        }
    }
    if images.is_empty() {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let metrics = ttpo::scoring::build_metrics(&opts.scoring).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    let mut failed = false;
    for path in &images {
        let img = match Image::open(path) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
                continue;
            }
        };
        let mut obj = serde_json::Map::new();
        obj.insert("image".into(), path.clone().into());
        let mut errors = serde_json::Map::new();
        for m in &metrics {
            match m.score(&img) {
                Ok(v) => {
                    obj.insert(m.name().into(), v.into());
                }
                Err(e) => {
                    obj.insert(m.name().into(), serde_json::Value::Null);
                    errors.insert(m.name().into(), e.to_string().into());
                    failed = true;
                }
            }
        }
        if !errors.is_empty() {
            obj.insert("errors".into(), errors.into());
        }
        if json {
            println!("{}", serde_json::Value::Object(obj));
        } else {
            let cols: Vec<String> = metrics
                .iter()
                .map(|m| match obj.get(m.name()).and_then(|v| v.as_f64()) {
                    Some(v) => format!("{}={v:.4}", m.name()),
                    None => format!("{}=n/a", m.name()),
                })
                .collect();
            println!("{path}\t{}", cols.join("\t"));
        }
    }
    std::process::exit(if failed { 1 } else { 0 });
}
