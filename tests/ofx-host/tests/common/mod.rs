//! What the tests of the plug-in share: the bundle (built once per test binary), a tiny
//! model, a photo crop, temp folders.
#![allow(dead_code)] // each test binary uses its own part

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ttpo_ofx_host::Val;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Builds the bundle with plugins/ofx/bundle.sh (release, incremental) once per process.
pub fn bundle() -> PathBuf {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let out = Command::new("bash")
            .arg(root().join("plugins/ofx/bundle.sh"))
            .env_remove("TTPO_OFX_ZIGBUILD")
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "bundle.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_string();
        PathBuf::from(path)
    })
    .clone()
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ttpo-ofx-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn tiny_model() -> PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        let d = temp_dir("model").join("tiny-sd");
        ttpo::diffusion::tiny::write_tiny_model(&d, ttpo::diffusion::tiny::TinyKind::Epsilon, 0)
            .expect("tiny model");
        d
    })
    .clone()
}

/// A centred crop of a real photo, resized to `side` px.
pub fn photo(side: u32) -> image::RgbaImage {
    let assets = std::env::var_os("TTPO_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/assets"));
    let p = assets.join("photos/astronaut.png");
    let img = image::open(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-assets.sh)", p.display()))
        .to_rgba8();
    let s = img.width().min(img.height()) / 2;
    let c = image::imageops::crop_imm(&img, (img.width() - s) / 2, (img.height() - s) / 2, s, s)
        .to_image();
    image::imageops::resize(&c, side, side, image::imageops::FilterType::Triangle)
}

pub fn s(v: &str) -> Val {
    Val::Str(CString::new(v).unwrap())
}

/// Renders `img` as 8-bit RGBA (rows bottom-up, whole frame, scale 1, time 0): status and output.
pub fn render8(
    p: &ttpo_ofx_host::Plugin,
    inst: &ttpo_ofx_host::Effect,
    img: &image::RgbaImage,
) -> (ttpo_ofx_host::ofx::OfxStatus, ttpo_ofx_host::ImageBuf) {
    use ttpo_ofx_host::{ofx::DEPTH_BYTE, ImageBuf, Rows};
    let src = ImageBuf::from_rgba8(img, DEPTH_BYTE, 4, Rows::BottomUp, 0);
    p.render(inst, src, DEPTH_BYTE, 4, Rows::BottomUp, None, 1.0, 0.0)
}
