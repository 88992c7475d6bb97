//! Image decoding with the pixel limit: `ttpo::Image::decode(bytes, max_pixels)` on any
//! bytes (PNG, JPEG, BMP, TIFF are sniffed from the content). The first input byte picks
//! the limit (4 Ki to 16 Mi pixels), the rest is the file.
//!
//! Property: an `Err`, or an image within the limit with finite RGB samples in [0, 1] and,
//! if the file has alpha, one alpha sample in [0, 1] per pixel. Never a panic, and never an
//! allocation beyond what the limit allows (`-malloc_limit_mb`/`-rss_limit_mb`): the
//! header's size is checked before any pixel is decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&k, bytes)) = data.split_first() else {
        return;
    };
    let max_pixels = [1usize << 12, 1 << 16, 1 << 20, 1 << 24][k as usize % 4];
    let Ok(ttpo::image::Decoded { image: img, alpha }) = ttpo::Image::decode(bytes, max_pixels)
    else {
        return;
    };
    let (w, h) = (img.width(), img.height());
    assert!(
        w > 0 && h > 0 && w * h <= max_pixels,
        "{w}x{h} over {max_pixels}"
    );
    assert_eq!(img.data().len(), w * h * 3);
    let in_range = |v: &f32| v.is_finite() && (0.0..=1.0).contains(v);
    assert!(img.data().iter().all(in_range), "RGB sample outside [0, 1]");
    if let Some(a) = alpha {
        assert_eq!(a.len(), w * h, "alpha plane size");
        assert!(a.iter().all(in_range), "alpha sample outside [0, 1]");
    }
});
