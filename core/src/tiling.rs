//! Large images in a fixed memory budget: the VAE and the UNet see overlapping tiles,
//! everything that works on whole latents (noise, scheduler, Stage III's losses) does not.
//!
//! Why only the networks are tiled: a 24-megapixel photo has a 4 x 500 x 750 latent
//! (1.5 M elements, 6 MB), so latents, noise and the frequency filter fit whole at any
//! practical size, while the networks' activations grow with the pixel count (the VAE's
//! full-resolution convolutions) or with its square (attention). Keeping the latent-level
//! work whole means the noise is drawn per global latent position, the losses of Stage III
//! are the method's losses unchanged, and nothing depends on the order tiles are visited in.
//!
//! - **UNet** (MultiDiffusion-style): at each step the latent is cut into overlapping tiles
//!   of the model's native size; all tiles (of all latents that share the timestep) go
//!   through the network in batches, and the outputs are averaged where tiles overlap, so
//!   `x0`, the guidance and the scheduler step all see one consistent prediction.
//! - **VAE**: encode and decode in overlapping tiles whose size the memory budget decides.
//! - Averaging uses feathered weights: 1 inside a tile, a linear ramp across each overlap
//!   with a neighbour, so the weights of two overlapping tiles sum to one and the seam
//!   fades over the whole overlap instead of jumping.
//!
//! A canvas that fits in one tile takes the untiled code path unchanged (bit-for-bit).

use crate::diffusion::sampler::Schedule;
use crate::diffusion::{guided_output, Backbone, Prompts};
use crate::error::Result;
use crate::image::{Image, PadMode};
use crate::progress::Ticker;
use candle_core::{DType, Device, Tensor};

/// How large images are cut (one group of [`crate::Options`]; its checks live there).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Tiling {
    /// Working memory one VAE tile may use, in MiB; decides the VAE tile size.
    pub memory_budget_mib: usize,
    /// UNet tile side in pixels; 0 = the model's native resolution (what it was trained
    /// at: larger tiles lose coherence, smaller ones lose context).
    pub unet_tile: usize,
    /// VAE tile side in pixels; 0 = the largest the memory budget allows.
    pub vae_tile: usize,
    /// Least overlap between neighbouring tiles, as a fraction of the tile side.
    #[serde(rename = "tile_overlap")]
    pub overlap: f64,
}

impl Default for Tiling {
    fn default() -> Self {
        Self {
            memory_budget_mib: 3072,
            unet_tile: 0,
            vae_tile: 0,
            overlap: 0.25,
        }
    }
}

/// One axis cut into equal-length tiles that overlap by at least a given amount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AxisTiles {
    /// Tile length (the whole axis when it fits in one tile).
    pub len: usize,
    /// Tile starts, increasing; the first is 0 and the last ends at the axis end.
    pub starts: Vec<usize>,
}

impl AxisTiles {
    /// Cuts `total` into tiles of `tile` overlapping by at least `overlap` (< `tile`),
    /// spread evenly so every overlap is about the same.
    pub fn new(total: usize, tile: usize, overlap: usize) -> Self {
        if tile >= total {
            return Self {
                len: total,
                starts: vec![0],
            };
        }
        let stride = tile - overlap.min(tile - 1);
        let n = 1 + (total - tile).div_ceil(stride);
        let span = total - tile;
        let starts = (0..n).map(|i| (i * span + (n - 1) / 2) / (n - 1)).collect();
        Self { len: tile, starts }
    }

    /// Number of tiles.
    pub fn count(&self) -> usize {
        self.starts.len()
    }

    /// The same tiles with every length and start multiplied by `f`.
    pub fn scaled(&self, f: usize) -> Self {
        Self {
            len: self.len * f,
            starts: self.starts.iter().map(|s| s * f).collect(),
        }
    }

    /// Blend weights of tile `i` (one per position, all > 0): a linear ramp across the
    /// overlap with each neighbour, 1 elsewhere. Where exactly two tiles overlap their
    /// weights sum to 1.
    pub fn weights(&self, i: usize) -> Vec<f32> {
        let l = self.len;
        let left = if i > 0 {
            self.starts[i - 1] + l - self.starts[i]
        } else {
            0
        };
        let right = if i + 1 < self.count() {
            self.starts[i] + l - self.starts[i + 1]
        } else {
            0
        };
        (0..l)
            .map(|j| {
                let up = if j < left {
                    (j as f32 + 0.5) / left as f32
                } else {
                    1.0
                };
                let down = if l - 1 - j < right {
                    ((l - 1 - j) as f32 + 0.5) / right as f32
                } else {
                    1.0
                };
                up.min(down)
            })
            .collect()
    }
}

/// A 2-D tile grid: rows x columns of [`AxisTiles`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grid {
    /// Along the height.
    pub y: AxisTiles,
    /// Along the width.
    pub x: AxisTiles,
}

impl Grid {
    /// A grid over `h x w` with square tiles of `tile` and the given least overlap.
    pub fn new(h: usize, w: usize, tile: usize, overlap: usize) -> Self {
        Self {
            y: AxisTiles::new(h, tile, overlap),
            x: AxisTiles::new(w, tile, overlap),
        }
    }
    /// Number of tiles.
    pub fn count(&self) -> usize {
        self.y.count() * self.x.count()
    }
    /// Whether the whole area is one tile.
    pub fn single(&self) -> bool {
        self.count() == 1
    }
    /// (top, left) of every tile, row-major.
    pub fn origins(&self) -> Vec<(usize, usize)> {
        self.y
            .starts
            .iter()
            .flat_map(|&y| self.x.starts.iter().map(move |&x| (y, x)))
            .collect()
    }
    fn weights(&self, k: usize) -> (Vec<f32>, Vec<f32>) {
        let nx = self.x.count();
        (self.y.weights(k / nx), self.x.weights(k % nx))
    }
}

/// Weighted overlap-add of planar tiles (B, C, th, tw) into a (B, C, H, W) host buffer,
/// then normalised by the summed weights. Tiles may reach past (H, W) (a crop of the
/// canvas); the part outside is dropped.
pub(crate) struct Blend {
    c: usize,
    h: usize,
    w: usize,
    acc: Vec<f32>,
    wsum: Vec<f32>,
}

impl Blend {
    pub(crate) fn new(b: usize, c: usize, h: usize, w: usize) -> Self {
        Self {
            c,
            h,
            w,
            acc: vec![0.0; b * c * h * w],
            wsum: vec![0.0; h * w],
        }
    }

    /// Adds batch row `bi` from `tile` (C, th, tw as a flat slice) at (`y0`, `x0`); the
    /// weight sum is counted once per position (on batch row 0).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add(
        &mut self,
        bi: usize,
        tile: &[f32],
        th: usize,
        tw: usize,
        y0: usize,
        x0: usize,
        wy: &[f32],
        wx: &[f32],
    ) {
        let rows = th.min(self.h.saturating_sub(y0));
        let cols = tw.min(self.w.saturating_sub(x0));
        for ch in 0..self.c {
            let base = (bi * self.c + ch) * self.h * self.w;
            for (r, wyv) in wy.iter().enumerate().take(rows) {
                let src = &tile[(ch * th + r) * tw..][..cols];
                let dst = &mut self.acc[base + (y0 + r) * self.w + x0..][..cols];
                for ((d, s), wxv) in dst.iter_mut().zip(src).zip(wx) {
                    *d += s * wyv * wxv;
                }
            }
        }
        if bi == 0 {
            for (r, wyv) in wy.iter().enumerate().take(rows) {
                let dst = &mut self.wsum[(y0 + r) * self.w + x0..][..cols];
                for (d, wxv) in dst.iter_mut().zip(wx) {
                    *d += wyv * wxv;
                }
            }
        }
    }

    /// The normalised planar buffer (B, C, H, W).
    pub(crate) fn finish(mut self) -> Vec<f32> {
        let hw = self.h * self.w;
        for plane in self.acc.chunks_exact_mut(hw) {
            for (v, s) in plane.iter_mut().zip(&self.wsum) {
                *v /= s;
            }
        }
        self.acc
    }
}

/// Runs `f` with a ticker nobody listens to and nobody cancels.
fn quiet<T>(f: impl FnOnce(&mut Ticker) -> Result<T>) -> Result<T> {
    let cancel = crate::progress::CancelToken::new();
    let mut sink = |_: &crate::progress::Progress| {};
    let mut report: &mut dyn FnMut(&crate::progress::Progress) = &mut sink;
    let mut ticker = Ticker::new(
        crate::progress::Stage::Refine,
        0,
        Default::default(),
        &cancel,
        &mut report,
    )?;
    f(&mut ticker)
}

fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// The tile plan of one job on one backbone, and the tiled network calls.
pub struct Tiler<'a> {
    backbone: &'a dyn Backbone,
    /// UNet tiles over the latent canvas, in latent units.
    unet: Grid,
    /// VAE tiles over the latent canvas, in latent units (x vae_factor in pixels).
    vae: Grid,
    /// Latent rows per UNet call (CFG halves not counted).
    per_call: usize,
    pad_mode: PadMode,
    /// Padded canvas (width, height) in pixels.
    canvas: (usize, usize),
}

/// The tile sides a job will use, in pixels, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TilePlan {
    /// UNet tile side (pixels).
    pub unet_tile: usize,
    /// UNet tiles per latent per step.
    pub unet_tiles: usize,
    /// VAE tile side (pixels).
    pub vae_tile: usize,
    /// VAE tiles per encode or decode.
    pub vae_tiles: usize,
}

impl<'a> Tiler<'a> {
    /// The plan for a `canvas` (padded width, height in pixels: multiples of the
    /// backbone's `pad_multiple`) on `backbone`, with at most `per_call` latents per UNet
    /// call (CFG halves not counted).
    pub fn new(
        backbone: &'a dyn Backbone,
        canvas: (usize, usize),
        tiling: &Tiling,
        per_call: usize,
        pad_mode: PadMode,
    ) -> Self {
        let f = backbone.vae_factor();
        let unet_multiple = (backbone.pad_multiple() / f).max(1);
        let (lh, lw) = (canvas.1 / f, canvas.0 / f);
        let round_down = |v: usize, m: usize| (v / m).max(1) * m;
        let unet_px = if tiling.unet_tile > 0 {
            tiling.unet_tile
        } else {
            backbone.native_size()
        };
        let unet_tile = round_down(unet_px / f, unet_multiple);
        let vae_px = if tiling.vae_tile > 0 {
            tiling.vae_tile
        } else {
            vae_tile_for_budget(backbone, tiling.memory_budget_mib)
        };
        // VAE tiles are whole latent cells; at least 8 so the decoder's context is not
        // only its zero padding.
        let vae_tile = (vae_px / f).max(8);
        let overlap = |t: usize| ((t as f64 * tiling.overlap).round() as usize).max(1);
        Self {
            backbone,
            unet: Grid::new(lh, lw, unet_tile, overlap(unet_tile)),
            vae: Grid::new(lh, lw, vae_tile, overlap(vae_tile)),
            per_call: per_call.max(1),
            pad_mode,
            canvas,
        }
    }

    /// The backbone the plan is for.
    pub fn backbone(&self) -> &'a dyn Backbone {
        self.backbone
    }

    /// The backbone's schedule for an `steps`-step run on this canvas (flow models shift
    /// it by the whole canvas's size, not a tile's: see [`crate::diffusion::sampler`]).
    pub fn schedule(&self, steps: usize) -> Result<Schedule<'a>> {
        let f = self.backbone.vae_factor();
        self.backbone
            .sampler()
            .schedule(steps, (self.canvas.1 / f, self.canvas.0 / f))
    }

    /// Tile sides and counts.
    pub fn plan(&self) -> TilePlan {
        let f = self.backbone.vae_factor();
        TilePlan {
            unet_tile: self.unet.y.len.max(self.unet.x.len) * f,
            unet_tiles: self.unet.count(),
            vae_tile: self.vae.y.len.max(self.vae.x.len) * f,
            vae_tiles: self.vae.count(),
        }
    }

    /// VAE calls (= progress ticks) per encode or decode.
    pub fn vae_calls(&self) -> usize {
        self.vae.count()
    }

    /// UNet calls (= progress ticks) for `latents` latents at one timestep.
    pub fn unet_calls(&self, latents: usize) -> usize {
        (latents * self.unet.count()).div_ceil(self.per_call)
    }

    /// Latent tiles the UNet sees for `latents` latents at one timestep.
    pub fn unet_latents(&self, latents: usize) -> usize {
        latents * self.unet.count()
    }

    /// The UNet tile (height, width) in latent units.
    pub fn unet_tile(&self) -> (usize, usize) {
        (self.unet.y.len, self.unet.x.len)
    }

    /// The VAE tile (height, width) in latent units.
    pub fn vae_tile(&self) -> (usize, usize) {
        (self.vae.y.len, self.vae.x.len)
    }

    /// Whether a UNet call can carry more than one latent tile.
    pub fn batches(&self) -> bool {
        self.per_call > 1
    }

    /// [`Tiler::encode`] without progress reporting.
    pub fn encode_image(&self, img: &Image) -> Result<Tensor> {
        quiet(|t| self.encode(img, t))
    }

    /// [`Tiler::decode`] without progress reporting.
    pub fn decode_latent(&self, z: &Tensor, width: usize, height: usize) -> Result<Image> {
        quiet(|t| self.decode(z, width, height, t))
    }

    /// The guided model output for latents `x` (B, C, h, w) at time `t`; ticks once per
    /// network call and checks for cancel before each.
    pub(crate) fn model_output(
        &self,
        x: &Tensor,
        t: f64,
        prompts: &Prompts,
        cfg_scale: f64,
        ticker: &mut Ticker,
    ) -> Result<Tensor> {
        let b = x.dim(0)?;
        let call = |x: &Tensor, ticker: &mut Ticker| -> Result<Tensor> {
            ticker.check()?;
            let out = guided_output(self.backbone, x, t, prompts, cfg_scale)?;
            ticker.tick();
            Ok(out)
        };
        if self.unet.single() {
            let outs = (0..b)
                .step_by(self.per_call)
                .map(|s| call(&x.narrow(0, s, self.per_call.min(b - s))?, ticker))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Tensor::cat(&outs, 0)?);
        }
        let (_, c, h, w) = x.dims4()?;
        let (th, tw) = (self.unet.y.len, self.unet.x.len);
        let origins = self.unet.origins();
        let rows: Vec<(usize, usize)> = (0..b)
            .flat_map(|bi| (0..origins.len()).map(move |k| (bi, k)))
            .collect();
        let mut blend = Blend::new(b, c, h, w);
        for chunk in rows.chunks(self.per_call) {
            let crops = chunk
                .iter()
                .map(|&(bi, k)| {
                    let (y0, x0) = origins[k];
                    Ok(x.narrow(0, bi, 1)?.narrow(2, y0, th)?.narrow(3, x0, tw)?)
                })
                .collect::<Result<Vec<_>>>()?;
            let out = host_f32(&call(&Tensor::cat(&crops, 0)?, ticker)?)?;
            let n = c * th * tw;
            for (j, &(bi, k)) in chunk.iter().enumerate() {
                let (y0, x0) = origins[k];
                let (wy, wx) = self.unet.weights(k);
                blend.add(bi, &out[j * n..(j + 1) * n], th, tw, y0, x0, &wy, &wx);
            }
        }
        Ok(Tensor::from_vec(blend.finish(), (b, c, h, w), x.device())?)
    }

    /// The scaled posterior-mean latent (1, C, h, w) of `img` padded to the canvas.
    pub(crate) fn encode(&self, img: &Image, ticker: &mut Ticker) -> Result<Tensor> {
        let f = self.backbone.vae_factor();
        let (lh, lw) = (self.canvas.1 / f, self.canvas.0 / f);
        let padded = img.pad_to(self.canvas.0, self.canvas.1, self.pad_mode);
        let device = self.backbone.device();
        if self.vae.single() {
            ticker.check()?;
            let z = self.backbone.encode(&padded.to_tensor(device)?)?;
            ticker.tick();
            return Ok(z);
        }
        let (th, tw) = (self.vae.y.len, self.vae.x.len);
        let c = self.backbone.latent_channels();
        let input = |y0: usize, x0: usize| -> Result<Tensor> {
            padded
                .crop(x0 * f, y0 * f, tw * f, th * f)
                .to_tensor(device)
        };
        let mut blend = Blend::new(1, c, lh, lw);
        for (k, (y0, x0)) in self.vae.origins().into_iter().enumerate() {
            ticker.check()?;
            let z = host_f32(&self.backbone.encode(&input(y0, x0)?)?)?;
            let (wy, wx) = self.vae.weights(k);
            blend.add(0, &z, th, tw, y0, x0, &wy, &wx);
            ticker.tick();
        }
        Ok(Tensor::from_vec(blend.finish(), (1, c, lh, lw), device)?)
    }

    /// The image of latent `z` (1, C, h, w), cropped to `width x height` pixels.
    pub(crate) fn decode(
        &self,
        z: &Tensor,
        width: usize,
        height: usize,
        ticker: &mut Ticker,
    ) -> Result<Image> {
        if self.vae.single() {
            ticker.check()?;
            let img = Image::from_tensor(&self.backbone.decode(z)?)?.crop(0, 0, width, height);
            ticker.tick();
            return Ok(img);
        }
        let f = self.backbone.vae_factor();
        let (th, tw) = (self.vae.y.len, self.vae.x.len);
        let input = |y0: usize, x0: usize| -> Result<Tensor> {
            // Contiguous: candle's CPU conv2d misreads a strided (narrowed) input.
            Ok(z.narrow(2, y0, th)?.narrow(3, x0, tw)?.contiguous()?)
        };
        let mut blend = Blend::new(1, 3, height, width);
        // The grid in pixels, so the blend ramps are smooth at pixel resolution.
        let (py, px_axis) = (self.vae.y.scaled(f), self.vae.x.scaled(f));
        let nx = self.vae.x.count();
        for (k, (y0, x0)) in self.vae.origins().into_iter().enumerate() {
            ticker.check()?;
            // Tiles wholly in the padding are not decoded (still counted, so the
            // progress total stays what vae_calls() said).
            if y0 * f < height && x0 * f < width {
                let px = host_f32(&self.backbone.decode(&input(y0, x0)?)?)?;
                let (wy, wx) = (py.weights(k / nx), px_axis.weights(k % nx));
                blend.add(0, &px, th * f, tw * f, y0 * f, x0 * f, &wy, &wx);
            }
            ticker.tick();
        }
        Image::from_planar(width, height, &blend.finish())
    }
}

/// The largest VAE tile side (pixels, a multiple of 64, at least 128) whose estimated
/// working set ([`Backbone::vae_tile_bytes`]) fits `budget_mib`.
pub fn vae_tile_for_budget(backbone: &dyn Backbone, budget_mib: usize) -> usize {
    let budget = budget_mib.saturating_mul(1024 * 1024);
    let mut side = 128;
    while side < 8192 && backbone.vae_tile_bytes(side + 64) <= budget {
        side += 64;
    }
    side
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tiles_cover_and_overlap_evenly() {
        let a = AxisTiles::new(100, 32, 8);
        assert_eq!(a.len, 32);
        assert_eq!(a.starts.first(), Some(&0));
        assert_eq!(a.starts.last().unwrap() + a.len, 100);
        for w in a.starts.windows(2) {
            let overlap = w[0] + 32 - w[1];
            assert!((8..=12).contains(&overlap), "{:?}", a.starts);
        }
        assert_eq!(AxisTiles::new(20, 32, 8).starts, vec![0]);
        assert_eq!(AxisTiles::new(20, 32, 8).len, 20);
        assert_eq!(AxisTiles::new(32, 32, 8).starts, vec![0]);
    }

    #[test]
    fn weights_are_a_partition_of_unity() {
        for (total, tile, ov) in [(100, 32, 8), (64, 16, 4), (50, 48, 1), (90, 20, 9)] {
            let a = AxisTiles::new(total, tile, ov);
            let mut sum = vec![0f32; total];
            for i in 0..a.count() {
                let w = a.weights(i);
                assert!(w.iter().all(|&v| v > 0.0 && v <= 1.0));
                for (j, v) in w.iter().enumerate() {
                    sum[a.starts[i] + j] += v;
                }
            }
            for (p, s) in sum.iter().enumerate() {
                assert!((s - 1.0).abs() < 1e-6, "{total}/{tile}/{ov}: {s} at {p}");
            }
        }
    }

    #[test]
    fn blending_identical_tiles_reproduces_the_field() {
        // Tiles cut from one field and blended back give the field (weights normalise).
        let (h, w) = (23, 37);
        let field: Vec<f32> = (0..2 * h * w).map(|i| (i as f32 * 0.37).sin()).collect();
        let g = Grid::new(h, w, 10, 3);
        let mut b = Blend::new(1, 2, h, w);
        for (k, (y0, x0)) in g.origins().into_iter().enumerate() {
            let (th, tw) = (g.y.len, g.x.len);
            let mut tile = Vec::new();
            for ch in 0..2 {
                for r in 0..th {
                    let s = ch * h * w + (y0 + r) * w + x0;
                    tile.extend_from_slice(&field[s..s + tw]);
                }
            }
            let (wy, wx) = g.weights(k);
            b.add(0, &tile, th, tw, y0, x0, &wy, &wx);
        }
        let out = b.finish();
        for (a, e) in out.iter().zip(&field) {
            assert!((a - e).abs() < 1e-5);
        }
    }
}
