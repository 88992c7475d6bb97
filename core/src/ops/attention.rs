//! Scaled dot-product attention on (B, N, heads*dim) inputs.
//!
//! The CPU kernel never materialises the (B, heads, N, M) score tensor: each task takes one
//! (batch, head) and a block of query rows, computes that block's scores with one gemm into
//! a reused buffer, applies the softmax in place and multiplies by V with a second gemm
//! written straight into the (B, N, heads*dim) output. q, k and v are read in their
//! projection layout through strides, so no head split, transpose or copy is made. Each
//! row's scores are complete in its block, so the softmax is exact (no running rescale).

use super::conv2d::gemm_f32;
use super::{cpu_f32, cpu_tensor, exp_f32, uninit_vec, with_f32};
use candle_core::{Result, Tensor};
use rayon::prelude::*;
use std::cell::RefCell;

/// Scores per task (query rows x keys): 2 MiB, so that the block's softmax runs in cache
/// and K and V are packed by the gemm once per 128 query rows at SD's 4096 tokens.
const SCORES_PER_TASK: usize = 1 << 19;

/// Largest score matrix candle's path computes in one piece (elements).
pub const MAX_SCORE_ELEMENTS: usize = 1 << 29;

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Attention of `q` (B, N, C) over `k`, `v` (B, M, C) with `heads` heads of C/heads
/// channels, scaled by 1/sqrt(C/heads); returns (B, N, C).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    if cpu_f32(q) && cpu_f32(k) && cpu_f32(v) {
        attention_cpu(q, k, v, heads)
    } else {
        attention_reference(q, k, v, heads, MAX_SCORE_ELEMENTS)
    }
}

/// A raw output pointer shared by tasks that write disjoint parts.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tasks write disjoint (row block, head) regions only.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY (of the callers): offsets stay inside the output vector.
        self.0.wrapping_add(offset)
    }
}

fn attention_cpu(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, n, c) = q.dims3()?;
    let (bk, m, ck) = k.dims3()?;
    if bk != b || ck != c || v.dims3()? != (b, m, c) || heads == 0 || c % heads != 0 {
        candle_core::bail!(
            "attention: q {:?}, k {:?}, v {:?}, {heads} heads",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    let d = c / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = uninit_vec(b * n * c);
    let dst = Out(out.as_mut_ptr());
    let rows_per_task = (SCORES_PER_TASK / m.max(1)).max(16).min(n.max(1));
    let blocks = n.div_ceil(rows_per_task);
    with_f32(q, |qs| {
        with_f32(k, |ks| {
            with_f32(v, |vs| {
                (0..b * heads * blocks).into_par_iter().for_each(|task| {
                    let (bh, blk) = (task / blocks, task % blocks);
                    let (bi, h) = (bh / heads, bh % heads);
                    let r0 = blk * rows_per_task;
                    let rows = rows_per_task.min(n - r0);
                    let qo = (bi * n + r0) * c + h * d;
                    let kvo = bi * m * c + h * d;
                    SCORES.with(|s| {
                        let mut s = s.borrow_mut();
                        if s.len() < rows * m {
                            s.resize(rows * m, 0.0);
                        }
                        let s = &mut s[..rows * m];
                        // S = scale * Q_blk K^T: (rows x d) * (d x m); K^T is k read with
                        // row stride 1 and column stride C.
                        // SAFETY: all operands index inside qs/ks/s (offsets checked by the
                        // shapes above).
                        unsafe {
                            gemm::gemm(
                                rows,
                                m,
                                d,
                                s.as_mut_ptr(),
                                1,
                                m as isize,
                                false,
                                qs[qo..].as_ptr(),
                                1,
                                c as isize,
                                ks[kvo..].as_ptr(),
                                c as isize,
                                1,
                                0.0,
                                scale,
                                false,
                                false,
                                false,
                                gemm::Parallelism::None,
                            )
                        };
                        super::simd(
                            #[inline(always)]
                            || {
                                for row in s.chunks_exact_mut(m) {
                                    softmax_in_place(row);
                                }
                            },
                        );
                        // O_blk = P V: (rows x m) * (m x d) into the output's (row, head)
                        // block. SAFETY: disjoint per task; operands in bounds.
                        unsafe {
                            gemm_f32(
                                rows,
                                d,
                                m,
                                dst.at(qo),
                                c,
                                s,
                                m,
                                &vs[kvo..],
                                c,
                                false,
                                gemm::Parallelism::None,
                            )
                        };
                    });
                })
            })
        })
    })???;
    cpu_tensor(out, &[b, n, c])
}

#[inline(always)]
fn softmax_in_place(row: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = row.chunks_exact(16);
    for ch in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(ch) {
            *l = l.max(x);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |a, &x| a.max(x));
    let mut acc = [0f32; 16];
    let mut chunks = row.chunks_exact_mut(16);
    for ch in &mut chunks {
        for (a, x) in acc.iter_mut().zip(ch.iter_mut()) {
            *x = exp_f32(*x - max);
            *a += *x;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp_f32(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// candle's attention (the reference, and the path on GPUs): heads split out, scores in
/// blocks of query rows so that no score matrix exceeds `max_scores` elements (cuBLAS fails
/// beyond 2^31, seen at batch 30 on SD's 4096-token level).
pub fn attention_reference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    max_scores: usize,
) -> Result<Tensor> {
    let (b, n, c) = q.dims3()?;
    let m = k.dim(1)?;
    let d = c / heads;
    let split = |x: &Tensor, len: usize| -> Result<Tensor> {
        x.reshape((b, len, heads, d))?.transpose(1, 2)?.contiguous()
    };
    let (q, k, v) = (split(q, n)?, split(k, m)?, split(v, m)?);
    let q = (q * (1.0 / (d as f64).sqrt()))?;
    let kt = k.t()?;
    let rows = (max_scores / (b * heads * m).max(1)).clamp(1, n);
    let mut outs = Vec::with_capacity(n.div_ceil(rows));
    for start in (0..n).step_by(rows) {
        let len = rows.min(n - start);
        let qs = if len == n {
            q.clone()
        } else {
            q.narrow(2, start, len)?
        };
        let probs = candle_nn::ops::softmax_last_dim(&qs.matmul(&kt)?)?;
        outs.push(probs.matmul(&v)?);
    }
    let out = if outs.len() == 1 {
        outs.pop().expect("one block")
    } else {
        Tensor::cat(&outs, 2)?
    };
    out.transpose(1, 2)?.reshape((b, n, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{max_diff, rand, same_bits};

    #[test]
    fn matches_candle() {
        // (batch, n, m, heads, head dim): cross-attention m != n, odd sizes, row blocks
        // with a remainder, one head.
        for (i, &(b, n, m, heads, d)) in [
            (2, 150, 77, 3, 8),
            (1, 64, 64, 5, 13),
            (3, 7, 130, 2, 4),
            (1, 200, 200, 1, 40),
        ]
        .iter()
        .enumerate()
        {
            let s = i as u64 * 3;
            let q = (rand(s, &[b, n, heads * d]) * 2.0).unwrap();
            let k = (rand(s + 1, &[b, m, heads * d]) * 2.0).unwrap();
            let v = rand(s + 2, &[b, m, heads * d]);
            let want = attention_reference(&q, &k, &v, heads, usize::MAX).unwrap();
            let got = attention(&q, &k, &v, heads).unwrap();
            let (diff, max) = max_diff(&got, &want);
            assert!(diff <= 2e-6 * max.max(1.0), "case {i}: differs by {diff}");
            assert!(same_bits(&got, &attention(&q, &k, &v, heads).unwrap()));
        }
    }

    #[test]
    fn non_contiguous_inputs() {
        let q = rand(1, &[2, 12, 30]).transpose(1, 2).unwrap(); // (2, 30, 12)
        let k = rand(2, &[2, 12, 20]).transpose(1, 2).unwrap();
        let v = rand(3, &[2, 20, 12]);
        let want = attention_reference(&q, &k, &v, 3, usize::MAX).unwrap();
        let (d, m) = max_diff(&attention(&q, &k, &v, 3).unwrap(), &want);
        assert!(d <= 2e-6 * m.max(1.0), "differs by {d}");
    }

    #[test]
    fn blocked_reference_equals_one_piece() {
        let (q, k, v) = (
            rand(1, &[2, 300, 12]),
            rand(2, &[2, 250, 12]),
            rand(3, &[2, 250, 12]),
        );
        let whole = attention_reference(&q, &k, &v, 3, usize::MAX).unwrap();
        // 2 x 3 heads x 250 keys = 1500 scores per query row: blocks of 7 rows, and of 1.
        for limit in [7 * 1500, 1] {
            let blocked = attention_reference(&q, &k, &v, 3, limit).unwrap();
            let (d, _) = max_diff(&blocked, &whole);
            assert!(d < 1e-6, "limit {limit}: differs by {d}");
        }
    }
}
