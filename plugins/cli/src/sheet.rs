//! The candidate contact sheet: a labelled grid of thumbnails, drawn with a built-in 5x7
//! bitmap font (no font files).

use image::{imageops, Rgb, RgbImage};
use serde::Serialize;

/// 5x7 glyphs; each row's low 5 bits, bit 4 = leftmost pixel.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '/' => [0x01, 0x02, 0x02, 0x04, 0x08, 0x08, 0x10],
        ' ' => [0; 7],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04], // '?'
    }
}

/// Text scale: each font pixel is SCALE x SCALE image pixels.
const SCALE: u32 = 2;
/// Horizontal advance per character.
const ADVANCE: u32 = 6 * SCALE;
/// Line height.
const LINE: u32 = 7 * SCALE + 4;

/// Draws `text` with its top-left corner at (x, y), clipped to the image.
pub fn draw_text(img: &mut RgbImage, x: u32, y: u32, text: &str, color: Rgb<u8>) {
    for (i, c) in text.chars().enumerate() {
        let g = glyph(c);
        let cx = x + i as u32 * ADVANCE;
        for (row, bits) in g.iter().enumerate() {
            for col in 0..5u32 {
                if bits & (0x10 >> col) == 0 {
                    continue;
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        let px = cx + col * SCALE + dx;
                        let py = y + row as u32 * SCALE + dy;
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, color);
                        }
                    }
                }
            }
        }
    }
}

/// How a tile is marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    None,
    Best,
    Worst,
}

pub const BACKGROUND: [u8; 3] = [20, 20, 20];
pub const BORDER_PLAIN: [u8; 3] = [90, 90, 90];
pub const BORDER_BEST: [u8; 3] = [40, 200, 60];
pub const BORDER_WORST: [u8; 3] = [230, 50, 40];
const TEXT: [u8; 3] = [240, 240, 240];

impl Mark {
    fn color(self) -> [u8; 3] {
        match self {
            Mark::None => BORDER_PLAIN,
            Mark::Best => BORDER_BEST,
            Mark::Worst => BORDER_WORST,
        }
    }
}

/// The grid geometry (also written to candidates.json so tools can find tiles).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Layout {
    pub cols: u32,
    pub rows: u32,
    /// Side of the square thumbnail box.
    pub thumb: u32,
    pub border: u32,
    pub label: u32,
    pub gap: u32,
    pub tile_w: u32,
    pub tile_h: u32,
    pub width: u32,
    pub height: u32,
}

impl Layout {
    /// The grid for `n` tiles: `ceil(sqrt(n))` columns.
    pub fn for_count(n: usize) -> Self {
        let n = n.max(1) as u32;
        let mut cols = (n as f64).sqrt().ceil() as u32;
        while cols * cols < n {
            cols += 1;
        }
        let rows = n.div_ceil(cols);
        let (thumb, border, gap) = (160, 4, 8);
        let label = 2 * LINE + 6;
        let tile_w = thumb + 2 * border;
        let tile_h = thumb + label + 2 * border;
        Self {
            cols,
            rows,
            thumb,
            border,
            label,
            gap,
            tile_w,
            tile_h,
            width: cols * tile_w + (cols + 1) * gap,
            height: rows * tile_h + (rows + 1) * gap,
        }
    }
    /// Top-left corner of tile `i`.
    pub fn origin(&self, i: usize) -> (u32, u32) {
        let (c, r) = (i as u32 % self.cols, i as u32 / self.cols);
        (
            self.gap + c * (self.tile_w + self.gap),
            self.gap + r * (self.tile_h + self.gap),
        )
    }
}

/// One tile's content.
pub struct Tile {
    pub image: RgbImage,
    pub line1: String,
    pub line2: String,
    pub mark: Mark,
}

/// Renders the sheet.
pub fn render(tiles: &[Tile]) -> (RgbImage, Layout) {
    let l = Layout::for_count(tiles.len());
    let mut sheet = RgbImage::from_pixel(l.width, l.height, Rgb(BACKGROUND));
    for (i, t) in tiles.iter().enumerate() {
        let (x0, y0) = l.origin(i);
        let border = Rgb(t.mark.color());
        for y in y0..y0 + l.tile_h {
            for x in x0..x0 + l.tile_w {
                let inner = x >= x0 + l.border
                    && x < x0 + l.tile_w - l.border
                    && y >= y0 + l.border
                    && y < y0 + l.tile_h - l.border;
                sheet.put_pixel(x, y, if inner { Rgb([0, 0, 0]) } else { border });
            }
        }
        let (w, h) = t.image.dimensions();
        if w > 0 && h > 0 {
            let s = (l.thumb as f64 / w as f64).min(l.thumb as f64 / h as f64);
            let tw = ((w as f64 * s).round() as u32).clamp(1, l.thumb);
            let th = ((h as f64 * s).round() as u32).clamp(1, l.thumb);
            let filter = if s >= 1.0 {
                imageops::FilterType::Nearest
            } else {
                imageops::FilterType::Triangle
            };
            let thumb = imageops::resize(&t.image, tw, th, filter);
            let tx = x0 + l.border + (l.thumb - tw) / 2;
            let ty = y0 + l.border + (l.thumb - th) / 2;
            imageops::replace(&mut sheet, &thumb, tx as i64, ty as i64);
        }
        let lx = x0 + l.border + 4;
        let ly = y0 + l.border + l.thumb + 4;
        draw_text(&mut sheet, lx, ly, &t.line1, Rgb(TEXT));
        let c2 = if t.mark == Mark::None {
            Rgb(TEXT)
        } else {
            border
        };
        draw_text(&mut sheet, lx, ly + LINE, &t.line2, c2);
    }
    (sheet, l)
}
