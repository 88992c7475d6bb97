//! The engine's image type: interleaved RGB, f32 in [0, 1], plus conversions to and from
//! files, tensors and padded working canvases.
//!
//! Alpha and grey are the adapters' business: they split alpha off and expand grey to RGB
//! before calling the engine, and put them back afterwards.

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use std::path::Path;

/// An RGB image with f32 samples in [0, 1], row-major, interleaved, no row padding.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    width: usize,
    height: usize,
    data: Vec<f32>,
}

/// How the working canvas is extended to a multiple of the latent factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PadMode {
    /// Mirror the image at its borders (repeating the mirror for very small images).
    #[default]
    Reflect,
    /// Fill with black.
    Zero,
}

impl Image {
    /// Wraps interleaved RGB data. Fails on a size mismatch, a zero size or non-finite values.
    pub fn from_rgb(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::InvalidImage(format!("zero size ({width}x{height})")));
        }
        let expected = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(3))
            .ok_or_else(|| Error::InvalidImage(format!("size {width}x{height} overflows")))?;
        if data.len() != expected {
            return Err(Error::InvalidImage(format!(
                "{width}x{height} RGB needs {expected} samples, got {}",
                data.len()
            )));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidImage(format!(
                "non-finite sample at pixel ({}, {})",
                (i / 3) % width,
                i / 3 / width
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// A constant-colour image.
    pub fn filled(width: usize, height: usize, rgb: [f32; 3]) -> Result<Self> {
        let n = width.saturating_mul(height);
        let data = (0..n).flat_map(|_| rgb).collect();
        Self::from_rgb(width, height, data)
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }
    /// Interleaved RGB samples.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    /// Consumes the image, returning its samples.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
    /// One pixel.
    pub fn pixel(&self, x: usize, y: usize) -> [f32; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Reads a PNG/JPEG/BMP/TIFF file (8 or 16 bit, grey or colour; alpha is dropped).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let img = image::open(path).map_err(|e| match e {
            image::ImageError::IoError(io) => Error::io(path, io),
            other => Error::InvalidImage(format!("{}: {other}", path.display())),
        })?;
        let rgb = img.to_rgb32f();
        let (w, h) = rgb.dimensions();
        Self::from_rgb(w as usize, h as usize, rgb.into_raw())
    }

    /// Writes the image; the format follows the extension. PNG is written with 16 bits
    /// per sample so that no precision is lost beyond what the format holds.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let is_png = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        let result = if is_png {
            let buf: Vec<u16> = self
                .data
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16)
                .collect();
            image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(
                self.width as u32,
                self.height as u32,
                buf,
            )
            .expect("buffer size matches")
            .save(path)
        } else {
            self.to_rgb8().save(path)
        };
        result.map_err(|e| match e {
            image::ImageError::IoError(io) => Error::io(path, io),
            other => Error::InvalidImage(format!("{}: {other}", path.display())),
        })
    }

    /// 8-bit RGB copy (rounded, clamped).
    pub fn to_rgb8(&self) -> image::RgbImage {
        let buf: Vec<u8> = self
            .data
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        image::RgbImage::from_raw(self.width as u32, self.height as u32, buf)
            .expect("buffer size matches")
    }

    /// Extends the image to `width x height` (both >= the current size), keeping it at the
    /// top-left corner.
    pub fn pad_to(&self, width: usize, height: usize, mode: PadMode) -> Image {
        assert!(width >= self.width && height >= self.height);
        let mut data = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                let px = match mode {
                    PadMode::Reflect => self.pixel(mirror(x, self.width), mirror(y, self.height)),
                    PadMode::Zero if x < self.width && y < self.height => self.pixel(x, y),
                    PadMode::Zero => [0.0; 3],
                };
                data.extend_from_slice(&px);
            }
        }
        Image {
            width,
            height,
            data,
        }
    }

    /// The `width x height` rectangle at (`x0`, `y0`).
    pub fn crop(&self, x0: usize, y0: usize, width: usize, height: usize) -> Image {
        assert!(x0 + width <= self.width && y0 + height <= self.height);
        let mut data = Vec::with_capacity(width * height * 3);
        for y in y0..y0 + height {
            let start = (y * self.width + x0) * 3;
            data.extend_from_slice(&self.data[start..start + width * 3]);
        }
        Image {
            width,
            height,
            data,
        }
    }

    /// The image shrunk by the integer factor `k`: each output pixel is the mean of a
    /// `k x k` block (a remainder narrower than `k` at the right/bottom is dropped).
    pub fn box_downscale(&self, k: usize) -> Image {
        let k = k.max(1);
        let (w, h) = ((self.width / k).max(1), (self.height / k).max(1));
        let (bw, bh) = (k.min(self.width), k.min(self.height));
        let mut data = vec![0f32; w * h * 3];
        let norm = 1.0 / (bw * bh) as f32;
        for y in 0..h {
            let out = &mut data[y * w * 3..(y + 1) * w * 3];
            for sy in y * bh..(y + 1) * bh {
                let row = &self.data[sy * self.width * 3..];
                for (x, px) in out.chunks_exact_mut(3).enumerate() {
                    for sx in x * bw..(x + 1) * bw {
                        for c in 0..3 {
                            px[c] += row[sx * 3 + c];
                        }
                    }
                }
            }
            for v in out.iter_mut() {
                *v *= norm;
            }
        }
        Image {
            width: w,
            height: h,
            data,
        }
    }

    /// A (1, 3, H, W) f32 tensor in [-1, 1], as the VAE expects.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let (w, h) = (self.width, self.height);
        let mut planar = vec![0f32; w * h * 3];
        for (i, px) in self.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                planar[c * w * h + i] = px[c] * 2.0 - 1.0;
            }
        }
        Ok(Tensor::from_vec(planar, (1, 3, h, w), device)?)
    }

    /// The inverse of [`Image::to_tensor`] for one batch item of a (B, 3, H, W) tensor in
    /// [-1, 1]; values are clamped to [0, 1].
    pub fn from_tensor(t: &Tensor) -> Result<Image> {
        let t = t
            .to_dtype(candle_core::DType::F32)?
            .to_device(&Device::Cpu)?;
        let t = match t.rank() {
            4 => t.squeeze(0)?,
            _ => t,
        };
        let (c, h, w) = t.dims3()?;
        if c != 3 {
            return Err(Error::InvalidImage(format!(
                "tensor has {c} channels, not 3"
            )));
        }
        Image::from_planar(w, h, &t.flatten_all()?.to_vec1::<f32>()?)
    }

    /// The image of planar RGB samples (3 x H x W) in [-1, 1]; values are clamped to [0, 1].
    pub fn from_planar(w: usize, h: usize, planar: &[f32]) -> Result<Image> {
        let mut data = vec![0f32; w * h * 3];
        for i in 0..w * h {
            for ch in 0..3 {
                let v = planar[ch * w * h + i];
                data[i * 3 + ch] = ((v + 1.0) * 0.5).clamp(0.0, 1.0);
            }
        }
        Image::from_rgb(w, h, data)
    }
}

/// Index into `0..n` for any `i`, mirroring at the borders without repeating the edge pixel
/// (numpy's "reflect"), and repeating the mirror when `i` is far outside.
fn mirror(i: usize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let r = i % period;
    if r < n {
        r
    } else {
        period - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Image {
        let data = (0..w * h * 3).map(|i| (i % 97) as f32 / 96.0).collect();
        Image::from_rgb(w, h, data).unwrap()
    }

    #[test]
    fn mirror_matches_numpy_reflect() {
        // np.pad(np.arange(4), (0, 7), mode="reflect") -> 0 1 2 3 2 1 0 1 2 3 2
        let got: Vec<usize> = (0..11).map(|i| mirror(i, 4)).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2]);
        assert_eq!(mirror(5, 1), 0);
    }

    #[test]
    fn pad_then_crop_is_identity() {
        let img = ramp(5, 3);
        for mode in [PadMode::Reflect, PadMode::Zero] {
            let padded = img.pad_to(16, 9, mode);
            assert_eq!((padded.width(), padded.height()), (16, 9));
            assert_eq!(padded.crop(0, 0, 5, 3), img);
        }
        let z = img.pad_to(8, 8, PadMode::Zero);
        assert_eq!(z.pixel(7, 7), [0.0; 3]);
        let r = img.pad_to(8, 8, PadMode::Reflect);
        assert_eq!(r.pixel(5, 0), img.pixel(3, 0));
    }

    #[test]
    fn box_downscale_averages_blocks() {
        let img = ramp(7, 5);
        let d = img.box_downscale(2);
        assert_eq!((d.width(), d.height()), (3, 2));
        for (x, y) in [(0, 0), (2, 1), (1, 1)] {
            for c in 0..3 {
                let mean = (0..2)
                    .flat_map(|dy| (0..2).map(move |dx| (dx, dy)))
                    .map(|(dx, dy)| img.pixel(2 * x + dx, 2 * y + dy)[c])
                    .sum::<f32>()
                    / 4.0;
                assert!((d.pixel(x, y)[c] - mean).abs() < 1e-6);
            }
        }
        assert_eq!(img.box_downscale(1), img);
    }

    #[test]
    fn tensor_round_trip() {
        let img = ramp(7, 4);
        let t = img.to_tensor(&Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, 3, 4, 7]);
        let back = Image::from_tensor(&t).unwrap();
        for (a, b) in back.data().iter().zip(img.data()) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            Image::from_rgb(0, 4, vec![]),
            Err(Error::InvalidImage(_))
        ));
        assert!(Image::from_rgb(2, 2, vec![0.0; 11]).is_err());
        let mut d = vec![0.5; 12];
        d[7] = f32::NAN;
        let e = Image::from_rgb(2, 2, d).unwrap_err().to_string();
        assert!(e.contains("non-finite") && e.contains("(0, 1)"), "{e}");
    }
}
