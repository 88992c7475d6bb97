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
            // Input tiles: V[e][ci][t] = (B^T d B)[e], a row of tiles at a time: the four
            // input rows (padding and upsampling resolved once), B^T down each column of
            // them, then B across each tile's four columns; every loop runs along the row
            // and every store is contiguous, so both vectorise.
            let vp = Ptr(v.as_mut_ptr());
            let wp = 2 * tw + 2;
            (0..cin).into_par_iter().for_each_init(
                || (vec![0f32; 4 * wp], vec![0f32; 4 * wp]),
                |(rows, comb), ci| {
                    let plane = &x[ci * hs * ws..(ci + 1) * hs * ws];
                    for ty in 0..nty {
                        let y = (2 * (ty0 + ty)) as isize - pad as isize;
                        for (r, row) in rows.chunks_exact_mut(wp).enumerate() {
                            let iy = y + r as isize;
                            if iy < 0 || iy >= h as isize {
                                row.fill(0.0);
                                continue;
                            }
                            let src = &plane[(iy as usize / up) * ws..][..ws];
                            for (c, e) in row.iter_mut().enumerate() {
                                let ix = c as isize - pad as isize;
                                *e = if ix < 0 || ix >= w as isize {
                                    0.0
                                } else {
                                    src[ix as usize / up]
                                };
                            }
                        }
                        let t0 = ty * tw;
                        super::simd(
                            #[inline(always)]
                            || {
                                let (r0, rest) = rows.split_at(wp);
                                let (r1, rest) = rest.split_at(wp);
                                let (r2, r3) = rest.split_at(wp);
                                let (c0, rest) = comb.split_at_mut(wp);
                                let (c1, rest) = rest.split_at_mut(wp);
                                let (c2, c3) = rest.split_at_mut(wp);
                                for c in 0..wp {
                                    c0[c] = r0[c] - r2[c];
                                    c1[c] = r1[c] + r2[c];
                                    c2[c] = r2[c] - r1[c];
                                    c3[c] = r1[c] - r3[c];
                                }
                                for (i, cr) in comb.chunks_exact(wp).enumerate() {
                                    let out = |j: usize| {
                                        // SAFETY: the (e, ci) row's tiles t0..t0+tw are
                                        // this task's elements, inside v.
                                        unsafe {
                                            std::slice::from_raw_parts_mut(
                                                vp.at(((i * 4 + j) * cin + ci) * nt + t0),
                                                tw,
                                            )
                                        }
                                    };
                                    let a = |k: usize, tx: usize| cr[2 * tx + k];
                                    for (tx, o) in out(0).iter_mut().enumerate() {
                                        *o = a(0, tx) - a(2, tx);
                                    }
                                    for (tx, o) in out(1).iter_mut().enumerate() {
                                        *o = a(1, tx) + a(2, tx);
                                    }
                                    for (tx, o) in out(2).iter_mut().enumerate() {
                                        *o = a(2, tx) - a(1, tx);
                                    }
                                    for (tx, o) in out(3).iter_mut().enumerate() {
                                        *o = a(1, tx) - a(3, tx);
                                    }
                                }
                            },
                        );
                    }
                },
            );
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
            // Output tiles: Y = A^T M A, added to the bias (or to what `out` holds), a row
            // of tiles at a time with loops along the row, as for the input.
            let m = &*m;
            (0..cout).into_par_iter().for_each_init(
                || vec![0f32; 4 * tw],
                |cols, co| {
                    for ty in 0..nty {
                        let t0 = ty * tw;
                        let q =
                            |i: usize, c: usize| &m[((i * 4 + c) * cout + co) * nt + t0..][..tw];
                        for i in 0..2 {
                            let oy = 2 * (ty0 + ty) + i;
                            if oy >= ho {
                                continue;
                            }
                            // SAFETY: output channel `co` belongs to this task.
                            let row = unsafe {
                                std::slice::from_raw_parts_mut(dst.at((co * ho + oy) * wo), wo)
                            };
                            super::simd(
                                #[inline(always)]
                                || {
                                    // A^T down the columns: row i of the 2x4 intermediate.
                                    for (c, col) in cols.chunks_exact_mut(tw).enumerate() {
                                        let (q0, q1, q2, q3) = (q(0, c), q(1, c), q(2, c), q(3, c));
                                        for tx in 0..tw {
                                            col[tx] = if i == 0 {
                                                q0[tx] + q1[tx] + q2[tx]
                                            } else {
                                                q1[tx] - q2[tx] - q3[tx]
                                            };
                                        }
                                    }
                                    // A across each tile's columns: two outputs per tile.
                                    let (k0, rest) = cols.split_at(tw);
                                    let (k1, rest) = rest.split_at(tw);
                                    let (k2, k3) = rest.split_at(tw);
                                    for tx in 0..tw {
                                        let r =
                                            [k0[tx] + k1[tx] + k2[tx], k1[tx] - k2[tx] - k3[tx]];
                                        for (j, val) in r.into_iter().enumerate() {
                                            let ox = 2 * tx + j;
                                            if ox < wo {
                                                row[ox] =
                                                    if accumulate { row[ox] + val } else { val };
                                            }
                                        }
                                    }
                                },
                            );
                        }
                    }
                },
            );
        }
    });
}
