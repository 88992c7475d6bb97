//! The candidates folder's `candidates.json` (written by `ttpo candidates IN -o DIR`, read
//! by `ttpo refine --from DIR`), written and read with the same types.
//!
//! It lives in the CLI, not in core: the folder (candidate-NN.png, contact-sheet.png and
//! this file side by side) is the CLI's own artifact; the GIMP and OpenFX plug-ins keep a
//! job's candidates in memory behind the C ABI and never read it. The parts that are
//! core's — the options, the sheet's layout — are core's serde types.
//!
//! Format `ttpo-candidates`, version 1. Every version of the CLI so far wrote the same
//! fields (see git history of plugins/cli/src/main.rs); only the options' names changed,
//! and core's `Options` reads the old names. Reading is strict: a missing field, a value of
//! the wrong type or a generated candidate without its strength or seed is an error naming
//! the file, the line and the field — never a silent default.

use crate::error::{one_line, CliError, CliResult};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ttpo::{Candidate, CandidateSpec, Image, Options, Scores};

/// The value of the `format` field.
pub const FORMAT: &str = "ttpo-candidates";
/// The newest `version` this CLI writes and reads.
pub const VERSION: u32 = 1;
/// The file's name in the folder.
pub const FILE: &str = "candidates.json";
/// The contact sheet's name in the folder.
pub const SHEET_FILE: &str = "contact-sheet.png";

/// Candidate `i`'s image file in the folder.
pub fn candidate_file(i: usize) -> String {
    format!("candidate-{i:02}.png")
}

/// Makes an `Option` field required when read: present, `null` allowed. (Plain `Option`
/// fields may be absent, which would hide a truncated or hand-broken file.)
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::deserialize(d)
}

/// `candidates.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedCandidates {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format's version ([`VERSION`]).
    pub version: u32,
    /// The ttpo that wrote the file.
    pub ttpo_version: String,
    /// The image the candidates were made from.
    pub input: InputRecord,
    /// Where the model came from.
    pub model: ModelRef,
    /// The model's local folder.
    pub model_path: PathBuf,
    /// Every option of the job (core's serde form).
    pub options: Options,
    /// Stage II's scores (`null` when nothing scored).
    #[serde(deserialize_with = "nullable")]
    pub scores: Option<ScoresRecord>,
    /// One row per candidate; row 0 is the input.
    pub candidates: Vec<CandidateRecord>,
    /// The chosen pair (`null` when there was none).
    #[serde(deserialize_with = "nullable")]
    pub preferred: Option<usize>,
    /// See `preferred`.
    #[serde(deserialize_with = "nullable")]
    pub dispreferred: Option<usize>,
    /// The contact sheet's file and grid.
    pub contact_sheet: SheetRecord,
    /// How long the stages took.
    pub seconds: Seconds,
}

/// The input image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputRecord {
    /// As given on the command line.
    pub path: PathBuf,
    /// Pixels.
    pub width: usize,
    /// Pixels.
    pub height: usize,
    /// [`pixel_hash`] of the decoded pixels: `--from` refuses other images.
    pub sha256: String,
}

/// The model: a folder, or a Hub repo at a revision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelRef {
    /// `--model-dir` / `TTPO_MODEL_DIR`.
    Dir {
        /// The folder.
        dir: PathBuf,
    },
    /// A Hugging Face repo.
    Repo {
        /// `org/name`.
        repo: String,
        /// Branch, tag or commit.
        revision: String,
    },
}

/// Stage II's result apart from the per-candidate numbers (those are in the rows).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoresRecord {
    /// The metrics that scored.
    pub metrics: Vec<String>,
    /// Per metric.
    pub higher_is_better: Vec<bool>,
    /// Metrics left out, with why.
    pub dropped: Vec<DroppedMetric>,
    /// argmax of the fused score.
    pub preferred: usize,
    /// argmin of the fused score.
    pub dispreferred: usize,
}

/// A metric left out of scoring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DroppedMetric {
    /// Its name.
    pub metric: String,
    /// Why.
    pub reason: String,
}

impl ScoresRecord {
    pub fn new(s: &Scores) -> Self {
        Self {
            metrics: s.metrics.clone(),
            higher_is_better: s.higher_is_better.clone(),
            dropped: s
                .dropped
                .iter()
                .map(|(metric, reason)| DroppedMetric {
                    metric: metric.clone(),
                    reason: reason.clone(),
                })
                .collect(),
            preferred: s.preferred,
            dispreferred: s.dispreferred,
        }
    }
}

/// One candidate. The generator fields are `null` for the input (row 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateRecord {
    /// Its index (= its position).
    pub index: usize,
    /// Whether it is the input itself.
    pub is_input: bool,
    /// Backbone index in the engine.
    #[serde(deserialize_with = "nullable")]
    pub backbone: Option<usize>,
    /// img2img strength.
    #[serde(deserialize_with = "nullable")]
    pub strength: Option<f64>,
    /// The noise seed used.
    #[serde(deserialize_with = "nullable")]
    pub seed: Option<u64>,
    /// Which of the job's seeds.
    #[serde(deserialize_with = "nullable")]
    pub seed_index: Option<usize>,
    /// Its image in the folder (absent in `refine --json` reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Raw score per metric (`null`: not finite), when scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, Option<f64>>>,
    /// Fused score, when scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fused: Option<f64>,
}

impl CandidateRecord {
    /// The rows of a job's candidates; `files`: name each candidate's image file.
    pub fn rows(cands: &[Candidate], scores: Option<&Scores>, files: bool) -> Vec<Self> {
        cands
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let spec = c.spec.as_ref();
                Self {
                    index: i,
                    is_input: spec.is_none(),
                    backbone: spec.map(|s| s.backbone),
                    strength: spec.map(|s| s.strength),
                    seed: spec.map(|s| s.seed),
                    seed_index: spec.map(|s| s.seed_index),
                    file: files.then(|| candidate_file(i)),
                    metrics: scores.map(|s| {
                        s.metrics
                            .iter()
                            .zip(&s.per_metric[i])
                            .map(|(n, v)| (n.clone(), Some(*v)))
                            .collect()
                    }),
                    fused: scores.map(|s| s.fused[i]),
                }
            })
            .collect()
    }

    /// How a generated candidate was made; `Ok(None)` for the input. `at` names the row.
    fn spec(&self, at: &str) -> Result<Option<CandidateSpec>, String> {
        if self.is_input {
            return Ok(None);
        }
        let need = |field: &str, v: Option<()>| {
            v.ok_or_else(|| format!("{at}.{field} is null, but the candidate is not the input"))
        };
        need("backbone", self.backbone.map(drop))?;
        need("strength", self.strength.map(drop))?;
        need("seed", self.seed.map(drop))?;
        need("seed_index", self.seed_index.map(drop))?;
        need("file", self.file.as_ref().map(drop))?;
        Ok(Some(CandidateSpec {
            backbone: self.backbone.unwrap_or_default(),
            strength: self.strength.unwrap_or_default(),
            seed: self.seed.unwrap_or_default(),
            seed_index: self.seed_index.unwrap_or_default(),
        }))
    }
}

/// The contact sheet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SheetRecord {
    /// Its file in the folder.
    pub file: String,
    /// Where the tiles are.
    pub layout: ttpo::sheet::Layout,
}

/// Seconds per stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seconds {
    /// Loading the model.
    pub load: f64,
    /// Stage I.
    pub candidates: f64,
    /// Stage II.
    pub scoring: f64,
}

/// SHA-256 over the decoded pixels (size + f32 samples), independent of file format.
pub fn pixel_hash(img: &Image) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((img.width() as u64).to_le_bytes());
    h.update((img.height() as u64).to_le_bytes());
    for v in img.data() {
        h.update(v.to_le_bytes());
    }
    crate::models::hex(&h.finalize())
}

impl SavedCandidates {
    /// The chosen pair, when the file has one.
    pub fn choice(&self) -> Option<(usize, usize)> {
        self.preferred.zip(self.dispreferred)
    }

    /// Writes `DIR/candidates.json` (atomically).
    pub fn write(&self, dir: &Path) -> CliResult<()> {
        let text = serde_json::to_string_pretty(self).expect("the saved types serialize");
        crate::ui::save_text(&text, &dir.join(FILE))
    }

    /// Reads `DIR/candidates.json`. `--from DIR` is the option being served (for messages).
    pub fn read(dir: &Path) -> CliResult<Self> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            CliError::usage(format!(
                "--from {}: cannot read {FILE} ({e}); make it with `ttpo candidates IN -o {}`",
                dir.display(),
                dir.display()
            ))
        })?;
        Self::parse(&text).map_err(|m| CliError::generic(format!("{}: {m}", path.display())))
    }

    /// Parses the file's text; the error names the line and the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        // The format and version first, so that another file or a newer version is named as
        // such rather than as a missing field.
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
            version: Option<u32>,
        }
        let head: Head = serde_json::from_str(text)
            .map_err(|e| format!("not a valid candidates file: {}", one_line(&e.to_string())))?;
        if head.format.as_deref() != Some(FORMAT) {
            return Err(format!(
                "not a candidates file (format is {:?}, expected {FORMAT:?})",
                head.format.unwrap_or_default()
            ));
        }
        match head.version {
            Some(v) if v <= VERSION => {}
            v => {
                return Err(format!(
                    "candidates file version {} is not readable by ttpo {} (it reads up to {VERSION}); make the candidates again",
                    v.map_or("missing".into(), |v| v.to_string()),
                    ttpo::VERSION
                ))
            }
        }
        serde_json::from_str(text).map_err(|e| {
            // serde_json reports a wrong value just after it, and a missing field just after
            // the object that lacks it: either way the path there names the place.
            let at = json_path_at(text, e.line(), e.column());
            let msg = e.to_string();
            let field = if at.is_empty() {
                "the top level".to_string()
            } else {
                format!("`{}`", join_path(&at))
            };
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            format!("line {}: {field}: {msg}", e.line())
        })
    }

    /// The saved candidates as the job's, after checking that they were made from `input`:
    /// candidate 0 is `input` itself, the others are read from their files in `dir`.
    pub fn load_candidates(&self, dir: &Path, input: &Image) -> CliResult<Vec<Candidate>> {
        if self.input.sha256 != pixel_hash(input) {
            return Err(CliError::usage(format!(
                "--from {}: the saved candidates were made from a different image ({}); run `ttpo candidates` on this input first",
                dir.display(),
                self.input.path.display()
            )));
        }
        let bad = |m: String| CliError::generic(format!("{}: {m}", dir.join(FILE).display()));
        // Every row is checked before any image is read.
        let mut specs = Vec::with_capacity(self.candidates.len());
        for (i, row) in self.candidates.iter().enumerate() {
            let at = format!("candidates[{i}]");
            if row.index != i {
                return Err(bad(format!("{at}.index is {}, expected {i}", row.index)));
            }
            specs.push(row.spec(&at).map_err(bad)?);
        }
        let mut candidates = Vec::with_capacity(specs.len());
        // After a restore step candidate 0 is the restored input, read from its file.
        let restored = self.options.restore.is_some();
        for (row, spec) in self.candidates.iter().zip(specs) {
            if spec.is_none() && !restored {
                candidates.push(Candidate {
                    spec: None,
                    image: input.clone(),
                });
                continue;
            }
            let file = dir.join(row.file.as_deref().unwrap_or_default());
            let image = Image::open(&file).map_err(|e| {
                CliError::generic(format!(
                    "--from {}: cannot read saved candidate {}: {}",
                    dir.display(),
                    file.display(),
                    one_line(&e.to_string())
                ))
            })?;
            candidates.push(Candidate { spec, image });
        }
        Ok(candidates)
    }
}

/// One step of a JSON path: an object key or an array index.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn join_path(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) if s.is_empty() => s.push_str(k),
            Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The path of the value being read at (`line`, `column`) — 1-based, as serde_json reports
/// an error — in a JSON `text`: serde_json says where, this says which field.
fn json_path_at(text: &str, line: usize, column: usize) -> Vec<Step> {
    // One frame per open container: its current key or index, and (objects) whether a key
    // is expected next.
    let mut stack: Vec<(Option<Step>, bool)> = Vec::new();
    let (mut l, mut c) = (1, 0);
    let mut bytes = text.bytes().peekable();
    while let Some(b) = bytes.next() {
        if b == b'\n' {
            l += 1;
            c = 0;
        } else {
            c += 1;
        }
        if (l, c) > (line, column) {
            break;
        }
        match b {
            b'{' => stack.push((None, true)),
            b'[' => stack.push((Some(Step::Index(0)), false)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some((Some(Step::Index(i)), _)) => *i += 1,
                Some((key, expect_key)) => {
                    *key = None;
                    *expect_key = true;
                }
                None => {}
            },
            b'"' => {
                let mut s = Vec::new();
                while let Some(b) = bytes.next() {
                    c += 1;
                    match b {
                        b'\\' => {
                            if let Some(e) = bytes.next() {
                                c += 1;
                                s.push(e);
                            }
                        }
                        b'"' => break,
                        _ => s.push(b),
                    }
                }
                if let Some((key, expect_key @ true)) = stack.last_mut() {
                    *key = Some(Step::Key(String::from_utf8_lossy(&s).into_owned()));
                    *expect_key = false;
                }
            }
            _ => {}
        }
    }
    stack.into_iter().filter_map(|(step, _)| step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SavedCandidates {
        let scores = Scores {
            metrics: vec!["piqe".into(), "sharpness".into()],
            higher_is_better: vec![false, true],
            per_metric: vec![vec![30.0, 0.5], vec![20.0, f64::NAN], vec![25.0, 0.7]],
            fused: vec![-0.5, 1.25, 0.0],
            dropped: vec![("niqe".into(), "image too small".into())],
            preferred: 1,
            dispreferred: 0,
        };
        let input = Image::filled(4, 3, [0.25, 0.5, 0.75]).unwrap();
        let cands: Vec<Candidate> = [None, Some((0.3, 11)), Some((0.5, 12))]
            .into_iter()
            .enumerate()
            .map(|(i, s)| Candidate {
                spec: s.map(|(strength, seed)| CandidateSpec {
                    backbone: 0,
                    strength,
                    seed,
                    seed_index: i,
                }),
                image: input.clone(),
            })
            .collect();
        SavedCandidates {
            format: FORMAT.into(),
            version: VERSION,
            ttpo_version: ttpo::VERSION.into(),
            input: InputRecord {
                path: "in.png".into(),
                width: 4,
                height: 3,
                sha256: pixel_hash(&input),
            },
            model: ModelRef::Repo {
                repo: "org/model".into(),
                revision: "main".into(),
            },
            model_path: "/models/x".into(),
            options: Options {
                steps: 7,
                ..Options::default()
            },
            scores: Some(ScoresRecord::new(&scores)),
            candidates: CandidateRecord::rows(&cands, Some(&scores), true),
            preferred: Some(1),
            dispreferred: Some(0),
            contact_sheet: SheetRecord {
                file: SHEET_FILE.into(),
                layout: ttpo::sheet::Layout::for_count(3),
            },
            seconds: Seconds {
                load: 1.5,
                candidates: 2.0,
                scoring: 0.25,
            },
        }
    }

    fn text_of(v: &serde_json::Value) -> String {
        serde_json::to_string_pretty(v).unwrap()
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let text = serde_json::to_string_pretty(&s).unwrap();
        let back = SavedCandidates::parse(&text).unwrap();
        // A non-finite score is saved as null and reads back as "no value".
        let mut expect = s.clone();
        expect.candidates[1]
            .metrics
            .as_mut()
            .unwrap()
            .insert("sharpness".into(), None);
        assert_eq!(back, expect);
        assert_eq!(back.choice(), Some((1, 0)));
        assert_eq!(back.candidates[2].spec("c").unwrap().unwrap().seed, 12);
        assert_eq!(back.candidates[0].spec("c").unwrap(), None);
        // The keys the first version wrote, and nothing renamed.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for k in [
            "format",
            "version",
            "ttpo_version",
            "input",
            "model",
            "model_path",
            "options",
            "scores",
            "candidates",
            "preferred",
            "dispreferred",
            "contact_sheet",
            "seconds",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["candidates"][1]["file"], "candidate-01.png");
        assert_eq!(v["candidates"][0]["strength"], serde_json::Value::Null);
        assert_eq!(v["contact_sheet"]["layout"]["cols"], 2);
    }

    /// A file as the first version wrote it (options nested the old way, no clip_model,
    /// no newer options) loads, with the old option names upgraded.
    #[test]
    fn first_version_file_loads() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["options"] = serde_json::json!({
            "prompt": "p", "negative_prompt": "", "strengths": [0.3, 0.5],
            "seeds_per_strength": 1, "seed": 5, "steps": 9, "cfg_scale": 2.0, "eta": 0.0,
            "max_batch": 4, "fusion": "zscore", "metrics": ["piqe"], "brisque_model": null,
            "pad": "zero", "max_pixels": 1000000,
            "refine": {"steps": 5, "t1": 700.0, "t2": 100.0, "alpha": 0.5, "guidance": 77.0,
                       "d0": 0.9, "start": "noise"},
        });
        v["model"] = serde_json::json!({"dir": "/m"});
        let s = SavedCandidates::parse(&text_of(&v)).unwrap();
        assert_eq!(s.options.steps, 9);
        assert_eq!(s.options.pad_mode, ttpo::PadMode::Zero);
        assert_eq!(s.options.refine.steps, 5);
        assert_eq!(s.model, ModelRef::Dir { dir: "/m".into() });
    }

    fn error_of(v: &serde_json::Value) -> String {
        SavedCandidates::parse(&text_of(v)).unwrap_err()
    }

    #[test]
    fn a_missing_field_is_named_with_its_place() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["candidates"][2]
            .as_object_mut()
            .unwrap()
            .remove("strength");
        let e = error_of(&v);
        assert!(
            e.contains("`candidates[2]`") && e.contains("missing field `strength`"),
            "{e}"
        );
        assert!(e.starts_with("line "), "{e}");

        let mut v = serde_json::to_value(sample()).unwrap();
        v["input"].as_object_mut().unwrap().remove("sha256");
        let e = error_of(&v);
        assert!(e.contains("`input`: missing field `sha256`"), "{e}");

        let mut v = serde_json::to_value(sample()).unwrap();
        v.as_object_mut().unwrap().remove("preferred");
        let e = error_of(&v);
        assert!(
            e.contains("the top level: missing field `preferred`"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_type_is_named_with_its_place() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["candidates"][1]["seed"] = serde_json::json!("eleven");
        let e = error_of(&v);
        assert!(
            e.contains("`candidates[1].seed`: invalid type: string \"eleven\""),
            "{e}"
        );
        let mut v = serde_json::to_value(sample()).unwrap();
        v["options"]["steps"] = serde_json::json!("six");
        let e = error_of(&v);
        assert!(e.contains("`options`") && e.contains("\"six\""), "{e}");
    }

    #[test]
    fn a_generated_candidate_needs_its_generator() {
        let mut s = sample();
        s.candidates[2].seed = None;
        let text = serde_json::to_string(&s).unwrap();
        let back = SavedCandidates::parse(&text).unwrap();
        let dir = std::env::temp_dir();
        let input = Image::filled(4, 3, [0.25, 0.5, 0.75]).unwrap();
        let e = back.load_candidates(&dir, &input).unwrap_err();
        assert!(
            e.message.contains("candidates[2].seed is null"),
            "{}",
            e.message
        );
        let e = back
            .load_candidates(&dir, &Image::filled(4, 3, [0.0; 3]).unwrap())
            .unwrap_err();
        assert!(e.message.contains("different image"), "{}", e.message);
    }

    #[test]
    fn corrupt_and_foreign_files_are_refused() {
        let text = serde_json::to_string_pretty(&sample()).unwrap();
        let e = SavedCandidates::parse(&text[..text.len() / 2]).unwrap_err();
        assert!(e.starts_with("not a valid candidates file: EOF"), "{e}");
        let e = SavedCandidates::parse("[1, 2]").unwrap_err();
        assert!(e.starts_with("not a valid candidates file"), "{e}");
        let e = SavedCandidates::parse(r#"{"format": "other", "version": 1}"#).unwrap_err();
        assert!(e.contains("not a candidates file"), "{e}");
        let mut v = serde_json::to_value(sample()).unwrap();
        v["version"] = serde_json::json!(2);
        assert!(error_of(&v).contains("file version 2 is not readable"));
    }

    #[test]
    fn paths_in_json_text() {
        let t = "{\"a\": {\"b\": [1, {\"c\\\"x\": 2}]}, \"d\": 3}";
        let at = |col| join_path(&json_path_at(t, 1, col));
        assert_eq!(at(t.find("2}").unwrap() + 1), "a.b[1].c\"x");
        assert_eq!(at(t.find("1,").unwrap() + 1), "a.b[0]");
        assert_eq!(at(t.find("3}").unwrap() + 1), "d");
    }
}
