//! 3x3 stride-1 convolution by Winograd's F(2x2, 3x3): each 2x2 output tile costs 16
//! multiplies per (input, output) channel pair instead of 36, as 16 gemms of
//! (Cout x Cin) by (Cin x tiles) between a transform of the input tiles (B^T d B) and of
//! the output (A^T m A). The kernel transform (G g G^T) is made once per layer. The
//! transforms use only 0, +-1 and +-1/2, so the result stays within a few ulp of the
//! direct convolution. Tiles are processed a band of tile rows at a time so the
//! transformed buffers stay small (and are reused between calls).

use rayon::prelude::*;
use std::cell::RefCell;

/// Floats in one band's transformed input or output (16 MiB).
const BAND_FLOATS: usize = 1 << 22;

thread_local! {
    static BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// The kernel (Cout, Cin, 3, 3) transformed to 16 matrices (Cout x Cin), `U[e] = (G g G^T)[e]`.
pub(crate) fn transform_kernel(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let mut u = vec![0f32; 16 * cout * cin];
    let g_rows = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    for co in 0..cout {
        for ci in 0..cin {
            let g = &w[(co * cin + ci) * 9..][..9];
            // G g: 4 x 3.
            let cols: Vec<[f32; 4]> = (0..3).map(|j| g_rows(g[j], g[3 + j], g[6 + j])).collect();
            for i in 0..4 {
                let r = g_rows(cols[0][i], cols[1][i], cols[2][i]);
                for (j, v) in r.into_iter().enumerate() {
                    u[((i * 4 + j) * cout + co) * cin + ci] = v;
                }
            }
        }
    }
    u
}

/// A raw pointer for tasks writing disjoint elements.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: every task writes its own elements only.
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}
impl Ptr {
    /// # Safety
    /// `i` in bounds, no other task writes element `i`.
    unsafe fn write(self, i: usize, v: f32) {
        *self.0.add(i) = v
    }
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Shape of one convolution call.
pub(crate) struct Shape {
    pub cin: usize,
    pub cout: usize,
    /// Input plane as stored.
    pub hs: usize,
    pub ws: usize,
    /// Nearest-neighbour upsampling applied to the input first (1 or 2).
    pub up: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

/// One image: `x` (Cin, hs, ws) into `out` (Cout, ho, wo), which already holds the bias
/// when `accumulate`.
// The tile transforms index 4x4 arrays by (row, column) on purpose.
#[allow(clippy::needless_range_loop)]
pub(crate) fn conv3x3(x: &[f32], u: &[f32], sh: &Shape, out: &mut [f32], accumulate: bool) {
    let Shape {
        cin,
        cout,
        hs,
        ws,
        up,
        pad,
        ho,
        wo,
    } = *sh;
    let (h, w) = (hs * up, ws * up);
    let (th, tw) = (ho.div_ceil(2), wo.div_ceil(2));
    let band = (BAND_FLOATS / (16 * cin.max(cout) * tw)).clamp(1, th);
    let dst = Ptr(out.as_mut_ptr());
    BUFFERS.with(|b| {
        let (vbuf, mbuf) = &mut *b.borrow_mut();
        let need_v = 16 * cin * band * tw;
        let need_m = 16 * cout * band * tw;
        if vbuf.len() < need_v {
            vbuf.resize(need_v, 0.0);
        }
        if mbuf.len() < need_m {
            mbuf.resize(need_m, 0.0);
        }
        for ty0 in (0..th).step_by(band) {
            let nty = band.min(th - ty0);
            let nt = nty * tw;
            let v = &mut vbuf[..16 * cin * nt];
            let m = &mut mbuf[..16 * cout * nt];
            // Input tiles: V[e][ci][t] = (B^T d B)[e].
            let vp = Ptr(v.as_mut_ptr());
            (0..cin).into_par_iter().for_each(|ci| {
                let plane = &x[ci * hs * ws..(ci + 1) * hs * ws];
                let at = |iy: isize, ix: isize| -> f32 {
                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                        0.0
                    } else {
                        plane[(iy as usize / up) * ws + ix as usize / up]
                    }
                };
                for ty in 0..nty {
                    let y = (2 * (ty0 + ty)) as isize - pad as isize;
                    for tx in 0..tw {
                        let xx = (2 * tx) as isize - pad as isize;
                        let mut d = [[0f32; 4]; 4];
                        for (r, row) in d.iter_mut().enumerate() {
                            for (c, e) in row.iter_mut().enumerate() {
                                *e = at(y + r as isize, xx + c as isize);
                            }
                        }
                        // B^T d (rows), then (.) B (columns).
                        let bt = |a: [f32; 4]| [a[0] - a[2], a[1] + a[2], a[2] - a[1], a[1] - a[3]];
                        let cols = [0, 1, 2, 3].map(|c| bt([d[0][c], d[1][c], d[2][c], d[3][c]]));
                        let t = ty * tw + tx;
                        for i in 0..4 {
                            let r = bt([cols[0][i], cols[1][i], cols[2][i], cols[3][i]]);
                            for (j, val) in r.into_iter().enumerate() {
                                // SAFETY: (e, ci, t) is this task's element, inside v.
                                unsafe { vp.write(((i * 4 + j) * cin + ci) * nt + t, val) };
                            }
                        }
                    }
                }
            });
            // M[e] = U[e] V[e]: 16 independent gemms.
            let mp = Ptr(m.as_mut_ptr());
            let v = &*v;
            (0..16).into_par_iter().for_each(|e| {
                // SAFETY: M[e] is (cout x nt) inside m, written by this task only; U[e]
                // (cout x cin) and V[e] (cin x nt) are in bounds.
                unsafe {
                    super::conv2d::gemm_f32(
                        cout,
                        nt,
                        cin,
                        mp.at(e * cout * nt),
                        nt,
                        &u[e * cout * cin..(e + 1) * cout * cin],
                        cin,
                        &v[e * cin * nt..(e + 1) * cin * nt],
                        nt,
                        false,
                        gemm::Parallelism::None,
                    )
                };
            });
            // Output tiles: Y = A^T M A, added to the bias.
            let m = &*m;
            (0..cout).into_par_iter().for_each(|co| {
                let at = |t: usize| -> [[f32; 4]; 4] {
                    let mut q = [[0f32; 4]; 4];
                    for (i, row) in q.iter_mut().enumerate() {
                        for (j, e) in row.iter_mut().enumerate() {
                            *e = m[((i * 4 + j) * cout + co) * nt + t];
                        }
                    }
                    q
                };
                let a = |r: [f32; 4]| [r[0] + r[1] + r[2], r[1] - r[2] - r[3]];
                for ty in 0..nty {
                    for tx in 0..tw {
                        let q = at(ty * tw + tx);
                        let cols = [0, 1, 2, 3].map(|c| a([q[0][c], q[1][c], q[2][c], q[3][c]]));
                        for i in 0..2 {
                            let oy = 2 * (ty0 + ty) + i;
                            if oy >= ho {
                                continue;
                            }
                            let r = a([cols[0][i], cols[1][i], cols[2][i], cols[3][i]]);
                            for (j, val) in r.into_iter().enumerate() {
                                let ox = 2 * tx + j;
                                if ox < wo {
                                    let idx = (co * ho + oy) * wo + ox;
                                    // SAFETY: output channel `co` belongs to this task.
                                    unsafe {
                                        let p = dst.at(idx);
                                        *p = if accumulate { *p + val } else { val };
                                    }
                                }
                            }
                        }
                    }
                }
            });
        }
    });
}
