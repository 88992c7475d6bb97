//! CPU kernels for the diffusion models' hot operations, shared by every model family.
//!
//! Each operation dispatches on the device: f32 tensors on the CPU take the project's own
//! kernel, everything else (GPU tensors, other dtypes) takes candle's op, which is also the
//! reference the kernels are tested against. Kernels are deterministic: the work split
//! depends only on the shapes, never on timing, so the same inputs give bit-identical
//! outputs for a given thread count.

pub mod attention;
pub mod conv2d;
pub mod group_norm;
pub mod linear;
mod winograd;

pub use attention::attention;
pub use conv2d::Conv;
pub use group_norm::GroupNorm;
pub use linear::Linear;

use candle_core::{DType, Device, Result, Storage, Tensor};

/// Whether `x` takes the project's CPU kernels: f32 on the CPU.
pub(crate) fn cpu_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// Runs `f` on the contiguous f32 data of a CPU tensor (made contiguous first if needed).
pub(crate) fn with_f32<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let x = x.contiguous()?;
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("ops: expected a CPU tensor");
    };
    let data = cpu.as_slice::<f32>()?;
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("ops: expected a contiguous tensor");
    };
    Ok(f(&data[start..end]))
}

/// A vector of `len` floats whose contents the caller overwrites completely.
pub(crate) fn uninit_vec(len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: f32 has no invalid bit patterns; every caller writes all `len` elements
    // before reading any.
    #[allow(clippy::uninit_vec)]
    unsafe {
        v.set_len(len)
    };
    v
}

/// Wraps kernel output as a CPU tensor.
pub(crate) fn cpu_tensor(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// Threads the kernels split work over: candle's own count, so that both follow
/// `RAYON_NUM_THREADS`.
pub(crate) fn threads() -> usize {
    candle_core::utils::get_num_threads().max(1)
}

/// A small, fast `exp` for f32 slices that the compiler vectorises: Cody–Waite range
/// reduction to `r` in [-ln2/2, ln2/2] and a degree-6 polynomial; relative error below
/// 2 ulp. Branch-free: inputs are clamped to [-87.3, 88] (results 2^-126 and e^88 there;
/// the kernels only feed it softmax exponents <= 0 and SiLU's `-x`).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.336_55, 88.0);
    // Round to nearest through the float adder (|x * log2 e| < 2^22): no libm call, so
    // the loops around this vectorise.
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // exp(r) on [-0.347, 0.347], Taylor coefficients to r^6.
    let p = 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // 2^n through the exponent bits; n in [-126, 127] after the clamp.
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Runs `f` compiled for AVX-512F (or AVX2 + FMA) when the CPU has it, else as built (the
/// default x86-64 target has only SSE2). `f` and what it calls must be `#[inline(always)]`
/// for the wider instructions to reach them. Results do not depend on the path taken: the
/// kernels' element-wise loops keep one order of operations and have no FMA contraction
/// (Rust does not fuse `a * b + c`).
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { with_avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
pub(crate) mod test_util {
    use candle_core::{Device, Tensor};

    /// A deterministic pseudo-random tensor.
    pub fn rand(seed: u64, dims: &[usize]) -> Tensor {
        crate::noise::NoiseStream::new(seed, 0)
            .tensor(dims, &Device::Cpu)
            .unwrap()
    }

    /// Largest absolute difference, and the largest absolute value of `b`.
    pub fn max_diff(a: &Tensor, b: &Tensor) -> (f32, f32) {
        assert_eq!(a.dims(), b.dims());
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        let m = b.abs().unwrap().max_all().unwrap();
        (d.to_scalar().unwrap(), m.to_scalar().unwrap())
    }

    /// Bit-identical?
    pub fn same_bits(a: &Tensor, b: &Tensor) -> bool {
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_matches_std() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = super::exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert!(super::exp_f32(-200.0) < 1.2e-38);
        assert!(super::exp_f32(f32::NEG_INFINITY) < 1.2e-38);
        assert!(super::exp_f32(100.0) > 1e38);
    }
}
