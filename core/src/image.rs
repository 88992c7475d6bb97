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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    /// Mirror the image at its borders (repeating the mirror for very small images).
    #[default]
    Reflect,
    /// Fill with black.
    Zero,
}

/// The default bound on the pixels of a file that [`Image::open`] decodes (64 Mi px, as
/// the engine's default `max_pixels`).
pub const DEFAULT_MAX_PIXELS: usize = 64 * 1024 * 1024;

/// An image read from a file: RGB plus the alpha plane when the file has one.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The colour.
    pub image: Image,
    /// One alpha value per pixel in [0, 1] (row-major), when the file has alpha.
    pub alpha: Option<Vec<f32>>,
}

/// An input's alpha plane (one value per pixel, row-major) at the output's size: unchanged when the sizes agree, else
/// nearest-neighbour (a restore step made the output larger; alpha is not restored).
pub fn scale_alpha(alpha: &[f32], from: (usize, usize), to: (usize, usize)) -> Vec<f32> {
    if from == to {
        return alpha.to_vec();
    }
    let ((fw, fh), (tw, th)) = (from, to);
    let mut out = Vec::with_capacity(tw * th);
    for y in 0..th {
        let sy = (y * fh / th).min(fh - 1);
        for x in 0..tw {
            out.push(alpha[sy * fw + (x * fw / tw).min(fw - 1)]);
        }
    }
    out
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

    /// Reads a PNG/JPEG/BMP/TIFF file (8 or 16 bit, grey or colour; alpha is dropped),
    /// refusing files of more than [`DEFAULT_MAX_PIXELS`] pixels before decoding them.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::open_with_alpha(path, DEFAULT_MAX_PIXELS)?.image)
    }

    /// Reads an image file with its alpha plane (when it has one). The header's dimensions
    /// are checked against `max_pixels` before any pixel is decoded, and the decoder's own
    /// allocation limit is set from it, so a small file that claims a huge size costs
    /// nothing.
    pub fn open_with_alpha(path: impl AsRef<Path>, max_pixels: usize) -> Result<Decoded> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = image::ImageReader::new(std::io::BufReader::new(file))
            .with_guessed_format()
            .map_err(|e| Error::io(path, e))?;
        decode_reader(reader, max_pixels).map_err(|e| e.in_file(path))
    }

    /// Decodes an image held in memory (any format [`Image::open_with_alpha`] reads), with
    /// the same limits.
    pub fn decode(bytes: &[u8], max_pixels: usize) -> Result<Decoded> {
        let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Error::InvalidImage(e.to_string()))?;
        decode_reader(reader, max_pixels)
    }

    /// Writes the image; the format follows the extension. PNG is written with 16 bits
    /// per sample so that no precision is lost beyond what the format holds.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_with_alpha(path, None)
    }

    /// Writes the image with an alpha plane (one value per pixel, in [0, 1]) when given and
    /// the format holds one (PNG, TIFF: RGBA; others: the alpha is dropped).
    pub fn save_with_alpha(&self, path: impl AsRef<Path>, alpha: Option<&[f32]>) -> Result<()> {
        let path = path.as_ref();
        self.save_with_alpha_as(path, alpha, output_format(path)?)
    }

    /// [`Image::save_with_alpha`] in a given format, whatever the file's name says (for
    /// temporary files written before a rename).
    pub fn save_with_alpha_as(
        &self,
        path: impl AsRef<Path>,
        alpha: Option<&[f32]>,
        format: image::ImageFormat,
    ) -> Result<()> {
        let path = path.as_ref();
        let alpha = alpha.filter(|_| format_has_alpha(format));
        if let Some(a) = alpha {
            if a.len() != self.width * self.height {
                return Err(Error::InvalidImage(format!(
                    "alpha plane has {} values for {}x{} pixels",
                    a.len(),
                    self.width,
                    self.height
                )));
            }
        }
        let q16 = |v: f32| (v.clamp(0.0, 1.0) * 65535.0).round() as u16;
        let (w, h) = (self.width as u32, self.height as u32);
        let result = match (format, alpha) {
            (image::ImageFormat::Png | image::ImageFormat::Tiff, Some(a)) => {
                let buf: Vec<u16> = self
                    .data
                    .chunks_exact(3)
                    .zip(a)
                    .flat_map(|(px, &a)| [q16(px[0]), q16(px[1]), q16(px[2]), q16(a)])
                    .collect();
                image::ImageBuffer::<image::Rgba<u16>, _>::from_raw(w, h, buf)
                    .expect("buffer size matches")
                    .save_with_format(path, format)
            }
            (image::ImageFormat::Png | image::ImageFormat::Tiff, None) => {
                let buf: Vec<u16> = self.data.iter().map(|&v| q16(v)).collect();
                image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(w, h, buf)
                    .expect("buffer size matches")
                    .save_with_format(path, format)
            }
            _ => self.to_rgb8().save_with_format(path, format),
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

/// Decodes with the dimensions checked first: `max_pixels` bounds the image, and the
/// decoder's allocation limit is the RGBA f32 working copy of that many pixels.
fn decode_reader<R: std::io::BufRead + std::io::Seek>(
    mut reader: image::ImageReader<R>,
    max_pixels: usize,
) -> Result<Decoded> {
    use image::ImageDecoder;
    if reader.format().is_none() {
        return Err(Error::InvalidImage(
            "unknown image format (PNG, JPEG, BMP and TIFF are read)".into(),
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some((max_pixels as u64).saturating_mul(16));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(image_error)?;
    let (w, h) = decoder.dimensions();
    let pixels = (w as u64) * (h as u64);
    if w == 0 || h == 0 {
        return Err(Error::InvalidImage(format!("zero size ({w}x{h})")));
    }
    if pixels > max_pixels as u64 {
        return Err(Error::InvalidImage(format!(
            "{w}x{h} is larger than the {max_pixels} pixels accepted; downscale the image or raise max_pixels"
        )));
    }
    let has_alpha = decoder.color_type().has_alpha();
    let img = image::DynamicImage::from_decoder(decoder).map_err(image_error)?;
    let (w, h) = (w as usize, h as usize);
    if !has_alpha {
        return Ok(Decoded {
            image: Image::from_rgb(w, h, img.to_rgb32f().into_raw())?,
            alpha: None,
        });
    }
    let oom = |_| Error::InvalidImage(format!("out of memory for a {w}x{h} image"));
    let (mut rgb, mut alpha) = (Vec::new(), Vec::new());
    rgb.try_reserve_exact(w * h * 3).map_err(oom)?;
    alpha.try_reserve_exact(w * h).map_err(oom)?;
    for px in img.to_rgba32f().pixels() {
        rgb.extend_from_slice(&px.0[..3]);
        alpha.push(px.0[3]);
    }
    Ok(Decoded {
        image: Image::from_rgb(w, h, rgb)?,
        alpha: Some(alpha),
    })
}

fn image_error(e: image::ImageError) -> Error {
    match e {
        image::ImageError::Limits(l) => Error::InvalidImage(format!(
            "the image needs more memory than its pixel limit allows ({l})"
        )),
        other => Error::InvalidImage(other.to_string()),
    }
}

/// The format an output file name asks for, refused before any work when this build cannot
/// write it (so a long job never ends in "unknown extension").
pub fn output_format(path: &Path) -> Result<image::ImageFormat> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let format = image::ImageFormat::from_extension(ext)
        .filter(|f| {
            matches!(
                f,
                image::ImageFormat::Png
                    | image::ImageFormat::Jpeg
                    | image::ImageFormat::Bmp
                    | image::ImageFormat::Tiff
            )
        })
        .ok_or_else(|| {
            Error::InvalidImage(format!(
                "{}: cannot tell the output format from the extension {}; use .png, .jpg, .bmp or .tif",
                path.display(),
                if ext.is_empty() { "(none)".to_string() } else { format!("'.{ext}'") }
            ))
        })?;
    Ok(format)
}

fn format_has_alpha(f: image::ImageFormat) -> bool {
    matches!(f, image::ImageFormat::Png | image::ImageFormat::Tiff)
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

    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    /// A PNG that claims `w x h` pixels and holds no pixel data at all (an IDAT chunk with
    /// only a zlib header).
    fn png_header_only(w: u32, h: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            png.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend_from_slice(data);
            png.extend_from_slice(&body);
            png.extend_from_slice(&crc32(&body).to_be_bytes());
        };
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
        chunk(b"IHDR", &ihdr);
        chunk(b"IDAT", &[0x78, 0x9c]); // a zlib header, then nothing
        chunk(b"IEND", &[]);
        png
    }

    /// Found by a misuse run: a 48 KB PNG of 20000 x 20000 pixels was decoded (4.8 GB)
    /// before the pixel limit refused it. The header is checked first: a file without any
    /// pixel data gets the limit's message, which it could not if decoding came first.
    #[test]
    fn pixel_limit_is_checked_on_the_header() {
        let png = png_header_only(20000, 20000);
        let err = Image::decode(&png, DEFAULT_MAX_PIXELS)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("20000x20000") && err.contains("pixels accepted"),
            "{err}"
        );
        // Under the limit the same file fails in the decoder (no data), as it should.
        let err = Image::decode(&png_header_only(4, 4), DEFAULT_MAX_PIXELS)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pixels accepted"), "{err}");
        let err = Image::decode(b"GIF89a not an image", 100)
            .unwrap_err()
            .to_string();
        assert!(err.contains("format"), "{err}");
        assert!(Image::decode(&[], 100).is_err());
    }

    #[test]
    fn alpha_survives_a_file_round_trip() {
        let img = ramp(5, 4);
        let alpha: Vec<f32> = (0..20).map(|i| i as f32 / 19.0).collect();
        let dir = std::env::temp_dir().join(format!("ttpo-alpha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["a.png", "a.tif"] {
            let p = dir.join(name);
            img.save_with_alpha(&p, Some(&alpha)).unwrap();
            let back = Image::open_with_alpha(&p, 100).unwrap();
            let a = back.alpha.expect("alpha kept");
            for (x, y) in a.iter().zip(&alpha) {
                assert!((x - y).abs() < 1e-4, "{name}");
            }
            for (x, y) in back.image.data().iter().zip(img.data()) {
                assert!((x - y).abs() < 1e-4, "{name}");
            }
            let err = Image::open_with_alpha(&p, 19).unwrap_err().to_string();
            assert!(
                err.contains(name) && err.contains("pixels accepted"),
                "{err}"
            );
        }
        // Formats without alpha drop it; images without alpha report none.
        let p = dir.join("a.bmp");
        img.save_with_alpha(&p, Some(&alpha)).unwrap();
        assert!(Image::open_with_alpha(&p, 100).unwrap().alpha.is_none());
        assert!(img
            .save_with_alpha(dir.join("b.png"), Some(&alpha[..3]))
            .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn output_format_is_refused_before_any_work() {
        for bad in ["out", "out.xyz", "out.gif", "dir/.hidden"] {
            let err = output_format(Path::new(bad)).unwrap_err().to_string();
            assert!(err.contains(".png"), "{bad}: {err}");
        }
        for good in [
            "a.png", "a.PNG", "b.jpg", "c.jpeg", "d.bmp", "e.tif", "f.tiff",
        ] {
            assert!(output_format(Path::new(good)).is_ok(), "{good}");
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
