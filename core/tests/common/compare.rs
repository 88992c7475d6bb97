//! Comparing tensors with reference tensors (the conformance tests): the error measure,
//! the printed report line and the failure collector.

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One reference folder's `reference.safetensors` and `reference.json`.
pub struct Reference {
    /// The folder's name (the case in the report).
    pub name: &'static str,
    /// The reference tensors.
    pub t: HashMap<String, Tensor>,
    /// `reference.json`.
    pub meta: serde_json::Value,
}

impl Reference {
    /// Reads both files of `dir`; panics (fails the test) when they are unusable.
    pub fn load(name: &'static str, dir: &Path) -> Self {
        let t = candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: reference.safetensors: {e}"));
        let meta = serde_json::from_str(
            &std::fs::read_to_string(dir.join("reference.json")).expect("reference.json"),
        )
        .expect("reference.json parses");
        Self { name, t, meta }
    }

    /// A reference tensor; panics when missing.
    pub fn get(&self, key: &str) -> &Tensor {
        self.t
            .get(key)
            .unwrap_or_else(|| panic!("{}: reference tensor {key} missing", self.name))
    }
}

/// `path` as given, or relative to the workspace root when relative (cargo runs test
/// binaries in the package folder, not where `cargo test` was typed).
pub fn from_workspace(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
    }
}

/// All values as f64, flattened.
pub fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// `max |got - want| / max |want|`, in f64; shapes must match.
pub fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.dims(), want.dims(), "shape mismatch");
    let (g, w) = (f64s(got), f64s(want));
    let diff = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let scale = w.iter().map(|v| v.abs()).fold(0.0, f64::max);
    assert!(g.iter().all(|v| v.is_finite()), "non-finite output");
    diff / scale.max(1e-30)
}

/// Compares, prints the measured error, and returns whether it is within `tol`.
pub fn check(case: &str, what: &str, got: &Tensor, want: &Tensor, tol: f64) -> bool {
    let e = rel_err(got, want);
    let ok = e <= tol;
    println!(
        "conformance {case:8} {what:42} max rel err {e:.3e}  (tol {tol:.0e}) {}",
        if ok { "ok" } else { "FAIL" }
    );
    ok
}

/// Collects failures so every comparison is printed before the test fails.
#[derive(Default)]
pub struct Failures(pub Vec<String>);
impl Failures {
    pub fn check(&mut self, case: &str, what: &str, got: &Tensor, want: &Tensor, tol: f64) {
        if !check(case, what, got, want, tol) {
            self.0.push(format!("{case}: {what}"));
        }
    }
    pub fn expect(&mut self, ok: bool, msg: String) {
        if !ok {
            println!("conformance FAIL {msg}");
            self.0.push(msg);
        }
    }
    pub fn finish(self) {
        assert!(self.0.is_empty(), "failed comparisons: {:#?}", self.0);
    }
}
