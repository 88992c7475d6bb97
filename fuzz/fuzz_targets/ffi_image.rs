//! `ttpo_image` descriptions across the C ABI: any width, height, stride (negative, huge,
//! overflowing), format and layout.
//!
//! Input side: `ttpo_job_new` (the real export) reads the described buffer. Output side:
//! the boundary's own `validate` + `write`, exactly as `ttpo_job_candidate_image` uses them,
//! then a read-back checks the written pixels.
//!
//! The buffer is owned here and sized so that every description valid under the header's
//! contract lies inside it, exactly (AddressSanitizer flags a read or write one byte past).
//! Property: the call returns a defined status, or it stays inside the buffer; a
//! description no buffer can satisfy (its extent overflows the address space) must be
//! refused with a status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::ffi::c_void;
use ttpo_ffi::image::{read, ttpo_image, validate, write};
use ttpo_ffi::job::{ttpo_job_free, ttpo_job_new};
use ttpo_ffi::options::{
    ttpo_options_free, ttpo_options_new, ttpo_options_set_max_pixels, ttpo_options_set_metrics,
};
use ttpo_fuzz::{check_status, engine, Bytes};

/// Largest buffer the target provides; valid descriptions needing more are skipped (a
/// 65536-pixel grey u8 row still fits). Bigger buffers only slow the target down.
const CAP: u128 = 1 << 18;
const OK: u32 = 0;
const INVALID_ARGUMENT: u32 = 2;
const INVALID_IMAGE: u32 = 3;

struct Desc {
    width: u32,
    height: u32,
    stride: isize,
    format: u32,
    layout: u32,
}

fn desc(b: &mut Bytes) -> Desc {
    let width = b.size();
    let height = b.size();
    let format = if b.u8() < 240 {
        b.u8() as u32 % 3
    } else {
        b.u32()
    };
    let layout = if b.u8() < 240 {
        b.u8() as u32 % 3
    } else {
        b.u32()
    };
    let row = width as i128
        * [1, 3, 4].get(layout as usize).unwrap_or(&1)
        * [1, 2, 4].get(format as usize).unwrap_or(&1);
    let stride = match b.u8() % 8 {
        0 => b.u64() as i64 as isize,
        1 => [
            isize::MIN,
            isize::MAX,
            isize::MIN + 1,
            isize::MAX / 2,
            -1,
            0,
        ][b.u8() as usize % 6],
        // A packed or padded row, either direction.
        k => {
            let s = row.saturating_add(b.u8() as i128 % 9 - 1);
            let s = if k % 2 == 0 { -s } else { s };
            s.clamp(isize::MIN as i128, isize::MAX as i128) as isize
        }
    };
    Desc {
        width,
        height,
        stride,
        format,
        layout,
    }
}

enum Plan {
    /// Valid under the contract, and the target can own a buffer of `len` bytes.
    InBounds { len: usize, row: usize },
    /// Valid under the contract but larger than the target provides: not called.
    TooLarge,
    /// Invalid, or no buffer could hold it: must be refused without a read.
    Refuse,
}

fn plan(d: &Desc, max_pixels: u64) -> Plan {
    let (w, h) = (d.width as u128, d.height as u128);
    let (Some(ch), Some(sb)) = (
        [1u128, 3, 4].get(d.layout as usize),
        [1u128, 2, 4].get(d.format as usize),
    ) else {
        return Plan::Refuse;
    };
    let row = w * ch * sb;
    let stride = d.stride.unsigned_abs() as u128;
    if w == 0 || h == 0 || w > 65536 || h > 65536 || w * h > max_pixels as u128 || stride < row {
        return Plan::Refuse;
    }
    // Bytes from the lowest to the highest address touched.
    let extent = stride * (h - 1) + row;
    if extent > isize::MAX as u128 {
        Plan::Refuse
    } else if extent > CAP {
        Plan::TooLarge
    } else {
        Plan::InBounds {
            len: extent as usize,
            row: row as usize,
        }
    }
}

/// The description's data pointer into `buf` (the top row; the last row for a bottom-up
/// buffer comes first in memory).
fn image_in(buf: &mut [u8], d: &Desc) -> ttpo_image {
    let start = if d.stride < 0 {
        d.stride.unsigned_abs() * (d.height as usize - 1)
    } else {
        0
    };
    ttpo_image {
        data: buf[start..].as_mut_ptr() as *mut c_void,
        width: d.width,
        height: d.height,
        stride: d.stride,
        format: d.format,
        layout: d.layout,
    }
}

fn junk(len: usize, seed: &[u8]) -> Vec<u8> {
    let seed = if seed.is_empty() { &[0x5a][..] } else { seed };
    seed.iter().copied().cycle().take(len).collect()
}

fn input_side(d: &Desc, max_pixels: u64, seed: &[u8]) {
    let p = plan(d, max_pixels);
    let mut buf = match p {
        Plan::InBounds { len, .. } => junk(len, seed),
        Plan::TooLarge => return,
        Plan::Refuse => junk(64, seed),
    };
    let img = match p {
        Plan::InBounds { .. } => image_in(&mut buf, d),
        _ => ttpo_image {
            data: buf.as_mut_ptr() as *mut c_void,
            width: d.width,
            height: d.height,
            stride: d.stride,
            format: d.format,
            layout: d.layout,
        },
    };
    // SAFETY: the options object is created, used and freed here; the engine is valid;
    // `img` describes memory as the contract demands whenever it is valid.
    unsafe {
        let opts = ttpo_options_new();
        assert!(!opts.is_null());
        assert_eq!(ttpo_options_set_max_pixels(opts, max_pixels), OK);
        // The cheapest metric: a job is created, never run.
        assert_eq!(ttpo_options_set_metrics(opts, c"sharpness".as_ptr()), OK);
        let mut job = std::ptr::null_mut();
        let st = ttpo_job_new(engine(), opts, &img, &mut job);
        ttpo_options_free(opts);
        check_status("ttpo_job_new", st);
        match p {
            Plan::InBounds { .. } => {
                // Left to refuse: non-finite f32 samples, and images under a job's minimum
                // side.
                let small = (d.width.min(d.height) as usize) < ttpo::MIN_SIDE;
                assert!(
                    st == OK || (st == INVALID_IMAGE && (d.format == 2 || small)),
                    "valid description refused: {st}"
                );
            }
            _ => assert!(
                st == INVALID_ARGUMENT || st == INVALID_IMAGE,
                "invalid description (w {} h {} stride {} format {} layout {}) gave {st}",
                d.width,
                d.height,
                d.stride,
                d.format,
                d.layout
            ),
        }
        assert_eq!(st == OK, !job.is_null());
        ttpo_job_free(job);
    }
}

fn output_side(d: &Desc, seed: &[u8]) {
    // `ttpo_job_candidate_image` validates with no pixel limit.
    let p = plan(d, u64::MAX);
    let mut buf = match p {
        Plan::InBounds { len, .. } => junk(len, seed),
        Plan::TooLarge => return,
        Plan::Refuse => junk(64, seed),
    };
    let out = match p {
        Plan::InBounds { .. } => image_in(&mut buf, d),
        _ => ttpo_image {
            data: buf.as_mut_ptr() as *mut c_void,
            width: d.width,
            height: d.height,
            stride: d.stride,
            format: d.format,
            layout: d.layout,
        },
    };
    let shape = match validate(&out, usize::MAX) {
        Ok(s) => s,
        Err(f) => {
            check_status("validate", f.status as u32);
            assert!(
                !matches!(p, Plan::InBounds { .. }),
                "valid output refused: {}",
                f.message
            );
            return;
        }
    };
    let Plan::InBounds { row, .. } = p else {
        panic!(
            "validate accepted an output no buffer can hold (w {} h {} stride {})",
            d.width, d.height, d.stride
        );
    };
    let (w, h) = (d.width as usize, d.height as usize);
    let rgb: Vec<f32> = (0..w * h * 3)
        .map(|i| seed.get(i % seed.len().max(1)).copied().unwrap_or(0) as f32 / 255.0)
        .collect();
    let alpha: Vec<f32> = (0..w * h).map(|i| (i % 256) as f32 / 255.0).collect();
    let img = ttpo::Image::from_rgb(w, h, rgb).expect("valid image");
    let before = buf.clone();
    // SAFETY: `out` lies inside `buf` as validated.
    unsafe { write(&out, &shape, &img, Some(&alpha)) }.unwrap_or_else(|f| {
        panic!("write failed: {}", f.message);
    });
    // Bytes outside the rows (the padding of each stride) are left alone.
    let base = out.data as usize - buf.as_ptr() as usize;
    let mut in_row = vec![false; buf.len()];
    for y in 0..h {
        let start = (base as isize + d.stride * y as isize) as usize;
        in_row[start..start + row].fill(true);
    }
    for (i, (a, b)) in buf.iter().zip(&before).enumerate() {
        assert!(in_row[i] || a == b, "padding byte {i} written");
    }
    // Read back: what was written is the image, to the precision of the format.
    let (back, back_alpha) =
        unsafe { read(&out, &shape) }.unwrap_or_else(|f| panic!("read-back: {}", f.message));
    let tol = [1.0 / 255.0, 1.0 / 65535.0, 1e-6][d.format as usize] as f32;
    let ch = shape.channels();
    for (i, px) in back.data().chunks_exact(3).enumerate() {
        let want = img.pixel(i % w, i / w);
        let want = if ch == 1 {
            let l = (0.299 * want[0] + 0.587 * want[1] + 0.114 * want[2]).clamp(0.0, 1.0);
            [l; 3]
        } else {
            want
        };
        for c in 0..3 {
            assert!(
                (px[c] - want[c]).abs() <= tol,
                "pixel {i} channel {c}: wrote {}, read {}",
                want[c],
                px[c]
            );
        }
    }
    assert_eq!(back_alpha.is_some(), ch == 4);
    if let Some(a) = back_alpha {
        for (i, v) in a.iter().enumerate() {
            assert!((v - alpha[i]).abs() <= tol, "alpha {i}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let max_pixels = match b.u8() % 4 {
        0 => 1 << 12,
        1 => 1 << 20,
        2 => u64::MAX,
        _ => (b.u32() as u64).max(1),
    };
    let input = desc(&mut b);
    let output = desc(&mut b);
    let seed = b.rest();
    input_side(&input, max_pixels, seed);
    output_side(&output, seed);
});
