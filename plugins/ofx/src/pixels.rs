//! Pixel conversions between the host's depths and RGBA f32.

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
