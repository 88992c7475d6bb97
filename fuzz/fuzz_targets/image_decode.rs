//! Image decoding (placeholder until `ttpo::Image::decode` lands on main): the input is
//! written to a temporary file and read with `ttpo::Image::open`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&k, bytes)) = data.split_first() else {
        return;
    };
    let ext = ["png", "jpg", "bmp", "tiff"][k as usize % 4];
    let p = std::env::temp_dir().join(format!("ttpo-fuzz-img-{}.{ext}", std::process::id()));
    std::fs::write(&p, bytes).expect("write");
    if let Ok(img) = ttpo::Image::open(&p) {
        assert_eq!(img.data().len(), img.width() * img.height() * 3);
    }
});
