//! Borrowed pixel buffers crossing the ABI, and their conversion to and from the engine's
//! RGB f32 image (alpha and grey are handled here, not in the engine).

use crate::status::{Failure, FfiResult, TTPO_STATUS_INVALID_IMAGE};
use std::ffi::c_void;

/// Sample type of a pixel buffer.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ttpo_format {
    /// 8-bit unsigned, 0..255.
    TTPO_FORMAT_U8 = 0,
    /// 16-bit unsigned, 0..65535.
    TTPO_FORMAT_U16 = 1,
    /// 32-bit float, 0..1 (values outside are clamped on input).
    TTPO_FORMAT_F32 = 2,
}

/// Channel layout of a pixel buffer (interleaved).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ttpo_layout {
    /// One grey channel.
    TTPO_LAYOUT_GRAY = 0,
    /// Red, green, blue.
    TTPO_LAYOUT_RGB = 1,
    /// Red, green, blue, alpha (alpha is carried through unchanged).
    TTPO_LAYOUT_RGBA = 2,
}

/// A pixel buffer owned by the caller. Rows are `stride` bytes apart; `stride` may be
/// negative (bottom-up buffers: `data` then points at the top row). Inputs are only read;
/// outputs are written only when the call succeeds.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ttpo_image {
    /// The first (top) row.
    pub data: *mut c_void,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from one row to the next (may be negative; |stride| >= width * pixel size).
    pub stride: isize,
    /// A `ttpo_format` value.
    pub format: u32,
    /// A `ttpo_layout` value.
    pub layout: u32,
}

/// A validated description of a buffer.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub width: usize,
    pub height: usize,
    pub stride: isize,
    pub format: ttpo_format,
    pub layout: ttpo_layout,
}

impl Shape {
    pub fn channels(&self) -> usize {
        match self.layout {
            ttpo_layout::TTPO_LAYOUT_GRAY => 1,
            ttpo_layout::TTPO_LAYOUT_RGB => 3,
            ttpo_layout::TTPO_LAYOUT_RGBA => 4,
        }
    }
    pub fn sample_bytes(&self) -> usize {
        match self.format {
            ttpo_format::TTPO_FORMAT_U8 => 1,
            ttpo_format::TTPO_FORMAT_U16 => 2,
            ttpo_format::TTPO_FORMAT_F32 => 4,
        }
    }
}

/// Largest side accepted at the boundary; the engine applies its own (smaller) pixel limit.
const MAX_SIDE: usize = 1 << 16;

/// Checks an image description (not its memory, which C owns) before anything reads it.
pub fn validate(img: &ttpo_image, max_pixels: usize) -> FfiResult<Shape> {
    if img.data.is_null() {
        return Err(Failure::null("image data"));
    }
    let format = match img.format {
        0 => ttpo_format::TTPO_FORMAT_U8,
        1 => ttpo_format::TTPO_FORMAT_U16,
        2 => ttpo_format::TTPO_FORMAT_F32,
        v => return Err(Failure::arg(format!("unknown pixel format {v}"))),
    };
    let layout = match img.layout {
        0 => ttpo_layout::TTPO_LAYOUT_GRAY,
        1 => ttpo_layout::TTPO_LAYOUT_RGB,
        2 => ttpo_layout::TTPO_LAYOUT_RGBA,
        v => return Err(Failure::arg(format!("unknown channel layout {v}"))),
    };
    let (w, h) = (img.width as usize, img.height as usize);
    if w == 0 || h == 0 {
        return Err(Failure::new(
            TTPO_STATUS_INVALID_IMAGE,
            format!("zero image size {w}x{h}"),
        ));
    }
    if w > MAX_SIDE || h > MAX_SIDE || w * h > max_pixels {
        return Err(Failure::new(
            TTPO_STATUS_INVALID_IMAGE,
            format!("image {w}x{h} exceeds the {max_pixels} pixels accepted (downscale it or raise max_pixels)"),
        ));
    }
    let shape = Shape {
        width: w,
        height: h,
        stride: img.stride,
        format,
        layout,
    };
    let row = w * shape.channels() * shape.sample_bytes();
    if img.stride.unsigned_abs() < row {
        return Err(Failure::arg(format!(
            "stride {} is smaller than a row of {row} bytes",
            img.stride
        )));
    }
    // Every row must be addressable from `data`: the span from the first to the last byte
    // touched fits in isize (the limit of pointer offsets), or the stride is nonsense.
    let span = img
        .stride
        .unsigned_abs()
        .checked_mul(h - 1)
        .and_then(|v| v.checked_add(row))
        .filter(|&v| v <= isize::MAX as usize);
    if span.is_none() {
        return Err(Failure::arg(format!(
            "stride {} times {} rows overflows the address space",
            img.stride,
            h - 1
        )));
    }
    Ok(shape)
}

/// A zeroed buffer of `n` values, or an error instead of an abort when memory is short.
fn try_zeroed<T: Clone + Default>(n: usize, what: &str) -> FfiResult<Vec<T>> {
    let mut v = try_with_capacity(n, what)?;
    v.resize(n, T::default());
    Ok(v)
}

/// An empty buffer with room for `n` values, or an error when memory is short.
fn try_with_capacity<T>(n: usize, what: &str) -> FfiResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Failure::new(
            TTPO_STATUS_INVALID_IMAGE,
            format!("out of memory for {what} ({n} values)"),
        )
    })?;
    Ok(v)
}

/// Pointer to the start of row `y`.
fn row_ptr(img: &ttpo_image, y: usize) -> *mut u8 {
    (img.data as *mut u8).wrapping_offset(img.stride * y as isize)
}

/// Reads a buffer into RGB f32 [0, 1] plus an optional alpha plane.
///
/// # Safety
/// `img` must describe readable memory as validated by [`validate`].
pub unsafe fn read(img: &ttpo_image, s: &Shape) -> FfiResult<(ttpo::Image, Option<Vec<f32>>)> {
    let ch = s.channels();
    let mut rgb = try_with_capacity(s.width * s.height * 3, "the input image")?;
    let mut alpha = match ch {
        4 => Some(try_with_capacity(s.width * s.height, "the input's alpha")?),
        _ => None,
    };
    let mut samples = vec![0f32; s.width * ch];
    for y in 0..s.height {
        let p = row_ptr(img, y);
        for (i, v) in samples.iter_mut().enumerate() {
            *v = match s.format {
                ttpo_format::TTPO_FORMAT_U8 => *p.add(i) as f32 / 255.0,
                ttpo_format::TTPO_FORMAT_U16 => {
                    (p.add(2 * i) as *const u16).read_unaligned() as f32 / 65535.0
                }
                ttpo_format::TTPO_FORMAT_F32 => {
                    let v = (p.add(4 * i) as *const f32).read_unaligned();
                    if !v.is_finite() {
                        return Err(Failure::new(
                            TTPO_STATUS_INVALID_IMAGE,
                            format!("non-finite sample in row {y}"),
                        ));
                    }
                    v.clamp(0.0, 1.0)
                }
            };
        }
        for px in samples.chunks_exact(ch) {
            match ch {
                1 => rgb.extend_from_slice(&[px[0]; 3]),
                _ => rgb.extend_from_slice(&px[..3]),
            }
            if let Some(a) = alpha.as_mut() {
                a.push(px[3]);
            }
        }
    }
    Ok((ttpo::Image::from_rgb(s.width, s.height, rgb)?, alpha))
}

/// Converts an RGB result to the caller's layout and format (grey = Rec. 601 luma; alpha
/// from `alpha` or opaque) in a temporary, then copies it out; nothing is written on error.
///
/// # Safety
/// `out` must describe writable memory as validated by [`validate`].
pub unsafe fn write(
    out: &ttpo_image,
    s: &Shape,
    img: &ttpo::Image,
    alpha: Option<&[f32]>,
) -> FfiResult {
    if (s.width, s.height) != (img.width(), img.height()) {
        return Err(Failure::arg(format!(
            "output buffer is {}x{}, the result is {}x{}",
            s.width,
            s.height,
            img.width(),
            img.height()
        )));
    }
    let ch = s.channels();
    let row_bytes = s.width * ch * s.sample_bytes();
    let mut rows: Vec<u8> = try_zeroed(row_bytes * s.height, "the output image")?;
    let d = img.data();
    for y in 0..s.height {
        let row = &mut rows[y * row_bytes..(y + 1) * row_bytes];
        for x in 0..s.width {
            let i = y * s.width + x;
            let (r, g, b) = (d[3 * i], d[3 * i + 1], d[3 * i + 2]);
            let a = alpha.map_or(1.0, |a| a[i]);
            let px: [f32; 4] = [r, g, b, a];
            let vals: &[f32] = match ch {
                1 => &[0.299 * r + 0.587 * g + 0.114 * b],
                3 => &px[..3],
                _ => &px,
            };
            for (c, v) in vals.iter().enumerate() {
                let o = (x * ch + c) * s.sample_bytes();
                match s.format {
                    ttpo_format::TTPO_FORMAT_U8 => {
                        row[o] = (v.clamp(0.0, 1.0) * 255.0).round() as u8
                    }
                    ttpo_format::TTPO_FORMAT_U16 => row[o..o + 2].copy_from_slice(
                        &((v.clamp(0.0, 1.0) * 65535.0).round() as u16).to_ne_bytes(),
                    ),
                    ttpo_format::TTPO_FORMAT_F32 => row[o..o + 4].copy_from_slice(&v.to_ne_bytes()),
                }
            }
        }
    }
    for y in 0..s.height {
        std::ptr::copy_nonoverlapping(rows.as_ptr().add(y * row_bytes), row_ptr(out, y), row_bytes);
    }
    Ok(())
}
