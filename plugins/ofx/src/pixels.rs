//! Pixel conversions, the contact sheet and the input/result mix.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    U8,
    U16,
    F32,
}

impl Depth {
    pub fn parse(s: &str) -> Option<Depth> {
        match s {
            crate::ofx::DEPTH_BYTE => Some(Depth::U8),
            crate::ofx::DEPTH_SHORT => Some(Depth::U16),
            crate::ofx::DEPTH_FLOAT => Some(Depth::F32),
            _ => None,
        }
    }
    pub fn bytes(self) -> usize {
        match self {
            Depth::U8 => 1,
            Depth::U16 => 2,
            Depth::F32 => 4,
        }
    }
    pub fn ttpo_format(self) -> u32 {
        match self {
            Depth::U8 => crate::engine::FORMAT_U8,
            Depth::U16 => crate::engine::FORMAT_U16,
            Depth::F32 => crate::engine::FORMAT_F32,
        }
    }
}

/// Reads one pixel (`comps` = 3 or 4 channels) as RGBA in 0..1 (float kept as is).
///
/// # Safety
/// `p` must point to a readable pixel of that depth and size.
pub unsafe fn read(p: *const u8, depth: Depth, comps: usize) -> [f32; 4] {
    let mut o = [0.0, 0.0, 0.0, 1.0];
    for (c, v) in o.iter_mut().enumerate().take(comps) {
        *v = match depth {
            Depth::U8 => *p.add(c) as f32 / 255.0,
            Depth::U16 => (p as *const u16).add(c).read_unaligned() as f32 / 65535.0,
            Depth::F32 => (p as *const f32).add(c).read_unaligned(),
        };
    }
    o
}

/// Writes one RGBA pixel.
///
/// # Safety
/// `p` must point to a writable pixel of that depth and size.
pub unsafe fn write(p: *mut u8, depth: Depth, comps: usize, v: [f32; 4]) {
    for (c, x) in v.iter().enumerate().take(comps) {
        match depth {
            Depth::U8 => *p.add(c) = (x.clamp(0.0, 1.0) * 255.0).round() as u8,
            Depth::U16 => (p as *mut u16)
                .add(c)
                .write_unaligned((x.clamp(0.0, 1.0) * 65535.0).round() as u16),
            Depth::F32 => (p as *mut f32).add(c).write_unaligned(*x),
        }
    }
}

/// 3x5 digits, one row per 3 bits (MSB left).
const FONT: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 2, 2, 2],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

/// Every candidate (RGBA f32, top row first, `w`x`h`) shrunk into a grid of the same size,
/// each labelled with its index (white on black, top-left).
pub fn contact_sheet(cands: &[std::sync::Arc<Vec<f32>>], w: usize, h: usize) -> Vec<f32> {
    let mut out = vec![0f32; w * h * 4];
    for px in out.chunks_mut(4) {
        px[3] = 1.0;
    }
    let n = cands.len().max(1);
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let (cw, ch) = ((w / cols).max(1), (h / rows).max(1));
    for (i, c) in cands.iter().enumerate() {
        let (ox, oy) = ((i % cols) * cw, (i / cols) * ch);
        for y in 0..ch {
            for x in 0..cw {
                let (dx, dy) = (ox + x, oy + y);
                if dx >= w || dy >= h {
                    continue;
                }
                let (sx, sy) = ((x * w / cw).min(w - 1), (y * h / ch).min(h - 1));
                let s = (sy * w + sx) * 4;
                let d = (dy * w + dx) * 4;
                out[d..d + 4].copy_from_slice(&c[s..s + 4]);
            }
        }
        // The index label.
        let digits: Vec<usize> = i.to_string().bytes().map(|b| (b - b'0') as usize).collect();
        let sc = (ch / 24).max(1);
        let (lw, lh) = ((digits.len() * 4 + 1) * sc, 7 * sc);
        for y in 0..lh {
            for x in 0..lw {
                let (dx, dy) = (ox + x, oy + y);
                if dx >= w || dy >= h || x >= cw || y >= ch {
                    continue;
                }
                let (gx, gy) = (x / sc, y / sc);
                let mut on = false;
                if (1..6).contains(&gy) && gx >= 1 {
                    let k = (gx - 1) / 4;
                    let col = (gx - 1) % 4;
                    if k < digits.len() && col < 3 {
                        on = FONT[digits[k]][gy - 1] & (4 >> col) != 0;
                    }
                }
                let d = (dy * w + dx) * 4;
                let v = if on { 1.0 } else { 0.0 };
                out[d..d + 3].copy_from_slice(&[v, v, v]);
                out[d + 3] = 1.0;
            }
        }
    }
    out
}
