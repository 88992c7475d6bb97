//! A clip image fetched from the host for one render: its pixels in OFX coordinates, seen
//! by libttpo as a `ttpo_image`, and hashed for the cache. Released on drop.

use std::ffi::{c_int, c_void, CStr};
use std::hash::Hasher;

use crate::engine;
use crate::ofx::*;
use crate::pixels::Depth;
use crate::suites::{Props, Suites};

pub struct Image {
    s: Suites,
    handle: Handle,
    data: *mut u8,
    pub bounds: [i32; 4],
    row_bytes: isize,
    pub depth: Depth,
    pub comps: usize,
}

impl Drop for Image {
    fn drop(&mut self) {
        unsafe { (self.s.effect.clip_release_image)(self.handle) };
    }
}

impl Image {
    pub unsafe fn fetch(s: &Suites, effect: Handle, clip: &CStr, t: f64) -> Result<Image, String> {
        let mut ch = std::ptr::null_mut();
        if (s.effect.clip_get_handle)(effect, clip.as_ptr(), &mut ch, std::ptr::null_mut())
            != STAT_OK
        {
            return Err(format!("no clip {clip:?}"));
        }
        let mut h = std::ptr::null_mut();
        if (s.effect.clip_get_image)(ch, t, std::ptr::null(), &mut h) != STAT_OK || h.is_null() {
            return Err(format!("host gave no image for clip {clip:?}"));
        }
        let p = Props { s: s.prop, h };
        let mut img = Image {
            s: *s,
            handle: h,
            data: p
                .get_ptr("OfxImagePropData", 0)
                .unwrap_or(std::ptr::null_mut()) as *mut u8,
            bounds: [0; 4],
            row_bytes: p.get_int("OfxImagePropRowBytes", 0).unwrap_or(0) as isize,
            depth: Depth::U8,
            comps: 4,
        };
        for i in 0..4 {
            img.bounds[i] = p.get_int("OfxImagePropBounds", i as c_int).unwrap_or(0);
        }
        let depth = p
            .get_str("OfxImageEffectPropPixelDepth", 0)
            .unwrap_or_default();
        img.depth =
            Depth::parse(&depth).ok_or_else(|| format!("unsupported pixel depth {depth:?}"))?;
        let comps = p
            .get_str("OfxImageEffectPropComponents", 0)
            .unwrap_or_default();
        img.comps = match comps.as_str() {
            COMPONENT_RGBA => 4,
            COMPONENT_RGB => 3,
            _ => return Err(format!("unsupported components {comps:?}")),
        };
        let (w, hh) = (img.width(), img.height());
        if img.data.is_null() || w == 0 || hh == 0 {
            return Err(format!("clip {clip:?}: empty image"));
        }
        if img.row_bytes.unsigned_abs() < w * img.px() {
            return Err(format!(
                "clip {clip:?}: row bytes {} too small",
                img.row_bytes
            ));
        }
        Ok(img)
    }
    pub fn width(&self) -> usize {
        (self.bounds[2] - self.bounds[0]).max(0) as usize
    }
    pub fn height(&self) -> usize {
        (self.bounds[3] - self.bounds[1]).max(0) as usize
    }
    fn px(&self) -> usize {
        self.depth.bytes() * self.comps
    }
    /// Address of pixel (x, y) in OFX coordinates (y up; `data` is at (x1, y1)).
    pub fn at(&self, x: i32, y: i32) -> *mut u8 {
        let off = (y - self.bounds[1]) as isize * self.row_bytes
            + (x - self.bounds[0]) as isize * self.px() as isize;
        self.data.wrapping_offset(off)
    }
    /// A ttpo_image of the whole image, top row first (stride = -rowBytes).
    pub fn ttpo(&self) -> engine::TtpoImage {
        engine::TtpoImage {
            data: self.at(self.bounds[0], self.bounds[3] - 1) as *mut c_void,
            width: self.width() as u32,
            height: self.height() as u32,
            stride: -self.row_bytes,
            format: self.depth.ttpo_format(),
            layout: if self.comps == 4 {
                engine::LAYOUT_RGBA
            } else {
                engine::LAYOUT_RGB
            },
        }
    }
    pub fn content_hash(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write_usize(self.width());
        h.write_usize(self.height());
        h.write_usize(self.px());
        h.write_u8(self.depth as u8);
        let row = self.width() * self.px();
        for y in self.bounds[1]..self.bounds[3] {
            h.write(unsafe { std::slice::from_raw_parts(self.at(self.bounds[0], y), row) });
        }
        h.finish()
    }
}
