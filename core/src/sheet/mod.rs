//! The candidate contact sheet: every candidate of a job as a thumbnail in one grid, each
//! labelled with two lines (index and strength; fused score and BEST / WORST) in a built-in
//! 5x7 font, the preferred and dispreferred tiles framed in green and red.
//!
//! One implementation for every adapter (issue #16): the CLI saves the natural-size sheet
//! ([`natural`], 160-px thumbnails) next to the candidates; hosts that show the sheet in a
//! frame of their own size get it fitted to that frame ([`fitted`]) through the C ABI
//! (`ttpo_job_contact_sheet`).

mod font;

use crate::error::{Error, Result};
use crate::image::Image;
use crate::pipeline::Job;
use image::{imageops, Rgb, RgbImage};
use serde::{Deserialize, Serialize};

/// Colour of the canvas and of the gaps between tiles (8-bit sRGB).
pub const BACKGROUND: [u8; 3] = [20, 20, 20];
/// Frame of a candidate that is neither preferred nor dispreferred.
pub const BORDER_PLAIN: [u8; 3] = [90, 90, 90];
/// Frame (and second label line) of the preferred candidate.
pub const BORDER_PREFERRED: [u8; 3] = [40, 200, 60];
/// Frame (and second label line) of the dispreferred candidate.
pub const BORDER_DISPREFERRED: [u8; 3] = [230, 50, 40];
/// Label text.
pub const TEXT: [u8; 3] = [240, 240, 240];
/// The thumbnail box's side on the natural-size sheet.
pub const NATURAL_THUMB: u32 = 160;

/// How a tile is marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Neither preferred nor dispreferred.
    Plain,
    /// The preferred candidate (green frame, "BEST").
    Preferred,
    /// The dispreferred candidate (red frame, "WORST").
    Dispreferred,
}

impl Mark {
    fn color(self) -> [u8; 3] {
        match self {
            Mark::Plain => BORDER_PLAIN,
            Mark::Preferred => BORDER_PREFERRED,
            Mark::Dispreferred => BORDER_DISPREFERRED,
        }
    }
}

/// One tile's content.
#[derive(Clone, Debug)]
pub struct Tile<'a> {
    /// The candidate (shrunk or enlarged into the thumbnail box, aspect kept).
    pub image: &'a Image,
    /// The two label lines under the thumbnail.
    pub lines: [String; 2],
    /// Frame colour.
    pub mark: Mark,
}

/// Frame sizes around the thumbnails and the label text scale (0 = no labels).
#[derive(Clone, Copy)]
struct Frame {
    border: u32,
    gap: u32,
    text_scale: u32,
}

const NATURAL_FRAME: Frame = Frame {
    border: 4,
    gap: 8,
    text_scale: 2,
};

/// What [`Layout::fit`] tries, largest first, each with the smallest thumbnail it accepts:
/// a label line ("#03 S0.30 K1") is ~72 font pixels wide, so text stays as large as the
/// thumbnails' width allows; tiny canvases drop the labels and keep the frames.
const FIT_FRAMES: [(Frame, u32); 5] = [
    (
        Frame {
            border: 4,
            gap: 8,
            text_scale: 4,
        },
        288,
    ),
    (
        Frame {
            border: 4,
            gap: 8,
            text_scale: 3,
        },
        216,
    ),
    (NATURAL_FRAME, 144),
    (
        Frame {
            border: 2,
            gap: 4,
            text_scale: 1,
        },
        24,
    ),
    (
        Frame {
            border: 1,
            gap: 2,
            text_scale: 0,
        },
        1,
    ),
];

/// Height of one text line at `scale` (glyph plus spacing).
fn line_height(scale: u32) -> u32 {
    font::ROWS * scale + 4
}

/// Height of the label band: two lines and a margin, or nothing without labels.
fn label_height(scale: u32) -> u32 {
    if scale == 0 {
        0
    } else {
        2 * line_height(scale) + 6
    }
}

/// The grid geometry; the CLI writes it to candidates.json so that tools can find tiles.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Layout {
    /// Tiles per row.
    pub cols: u32,
    /// Rows of tiles.
    pub rows: u32,
    /// Side of the square thumbnail box.
    pub thumb: u32,
    /// Frame width around the thumbnail and label band.
    pub border: u32,
    /// Height of the label band under the thumbnail (0 = no labels).
    pub label: u32,
    /// Space between tiles and around the grid.
    pub gap: u32,
    /// A tile's width, frame included.
    pub tile_w: u32,
    /// A tile's height, frame included.
    pub tile_h: u32,
    /// The grid's width (a fitted sheet centres it on a canvas at least this wide).
    pub width: u32,
    /// The grid's height.
    pub height: u32,
}

impl Layout {
    fn grid(n: u32, cols: u32, thumb: u32, f: Frame) -> Self {
        let rows = n.div_ceil(cols);
        let label = label_height(f.text_scale);
        let tile_w = thumb + 2 * f.border;
        let tile_h = thumb + label + 2 * f.border;
        Self {
            cols,
            rows,
            thumb,
            border: f.border,
            label,
            gap: f.gap,
            tile_w,
            tile_h,
            width: cols * tile_w + (cols + 1) * f.gap,
            height: rows * tile_h + (rows + 1) * f.gap,
        }
    }

    /// The natural grid for `n` tiles: `ceil(sqrt(n))` columns of 160-px thumbnails.
    pub fn for_count(n: usize) -> Self {
        let n = n.clamp(1, u32::MAX as usize) as u32;
        let mut cols = (n as f64).sqrt().ceil() as u32;
        while cols.saturating_mul(cols) < n {
            cols += 1;
        }
        Self::grid(n, cols, NATURAL_THUMB, NATURAL_FRAME)
    }

    /// The grid with the largest thumbnails for `n` tiles inside `width` x `height`
    /// (columns chosen for the canvas's shape), or `None` when not even 1-px thumbnails
    /// fit.
    pub fn fit(n: usize, width: u32, height: u32) -> Option<Self> {
        let n = n.clamp(1, u32::MAX as usize) as u32;
        let (width, height) = (u64::from(width), u64::from(height));
        for (f, min_thumb) in FIT_FRAMES {
            let (border, gap, label) = (
                u64::from(f.border),
                u64::from(f.gap),
                u64::from(label_height(f.text_scale)),
            );
            // The thumbnail side each column count allows; ties go to fewer columns.
            let best = (1..=u64::from(n))
                .filter_map(|cols| {
                    let rows = u64::from(n).div_ceil(cols);
                    let tw =
                        (width.checked_sub((cols + 1) * gap)? / cols).checked_sub(2 * border)?;
                    let th = (height.checked_sub((rows + 1) * gap)? / rows)
                        .checked_sub(label + 2 * border)?;
                    Some((tw.min(th), cols))
                })
                .fold(None, |best: Option<(u64, u64)>, c| match best {
                    Some(b) if b.0 >= c.0 => Some(b),
                    _ => Some(c),
                });
            if let Some((thumb, cols)) = best {
                if thumb >= u64::from(min_thumb) {
                    // Both fit in the canvas's u32 sides, so the casts are exact.
                    return Some(Self::grid(n, cols as u32, thumb as u32, f));
                }
            }
        }
        None
    }

    /// The label text scale (font pixels to image pixels; 0 = no labels), as
    /// [`label_height`] made the band.
    pub fn text_scale(&self) -> u32 {
        // label = 2 * (ROWS * scale + 4) + 6
        (self.label.saturating_sub(6) / 2).saturating_sub(4) / font::ROWS
    }

    /// Top-left corner of tile `i` within the grid.
    pub fn origin(&self, i: usize) -> (u32, u32) {
        let (c, r) = (i as u32 % self.cols, i as u32 / self.cols);
        (
            self.gap + c * (self.tile_w + self.gap),
            self.gap + r * (self.tile_h + self.gap),
        )
    }
}

/// A rectangle drawing is clipped to (x0, y0 inclusive; x1, y1 exclusive).
#[derive(Clone, Copy)]
struct Clip {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

/// Draws `text` with its top-left corner at (x, y), each font pixel `scale` x `scale`.
fn draw_text(img: &mut RgbImage, x: u32, y: u32, text: &str, scale: u32, clip: Clip, c: [u8; 3]) {
    let advance = (font::COLS + 1) * scale;
    for (i, ch) in text.chars().enumerate() {
        let cx = x + i as u32 * advance;
        if cx >= clip.x1 {
            break;
        }
        for (row, bits) in font::glyph(ch).iter().enumerate() {
            for col in 0..font::COLS {
                if bits & (0x10 >> col) == 0 {
                    continue;
                }
                let (px0, py0) = (cx + col * scale, y + row as u32 * scale);
                for py in py0..py0 + scale {
                    for px in px0..px0 + scale {
                        if px >= clip.x0 && px < clip.x1 && py >= clip.y0 && py < clip.y1 {
                            img.put_pixel(px, py, Rgb(c));
                        }
                    }
                }
            }
        }
    }
}

/// Draws the tiles on a `canvas` (width, height) with the grid centred on it. Tiles past the
/// layout's capacity and anything outside the canvas are left out. Private: its arithmetic
/// trusts a layout made by [`Layout::for_count`] or [`Layout::fit`], not one read from a
/// file.
fn render(tiles: &[Tile], layout: &Layout, canvas: (u32, u32)) -> Image {
    let (cw, ch) = (canvas.0.max(1), canvas.1.max(1));
    let mut sheet = RgbImage::from_pixel(cw, ch, Rgb(BACKGROUND));
    let (ox, oy) = (
        cw.saturating_sub(layout.width) / 2,
        ch.saturating_sub(layout.height) / 2,
    );
    let l = layout;
    let scale = l.text_scale();
    let capacity = (l.cols * l.rows) as usize;
    for (i, t) in tiles.iter().take(capacity).enumerate() {
        let (gx, gy) = l.origin(i);
        let (x0, y0) = (ox + gx, oy + gy);
        let border = t.mark.color();
        for y in y0..(y0 + l.tile_h).min(ch) {
            for x in x0..(x0 + l.tile_w).min(cw) {
                let inner = x >= x0 + l.border
                    && x < x0 + l.tile_w - l.border
                    && y >= y0 + l.border
                    && y < y0 + l.tile_h - l.border;
                sheet.put_pixel(x, y, Rgb(if inner { [0, 0, 0] } else { border }));
            }
        }
        let (w, h) = (t.image.width() as f64, t.image.height() as f64);
        let s = (l.thumb as f64 / w).min(l.thumb as f64 / h);
        let tw = ((w * s).round() as u32).clamp(1, l.thumb.max(1));
        let th = ((h * s).round() as u32).clamp(1, l.thumb.max(1));
        // Enlarged thumbnails keep their pixels crisp; shrunk ones are filtered.
        let filter = if s >= 1.0 {
            imageops::FilterType::Nearest
        } else {
            imageops::FilterType::Triangle
        };
        let thumb = imageops::resize(&t.image.to_rgb8(), tw, th, filter);
        let tx = x0 + l.border + l.thumb.saturating_sub(tw) / 2;
        let ty = y0 + l.border + l.thumb.saturating_sub(th) / 2;
        imageops::replace(&mut sheet, &thumb, i64::from(tx), i64::from(ty));
        if scale > 0 {
            // Labels stay inside their tile's band (long text is cut, never spills over).
            let clip = Clip {
                x0: x0 + l.border,
                y0: y0 + l.border + l.thumb,
                x1: (x0 + l.tile_w - l.border).min(cw),
                y1: (y0 + l.tile_h - l.border).min(ch),
            };
            let (lx, ly) = (clip.x0 + 2 * scale, clip.y0 + 4);
            draw_text(&mut sheet, lx, ly, &t.lines[0], scale, clip, TEXT);
            let c2 = if t.mark == Mark::Plain { TEXT } else { border };
            draw_text(
                &mut sheet,
                lx,
                ly + line_height(scale),
                &t.lines[1],
                scale,
                clip,
                c2,
            );
        }
    }
    let data = sheet
        .into_raw()
        .iter()
        .map(|&v| f32::from(v) / 255.0)
        .collect();
    Image::from_rgb(cw as usize, ch as usize, data).expect("canvas size matches its samples")
}

/// A rendered sheet and its grid.
#[derive(Clone, Debug)]
pub struct Sheet {
    /// The sheet.
    pub image: Image,
    /// Where the tiles are (the grid is centred on the image).
    pub layout: Layout,
}

fn fmt_score(v: f64) -> String {
    if v.is_finite() {
        format!("{v:+.2}")
    } else {
        "N/A".into()
    }
}

/// One tile per candidate of `job`: "#03 S0.30" (with "K1", the seed's index, when there
/// are several seeds per strength; "#00 INPUT" for the input), then the fused score with
/// BEST / WORST on the chosen pair.
pub fn tiles(job: &Job) -> Result<Vec<Tile<'_>>> {
    let cands = job.candidates();
    if cands.is_empty() {
        return Err(Error::InvalidState(
            "no candidates yet: generate candidates first".into(),
        ));
    }
    let spw = job.options().seeds_per_strength;
    let choice = job.choice();
    Ok(cands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let first = match &c.spec {
                None => format!("#{i:02} INPUT"),
                Some(s) if spw > 1 => format!("#{i:02} S{:.2} K{}", s.strength, s.seed_index),
                Some(s) => format!("#{i:02} S{:.2}", s.strength),
            };
            let mark = match choice {
                Some((p, _)) if p == i => Mark::Preferred,
                Some((_, d)) if d == i => Mark::Dispreferred,
                _ => Mark::Plain,
            };
            let mut second = job
                .scores()
                .map_or_else(|| "N/A".into(), |s| fmt_score(s.fused[i]));
            match mark {
                Mark::Preferred => second.push_str(" BEST"),
                Mark::Dispreferred => second.push_str(" WORST"),
                Mark::Plain => {}
            }
            Tile {
                image: &c.image,
                lines: [first, second],
                mark,
            }
        })
        .collect())
}

/// The sheet of `job`'s candidates at its natural size ([`Layout::for_count`]).
pub fn natural(job: &Job) -> Result<Sheet> {
    let tiles = tiles(job)?;
    let layout = Layout::for_count(tiles.len());
    let image = render(&tiles, &layout, (layout.width, layout.height));
    Ok(Sheet { image, layout })
}

/// The sheet of `job`'s candidates as large as fits in `width` x `height`, centred on a
/// canvas of exactly that size (a host's frame).
pub fn fitted(job: &Job, width: u32, height: u32) -> Result<Sheet> {
    let tiles = tiles(job)?;
    let layout = Layout::fit(tiles.len(), width, height).ok_or_else(|| {
        Error::InvalidImage(format!(
            "a {width}x{height} contact sheet cannot hold {} candidates",
            tiles.len()
        ))
    })?;
    let image = render(&tiles, &layout, (width, height));
    Ok(Sheet { image, layout })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(img: &Image, x: u32, y: u32) -> [u8; 3] {
        img.pixel(x as usize, y as usize)
            .map(|v| (v * 255.0).round() as u8)
    }

    fn tile(img: &Image, i: usize, mark: Mark) -> Tile<'_> {
        Tile {
            image: img,
            lines: [format!("#{i:02} S0.30"), "+1.00".into()],
            mark,
        }
    }

    #[test]
    fn natural_grid_geometry() {
        let l = Layout::for_count(5);
        assert_eq!((l.cols, l.rows, l.thumb), (3, 2, 160));
        assert_eq!((l.tile_w, l.tile_h), (168, 160 + 42 + 8));
        assert_eq!((l.width, l.height), (3 * 168 + 4 * 8, 2 * 210 + 3 * 8));
        assert_eq!(l.text_scale(), 2);
        assert_eq!(l.origin(4), (8 + 168 + 8, 8 + 210 + 8));
        assert_eq!(Layout::for_count(0), Layout::for_count(1));
        assert_eq!(Layout::for_count(9).cols, 3);
        assert_eq!(Layout::for_count(10).cols, 4);
    }

    #[test]
    fn fit_fills_the_canvas_and_shrinks_text_with_it() {
        // A 16:9 frame with 7 candidates: 4 x 2 beats 3 x 3 on that shape.
        let l = Layout::fit(7, 1920, 1080).unwrap();
        assert_eq!((l.cols, l.rows), (4, 2));
        assert!(l.width <= 1920 && l.height <= 1080);
        assert_eq!(l.text_scale(), 4);
        // One pixel more thumbnail would not fit.
        let wider = Layout::grid(7, 4, l.thumb + 1, FIT_FRAMES[0].0);
        assert!(wider.width > 1920 || wider.height > 1080);
        let small = Layout::fit(3, 200, 200).unwrap();
        assert_eq!(small.text_scale(), 1);
        assert!(small.width <= 200 && small.height <= 200);
        let tiny = Layout::fit(3, 12, 12).unwrap();
        assert_eq!((tiny.text_scale(), tiny.label), (0, 0));
        assert!(tiny.thumb >= 1 && tiny.width <= 12 && tiny.height <= 12);
        assert_eq!(Layout::fit(3, 4, 4), None);
        assert_eq!(Layout::fit(1, 0, 100), None);
    }

    #[test]
    fn render_draws_frames_thumbnails_and_labels() {
        let red = Image::filled(40, 20, [1.0, 0.0, 0.0]).unwrap();
        let blue = Image::filled(20, 40, [0.0, 0.0, 1.0]).unwrap();
        let tiles = [
            tile(&red, 0, Mark::Plain),
            tile(&blue, 1, Mark::Preferred),
            tile(&red, 2, Mark::Dispreferred),
        ];
        let l = Layout::for_count(3);
        let img = render(&tiles, &l, (l.width, l.height));
        assert_eq!(
            (img.width() as u32, img.height() as u32),
            (l.width, l.height)
        );
        assert_eq!(px(&img, 0, 0), BACKGROUND);
        let centre = |i: usize| {
            let (x, y) = l.origin(i);
            (x + l.border + l.thumb / 2, y + l.border + l.thumb / 2)
        };
        let (x, y) = centre(0);
        assert_eq!(px(&img, x, y), [255, 0, 0]);
        // The wide image is letterboxed: black above it inside the frame.
        assert_eq!(px(&img, x, l.origin(0).1 + l.border + 2), [0, 0, 0]);
        let (x, y) = centre(1);
        assert_eq!(px(&img, x, y), [0, 0, 255]);
        for (i, colour) in [BORDER_PLAIN, BORDER_PREFERRED, BORDER_DISPREFERRED]
            .into_iter()
            .enumerate()
        {
            let (x, y) = l.origin(i);
            assert_eq!(
                px(&img, x + l.tile_w / 2, y + 1),
                colour,
                "frame of tile {i}"
            );
        }
        // The 4th slot stays background.
        let (x, y) = l.origin(3);
        assert_eq!(px(&img, x + l.tile_w / 2, y + 1), BACKGROUND);
        // Label text: white in the band of the plain tile, green in the preferred one's
        // second line.
        let band = |i: usize, colour: [u8; 3]| {
            let (x0, y0) = l.origin(i);
            let top = y0 + l.border + l.thumb;
            (x0..x0 + l.tile_w)
                .flat_map(|x| (top..y0 + l.tile_h - l.border).map(move |y| (x, y)))
                .filter(|&(x, y)| px(&img, x, y) == colour)
                .count()
        };
        assert!(band(0, TEXT) > 50);
        assert!(band(1, BORDER_PREFERRED) > 50);
        assert_eq!(band(0, BORDER_PREFERRED), 0);
    }

    #[test]
    fn labels_never_leave_their_tile() {
        let img = Image::filled(8, 8, [0.5; 3]).unwrap();
        let long = Tile {
            image: &img,
            lines: [
                "#00 A VERY LONG LABEL THAT DOES NOT FIT".into(),
                String::new(),
            ],
            mark: Mark::Plain,
        };
        let l = Layout::fit(2, 200, 120).unwrap();
        assert_eq!((l.cols, l.text_scale()), (2, 1));
        let sheet = render(&[long], &l, (200, 120));
        // Tile 1 is empty: no text pixel may have run into its slot or the gap before it.
        let ox = (200 - l.width) / 2;
        let (x1, _) = l.origin(1);
        for x in ox + l.tile_w + l.gap..(ox + x1 + l.tile_w).min(200) {
            for y in 0..120 {
                assert_ne!(px(&sheet, x, y), TEXT, "text at ({x}, {y})");
            }
        }
    }
}
