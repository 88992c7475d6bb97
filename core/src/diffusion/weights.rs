//! Reading safetensors weight files tensor by tensor.
//!
//! candle's `from_mmaped_safetensors` maps the whole file and copies every tensor out of the
//! mapping; the mapped pages count towards the process's resident memory until the mapping
//! is dropped, so loading the SD 2.1 UNet (3.5 GB) peaked at twice its size (issue #13: our
//! peak RSS was 6.8 GB where PyTorch's was 5.3 GB). Here only the header is kept; each tensor
//! is read from its offset with `pread` into a buffer of its own size when a layer asks for
//! it, so the peak is the weights plus one tensor.
//!
//! [`WeightFiles::shapes_only`] answers with zero-cost broadcast views of the declared
//! shapes: building a model from it checks every tensor name, shape and dtype against the
//! headers without reading any data (used to validate a component that is loaded later).
//!
//! The header is untrusted input: its length, offsets, shapes and dtypes are checked against
//! the file's size before anything is allocated from them.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use half::{bf16, f16};
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;

/// Headers larger than this are refused (SD's UNet header is ~100 KB; FLUX's ~200 KB).
const MAX_HEADER_BYTES: u64 = 64 << 20;

/// Fills `buf` from the file at `offset` without moving a shared cursor (so the reader needs
/// no lock).
#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Where one tensor's bytes are.
#[derive(Clone, Debug)]
struct Entry {
    file: usize,
    dtype: DType,
    shape: Vec<usize>,
    offset: u64,
    bytes: usize,
}

/// The headers of one component's safetensors files (one file or the shards of an index).
#[derive(Debug)]
pub struct WeightFiles {
    files: Vec<(PathBuf, File)>,
    entries: HashMap<String, Entry>,
}

fn dtype_of(name: &str) -> Option<DType> {
    Some(match name {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F64" => DType::F64,
        "I64" => DType::I64,
        "U32" => DType::U32,
        "U8" => DType::U8,
        _ => return None,
    })
}

impl WeightFiles {
    /// Opens the files and reads their headers. Errors name the file and say what is wrong.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut entries = HashMap::new();
        for (index, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let invalid = |reason: String| Error::InvalidFile {
                path: path.clone(),
                reason: format!("not a safetensors file: {reason}"),
            };
            let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
            let mut len = [0u8; 8];
            read_at(&file, &mut len, 0)
                .map_err(|_| invalid("shorter than its 8-byte header length".into()))?;
            let header_len = u64::from_le_bytes(len);
            if header_len > MAX_HEADER_BYTES || 8 + header_len > size {
                return Err(invalid(format!(
                    "header length {header_len} does not fit the file ({size} bytes)"
                )));
            }
            let mut header = vec![0u8; header_len as usize];
            read_at(&file, &mut header, 8).map_err(|e| Error::io(path, e))?;
            let header: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&header).map_err(|e| invalid(format!("header: {e}")))?;
            let data_start = 8 + header_len;
            for (name, info) in header {
                if name == "__metadata__" {
                    continue;
                }
                let entry = Self::entry(index, &info, data_start, size)
                    .map_err(|reason| invalid(format!("tensor {name}: {reason}")))?;
                entries.insert(name, entry);
            }
            files.push((path.clone(), file));
        }
        Ok(Self { files, entries })
    }

    fn entry(
        file: usize,
        info: &serde_json::Value,
        data_start: u64,
        size: u64,
    ) -> std::result::Result<Entry, String> {
        let dtype = info
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or("no dtype")?;
        let dtype = dtype_of(dtype).ok_or_else(|| format!("unsupported dtype {dtype}"))?;
        let shape = info
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or("no shape")?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or("shape is not a list of sizes")?;
        let offsets = info
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .filter(|o| o.len() == 2)
            .and_then(|o| Some((o[0].as_u64()?, o[1].as_u64()?)))
            .ok_or("data_offsets is not [begin, end]")?;
        let bytes = shape
            .iter()
            .try_fold(dtype.size_in_bytes(), |n, &d| n.checked_mul(d))
            .ok_or("shape overflows")?;
        let (begin, end) = offsets;
        if begin > end || end - begin != bytes as u64 || data_start + end > size {
            return Err(format!(
                "data_offsets [{begin}, {end}] do not hold {bytes} bytes inside the file"
            ));
        }
        Ok(Entry {
            file,
            dtype,
            shape,
            offset: data_start + begin,
            bytes,
        })
    }

    /// Elements of all tensors (what the weights take in memory is this times the
    /// compute dtype's size, whatever dtype the files store).
    pub fn elements(&self) -> u64 {
        self.entries
            .values()
            .map(|e| e.shape.iter().product::<usize>() as u64)
            .sum()
    }

    /// Names of all tensors.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|k| k.as_str())
    }

    fn read(&self, name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let e = self.entry_named(name)?;
        let shape = e.shape.as_slice();
        let t = match e.dtype {
            DType::F32 => Tensor::from_vec(self.read_as::<f32>(name, e)?, shape, &Device::Cpu)?,
            DType::F16 => Tensor::from_vec(self.read_as::<f16>(name, e)?, shape, &Device::Cpu)?,
            DType::BF16 => Tensor::from_vec(self.read_as::<bf16>(name, e)?, shape, &Device::Cpu)?,
            other => {
                Tensor::from_raw_buffer(&self.read_as::<u8>(name, e)?, other, shape, &Device::Cpu)?
            }
        };
        t.to_dtype(dtype)?.to_device(device)
    }

    /// Reads the tensor's bytes straight into a buffer of element type `T` (no second copy:
    /// the token embedding of SD 2.x's text encoder alone is 200 MB).
    fn read_as<T: candle_core::WithDType>(
        &self,
        name: &str,
        e: &Entry,
    ) -> candle_core::Result<Vec<T>> {
        // safetensors stores little-endian values.
        #[cfg(target_endian = "big")]
        compile_error!("the safetensors reader assumes a little-endian target");
        let (path, file) = &self.files[e.file];
        let n = e.bytes / std::mem::size_of::<T>();
        let mut buf: Vec<T> = Vec::new();
        buf.try_reserve_exact(n).map_err(|_| {
            candle_core::Error::Msg(format!("tensor {name}: cannot allocate {} bytes", e.bytes))
        })?;
        buf.resize(n, T::from_f64(0.0));
        // SAFETY: the element types read here (u8, f32, f16, bf16) are plain bytes with no
        // invalid bit patterns; the byte view covers exactly the vector's initialised length.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                buf.as_mut_ptr().cast::<u8>(),
                n * std::mem::size_of::<T>(),
            )
        };
        read_at(file, bytes, e.offset).map_err(|err| {
            candle_core::Error::Msg(format!("reading {name} from {}: {err}", path.display()))
        })?;
        Ok(buf)
    }

    fn entry_named(&self, name: &str) -> candle_core::Result<&Entry> {
        self.entries.get(name).ok_or_else(|| {
            candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            }
            .bt()
        })
    }

    /// A `VarBuilder` that reads each tensor from disk when a layer asks for it, converted to
    /// `dtype` and moved to `device`.
    pub fn var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(
            Box::new(Backend {
                files: self,
                data: true,
            }),
            dtype,
            device.clone(),
        )
    }

    /// A `VarBuilder` that checks names and shapes against the headers and answers with
    /// broadcast views of one zero (no data read, nothing allocated per tensor). A model
    /// built from it must not be run.
    pub fn shapes_only(self, dtype: DType) -> VarBuilder<'static> {
        VarBuilder::from_backend(
            Box::new(Backend {
                files: self,
                data: false,
            }),
            dtype,
            Device::Cpu,
        )
    }
}

fn check_shape(name: &str, want: &Shape, got: &[usize]) -> candle_core::Result<()> {
    if want.dims() != got {
        return Err(candle_core::Error::UnexpectedShape {
            msg: format!("shape mismatch for {name}"),
            expected: want.clone(),
            got: got.into(),
        }
        .bt());
    }
    Ok(())
}

/// The `VarBuilder` backend: each tensor read from disk, or (`data: false`) a zero-cost
/// broadcast view of its declared shape.
struct Backend {
    files: WeightFiles,
    data: bool,
}

impl Backend {
    fn tensor(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if self.data {
            self.files.read(name, dtype, dev)
        } else {
            let e = self.files.entry_named(name)?;
            Tensor::zeros((), dtype, dev)?.broadcast_as(e.shape.as_slice())
        }
    }
}

impl SimpleBackend for Backend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        check_shape(name, &s, &self.files.entry_named(name)?.shape)?;
        self.tensor(name, dtype, dev)
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.tensor(name, dtype, dev)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.files.entries.contains_key(name)
    }
}
