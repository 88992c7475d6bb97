//! Regression tests for what a careless or hostile user found in the CLI (issue #17): huge
//! images decoded before the pixel limit, alpha lost, odd sizes, output names refused only
//! after the whole job, garbage model folders.

mod common;

use common::*;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

fn model_args(c: &mut Command) -> &mut Command {
    c.arg("--model-dir")
        .arg(tiny_model())
        .args(["--progress", "none"])
}

/// Runs `c` to the end; returns (exit code, stderr, the child's peak RSS in KiB), measured
/// for this child alone (wait4), not for every child of the test process.
// The child is reaped by wait4 (which also returns its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn run_measured(c: &mut Command) -> (Option<i32>, String, i64) {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ttpo starts");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let mut status = 0;
    // SAFETY: plain libc call on our own child; `usage` is written by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, err, usage.ru_maxrss)
}

/// A valid `side x side` 1-bit grey PNG, all black: ~50 KB for 20000 px.
fn huge_black_png(path: &Path, side: u32) {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&body);
        let mut crc = flate2::Crc::new();
        crc.update(&body);
        png.extend_from_slice(&crc.sum().to_be_bytes());
    };
    let mut ihdr = side.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // 1-bit greyscale
    chunk(b"IHDR", &ihdr);
    let row = 1 + side.div_ceil(8) as usize; // filter byte + packed bits
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; row];
    for _ in 0..side {
        z.write_all(&zeros).unwrap();
    }
    chunk(b"IDAT", &z.finish().unwrap());
    chunk(b"IEND", &[]);
    std::fs::write(path, png).unwrap();
}

/// Found by a misuse run: a 48 KB PNG of 20000 x 20000 pixels was decoded (~4.8 GB RSS)
/// before the pixel limit refused it. Now the header is checked first.
#[test]
fn huge_png_is_refused_from_its_header() {
    let d = temp_dir("huge");
    let input = d.join("huge.png");
    huge_black_png(&input, 20000);
    assert!(std::fs::metadata(&input).unwrap().len() < 200_000);
    // The file is valid: the decoder reads its header as 20000 x 20000.
    let (w, h) = image::image_dimensions(&input).unwrap();
    assert_eq!((w, h), (20000, 20000));
    let (code, err, rss_kib) = run_measured(
        model_args(
            ttpo(&d)
                .arg("refine")
                .arg(&input)
                .arg("-o")
                .arg(d.join("o.png")),
        )
        .args(FAST),
    );
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("20000x20000") && err.contains("pixels"),
        "{err}"
    );
    assert!(
        rss_kib < 300 * 1024,
        "peak RSS {} MiB: the image was decoded",
        rss_kib / 1024
    );
    assert!(!d.join("o.png").exists());
}

/// Found by a misuse run: `ttpo refine` dropped the alpha of an RGBA input (the C API
/// keeps it). The output's alpha is the input's.
#[test]
fn rgba_input_keeps_its_alpha() {
    let d = temp_dir("alpha");
    let rgb = image::open(photo(&d, "rgb.png", 64, 3)).unwrap().to_rgb8();
    let mut rgba = image::RgbaImage::new(64, 64);
    for (x, y, p) in rgba.enumerate_pixels_mut() {
        let c = rgb.get_pixel(x, y).0;
        *p = image::Rgba([c[0], c[1], c[2], ((x * 4 + y) % 256) as u8]);
    }
    let input = d.join("in.png");
    rgba.save(&input).unwrap();
    for out in ["out.png", "out.tif"] {
        let out = d.join(out);
        run_ok(model_args(ttpo(&d).arg("refine").arg(&input).arg("-o").arg(&out)).args(FAST));
        let img = image::open(&out).unwrap();
        assert!(
            img.color().has_alpha(),
            "{}: {:?}",
            out.display(),
            img.color()
        );
        let got = img.to_rgba8();
        for (x, y, p) in rgba.enumerate_pixels() {
            assert_eq!(got.get_pixel(x, y).0[3], p.0[3], "alpha at ({x}, {y})");
        }
    }
}

/// Found by a misuse run: a 1x1 image exited 1 (generic) instead of 4 (bad input).
#[test]
fn tiny_images_are_bad_input() {
    let d = temp_dir("one");
    for (w, h) in [(1, 1), (1, 40), (40, 2)] {
        let input = d.join(format!("in{w}x{h}.png"));
        image::RgbImage::from_pixel(w, h, image::Rgb([120, 80, 40]))
            .save(&input)
            .unwrap();
        let e = model_args(
            ttpo(&d)
                .arg("refine")
                .arg(&input)
                .arg("-o")
                .arg(d.join("o.png")),
        )
        .args(FAST)
        .output()
        .unwrap();
        assert_eq!(e.status.code(), Some(4), "{w}x{h}: {}", stderr(&e));
        assert!(stderr(&e).contains(&format!("{w}x{h}")), "{}", stderr(&e));
    }
}

/// Found by a misuse run: an output name with an unknown or no extension was refused only
/// after the whole job, naming the hidden temporary file. Now it is a usage error before
/// the model is even looked for.
#[test]
fn bad_output_names_are_refused_first() {
    let d = temp_dir("ext");
    let input = photo(&d, "in.png", 64, 0);
    for name in ["out.xyz", "out", "out.gif"] {
        let e = ttpo(&d)
            .args(["--model-dir", "/nonexistent/model", "--progress", "none"])
            .arg("refine")
            .arg(&input)
            .arg("-o")
            .arg(d.join(name))
            .output()
            .unwrap();
        let err = stderr(&e);
        assert_eq!(e.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(name) && err.contains(".png"), "{name}: {err}");
        assert!(
            !err.contains("ttpo-tmp") && !err.contains("nonexistent"),
            "{err}"
        );
    }
    let e = ttpo(&d)
        .args(["--model-dir", "/nonexistent/model", "batch"])
        .arg(&d)
        .arg("-o")
        .arg(d.join("outdir"))
        .args(["--ext", "xyz"])
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(2), "{}", stderr(&e));
}

/// Found by a misuse run: a model_index.json of random bytes exited 1 (an I/O error)
/// instead of the documented 5 (model files unusable).
#[test]
fn garbage_model_index_exits_5() {
    let d = temp_dir("garbage");
    let model = d.join("model");
    copy_tree(&tiny_model(), &model);
    std::fs::write(
        model.join("model_index.json"),
        [0xFFu8, 0xFE, 0x00, 0x9C, 0x80, 0x01],
    )
    .unwrap();
    let input = photo(&d, "in.png", 64, 0);
    let e = ttpo(&d)
        .arg("--model-dir")
        .arg(&model)
        .args(["--progress", "none", "refine"])
        .arg(&input)
        .arg("-o")
        .arg(d.join("o.png"))
        .args(FAST)
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(5), "{}", stderr(&e));
    assert!(stderr(&e).contains("model_index.json"), "{}", stderr(&e));
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
