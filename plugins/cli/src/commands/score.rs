//! `ttpo score`: no-reference quality metrics of image files, as a table or JSON.

use crate::args::{Global, ScoreArgs};
use crate::error::{self, CliError, CliResult};
use crate::ui;
use serde_json::{json, Value};
use ttpo::Image;

pub fn run(g: &Global, a: ScoreArgs) -> CliResult<()> {
    let mut scoring = ttpo::ScoringOptions {
        metrics: a.metrics.clone().unwrap_or_default(),
        brisque_model: a.brisque_model.clone(),
        clip_model: a.clip_model.clone(),
        iqa_model_dir: a.iqa_model_dir.clone(),
        ..Default::default()
    };
    ttpo::scoring::check_names(&scoring.metrics)?;
    crate::models::resolve_iqa(&crate::engine::model_spec(g, None), &mut scoring)?;
    let metrics = ttpo::scoring::build_metrics(&scoring)?;
    let names: Vec<String> = metrics.iter().map(|m| m.name().to_string()).collect();
    let mut rows = Vec::new();
    let mut bad_input = None;
    for path in &a.images {
        ui::check_interrupt()?;
        let img = match Image::open(path) {
            Ok(i) => i,
            Err(e) => {
                let e = CliError::from_input(e);
                rows.push(json!({"path": path, "error": e.message}));
                bad_input.get_or_insert(e);
                continue;
            }
        };
        let mut scores = serde_json::Map::new();
        let mut errors = serde_json::Map::new();
        for m in &metrics {
            match m.score(&img) {
                Ok(v) => {
                    scores.insert(m.name().into(), json!(v));
                }
                Err(e) => {
                    scores.insert(m.name().into(), Value::Null);
                    errors.insert(m.name().into(), json!(error::one_line(&e.to_string())));
                }
            }
        }
        rows.push(json!({
            "path": path, "width": img.width(), "height": img.height(),
            "scores": scores, "errors": errors,
        }));
    }
    if a.json {
        let info: Vec<Value> = metrics
            .iter()
            .map(|m| json!({"name": m.name(), "higher_is_better": m.higher_is_better()}))
            .collect();
        println!("{}", json!({"metrics": info, "images": rows}));
    } else {
        let pw = a
            .images
            .iter()
            .map(|p| p.display().to_string().chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut head = format!("{:<pw$}", "image");
        for (n, m) in names.iter().zip(&metrics) {
            let arrow = if m.higher_is_better() { "↑" } else { "↓" };
            head.push_str(&format!("  {:>12}", format!("{n}{arrow}")));
        }
        println!("{head}");
        for row in &rows {
            let p = row["path"].as_str().unwrap_or("?");
            let mut line = format!("{p:<pw$}");
            if let Some(err) = row.get("error") {
                line.push_str(&format!("  error: {}", err.as_str().unwrap_or("")));
            } else {
                for n in &names {
                    let cell = row["scores"][n]
                        .as_f64()
                        .map(|v| format!("{v:.4}"))
                        .unwrap_or_else(|| "n/a".into());
                    line.push_str(&format!("  {cell:>12}"));
                }
            }
            println!("{line}");
        }
        for row in &rows {
            if let Some(errs) = row.get("errors").and_then(Value::as_object) {
                for (m, e) in errs {
                    eprintln!(
                        "note: {} {m}: {}",
                        row["path"].as_str().unwrap_or("?"),
                        e.as_str().unwrap_or("")
                    );
                }
            }
        }
    }
    match bad_input {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
