//! Host-owned images: any depth, RGB or RGBA, rows bottom-up or top-down, padded rows.

use crate::ofx::*;

/// A host-owned image. `row_bytes` may be negative (rows stored top-down) and may include
/// padding; `ptr` is the address of pixel (x1, y1), the bottom-left one.
pub struct ImageBuf {
    storage: Vec<u8>,
    pub bounds: [i32; 4],
    pub depth: &'static str,
    pub comps: usize,
    pub row_bytes: isize,
    pub(crate) ptr: *mut u8,
}
unsafe impl Send for ImageBuf {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Positive rowBytes (the OFX norm: row y1 first in memory).
    BottomUp,
    /// Negative rowBytes (row y2-1 first in memory).
    TopDown,
}

pub fn depth_bytes(depth: &str) -> usize {
    match depth {
        DEPTH_BYTE => 1,
        DEPTH_SHORT => 2,
        _ => 4,
    }
}

impl ImageBuf {
    /// A zeroed image; `pad` extra bytes per row.
    pub fn new(
        w: usize,
        h: usize,
        depth: &'static str,
        comps: usize,
        rows: Rows,
        pad: usize,
    ) -> ImageBuf {
        let rb = w * comps * depth_bytes(depth) + pad;
        let mut storage = vec![0u8; rb * h.max(1)];
        let base = storage.as_mut_ptr();
        let (ptr, row_bytes) = match rows {
            Rows::BottomUp => (base, rb as isize),
            Rows::TopDown => (unsafe { base.add(rb * (h.max(1) - 1)) }, -(rb as isize)),
        };
        ImageBuf {
            storage,
            bounds: [0, 0, w as i32, h as i32],
            depth,
            comps,
            row_bytes,
            ptr,
        }
    }
    pub fn width(&self) -> usize {
        (self.bounds[2] - self.bounds[0]) as usize
    }
    pub fn height(&self) -> usize {
        (self.bounds[3] - self.bounds[1]) as usize
    }
    fn at(&self, x: usize, y_up: usize) -> *mut u8 {
        let off =
            y_up as isize * self.row_bytes + (x * self.comps * depth_bytes(self.depth)) as isize;
        let p = self.ptr.wrapping_offset(off);
        debug_assert!(p >= self.storage.as_ptr() as *mut u8);
        p
    }
    /// RGBA in 0..1 of pixel (x, row `r` counted from the top).
    pub fn get(&self, x: usize, r: usize) -> [f32; 4] {
        let p = self.at(x, self.height() - 1 - r);
        let mut o = [0.0, 0.0, 0.0, 1.0];
        for (c, v) in o.iter_mut().enumerate().take(self.comps) {
            *v = unsafe {
                match self.depth {
                    DEPTH_BYTE => *p.add(c) as f32 / 255.0,
                    DEPTH_SHORT => (p as *const u16).add(c).read_unaligned() as f32 / 65535.0,
                    _ => (p as *const f32).add(c).read_unaligned(),
                }
            };
        }
        o
    }
    pub fn put(&mut self, x: usize, r: usize, v: [f32; 4]) {
        let p = self.at(x, self.height() - 1 - r);
        for (c, x) in v.iter().enumerate().take(self.comps) {
            unsafe {
                match self.depth {
                    DEPTH_BYTE => *p.add(c) = (x.clamp(0.0, 1.0) * 255.0).round() as u8,
                    DEPTH_SHORT => (p as *mut u16)
                        .add(c)
                        .write_unaligned((x.clamp(0.0, 1.0) * 65535.0).round() as u16),
                    _ => (p as *mut f32).add(c).write_unaligned(*x),
                }
            }
        }
    }
    pub fn from_rgba8(
        img: &image::RgbaImage,
        depth: &'static str,
        comps: usize,
        rows: Rows,
        pad: usize,
    ) -> ImageBuf {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut b = ImageBuf::new(w, h, depth, comps, rows, pad);
        for (x, y, p) in img.enumerate_pixels() {
            let v = p.0.map(|c| c as f32 / 255.0);
            b.put(x as usize, y as usize, v);
        }
        b
    }
    pub fn to_rgba8(&self) -> image::RgbaImage {
        image::RgbaImage::from_fn(self.width() as u32, self.height() as u32, |x, y| {
            image::Rgba(
                self.get(x as usize, y as usize)
                    .map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8),
            )
        })
    }
    /// Largest absolute channel difference (RGB + alpha) with `o`, in 0..1 units.
    pub fn max_diff(&self, o: &ImageBuf) -> f32 {
        assert_eq!((self.width(), self.height()), (o.width(), o.height()));
        let mut m = 0f32;
        for r in 0..self.height() {
            for x in 0..self.width() {
                let (a, b) = (self.get(x, r), o.get(x, r));
                for c in 0..4 {
                    m = m.max((a[c] - b[c]).abs());
                }
            }
        }
        m
    }
}
