//! Device and precision selection. GPU backends are compiled in only with the `cuda` or
//! `metal` features; a default build is CPU-only.

use crate::error::{Error, Result};
use candle_core::{DType, Device};

/// Where the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA device 0 if compiled in and present, else Metal if compiled in, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// A CUDA device by ordinal.
    Cuda(usize),
    /// A Metal device by ordinal.
    Metal(usize),
}

/// The compute precision of the UNet and text encoder (the VAE runs in f32 unless bf16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16 (GPU only: candle's CPU matmul lacks it).
    Bf16,
}

impl Precision {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
            Precision::Bf16 => DType::BF16,
        }
    }
}

/// Backends compiled into this build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backends {
    /// Always true.
    pub cpu: bool,
    /// The `cuda` feature.
    pub cuda: bool,
    /// The `metal` feature.
    pub metal: bool,
}

/// Which backends this build has.
pub fn compiled_backends() -> Backends {
    Backends {
        cpu: true,
        cuda: cfg!(feature = "cuda"),
        metal: cfg!(feature = "metal"),
    }
}

/// Opens the chosen device.
pub fn open(choice: DeviceChoice) -> Result<Device> {
    let unavailable =
        |what: &str, e: String| Error::option("device", format!("{what} is not available: {e}"));
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda(i) => {
            if !cfg!(feature = "cuda") {
                return Err(Error::option(
                    "device",
                    "this build has no CUDA support (rebuild with --features cuda)",
                ));
            }
            Device::new_cuda(i).map_err(|e| unavailable("CUDA", e.to_string()))
        }
        DeviceChoice::Metal(i) => {
            if !cfg!(feature = "metal") {
                return Err(Error::option(
                    "device",
                    "this build has no Metal support (rebuild with --features metal)",
                ));
            }
            Device::new_metal(i).map_err(|e| unavailable("Metal", e.to_string()))
        }
        DeviceChoice::Auto => {
            if cfg!(feature = "cuda") {
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok(d);
                }
            }
            if cfg!(feature = "metal") {
                if let Ok(d) = Device::new_metal(0) {
                    return Ok(d);
                }
            }
            Ok(Device::Cpu)
        }
    }
}

/// The precision to use: the requested one (checked against the device), or f32 on the CPU
/// and bf16 on GPUs.
pub fn resolve_precision(device: &Device, requested: Option<Precision>) -> Result<DType> {
    match (requested, device.is_cpu()) {
        (Some(Precision::Bf16), true) => Err(Error::option(
            "precision",
            "bf16 is not supported on the CPU; use f32 or f16",
        )),
        (Some(p), _) => Ok(p.dtype()),
        (None, true) => Ok(DType::F32),
        // bf16 rather than f16 on GPUs: tensor-core speed with f32's range. On an H200 the
        // full SD 2.1-base architecture ran Stage III to non-finite values in f16 and
        // finished in bf16 (docs/BENCHMARKS.md).
        (None, false) => Ok(DType::BF16),
    }
}

/// Memory the host can still give this process (Linux: `MemAvailable` of /proc/meminfo, or
/// the cgroup's limit minus its usage when that is lower); `None` where it is not known.
pub fn available_host_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    let mut free = kib.saturating_mul(1024);
    let read_u64 = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    if let (Some(max), Some(cur)) = (
        read_u64("/sys/fs/cgroup/memory.max"),
        read_u64("/sys/fs/cgroup/memory.current"),
    ) {
        free = free.min(max.saturating_sub(cur));
    }
    Some(free)
}

/// Lets glibc's `malloc` keep freed memory for reuse instead of handing it back to the kernel
/// after every tensor: blocks below 32 MiB come from the heap (not a fresh `mmap` that is
/// zero-filled page by page on first touch and unmapped on drop), and up to 256 MiB of free
/// heap is kept. Measured in docs/BENCHMARKS.md (issue #13); a no-op off glibc.
///
/// Only for processes the project owns (the `ttpo` CLI, the examples): it changes the
/// allocator of the whole process, so a library loaded into someone else's process (GIMP,
/// an OpenFX host) must never call it.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread of ours runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Hands memory that `malloc` holds free back to the kernel (glibc's `malloc_trim`; a no-op
/// elsewhere). Called after a large, short-lived model part is dropped (the text encoder,
/// see `diffusion::sd`): its blocks can lie below allocations made after it (the prompt
/// states), where the heap cannot shrink from the top. A precaution: in the SD 2.1 bench
/// the peak was the same with and without it. Safe in any process (it only returns free
/// pages), so libttpo may call it inside a host.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
