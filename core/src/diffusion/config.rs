//! Reading the JSON and text files of a model folder, and the bounds that every number read
//! from them must meet before it sizes a layer, a tensor or an allocation.
//!
//! A model folder is input like any other: a config of random bytes is an invalid file (not
//! an I/O error), and a size of four billion is refused here rather than aborting the
//! process on the allocation it would drive.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::io::Read;
use std::path::Path;

/// Config, vocabulary and merges files larger than this are refused unread (CLIP's
/// `tokenizer.json` is ~3.6 MB, T5's ~2.4 MB).
pub const MAX_TEXT_FILE_BYTES: u64 = 64 << 20;

/// Largest width (channels, hidden size, MLP width) accepted from a config: 16× the widest
/// layer of any SD/FLUX model.
pub const MAX_WIDTH: usize = 1 << 16;
/// Largest count (layers, blocks, heads, groups) accepted from a config.
pub const MAX_COUNT: usize = 1 << 10;
/// Largest sequence length / vocabulary / schedule length accepted from a config.
pub const MAX_LENGTH: usize = 1 << 20;

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidFile {
        path: path.into(),
        reason: reason.into(),
    }
}

/// The file's bytes, refused when larger than [`MAX_TEXT_FILE_BYTES`].
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_TEXT_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_TEXT_FILE_BYTES {
        return Err(invalid(
            path,
            format!("larger than {} MiB", MAX_TEXT_FILE_BYTES >> 20),
        ));
    }
    Ok(bytes)
}

/// The file as UTF-8 text (bytes that are not UTF-8 make an invalid file, not an I/O error).
pub fn read_text(path: &Path) -> Result<String> {
    String::from_utf8(read_bytes(path)?).map_err(|e| invalid(path, format!("not UTF-8 text: {e}")))
}

/// Parses a JSON file into `T`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    serde_json::from_slice(&read_bytes(path)?).map_err(|e| invalid(path, e.to_string()))
}

/// Checks that `value` (the config field `name`) is in `1..=max`.
pub fn check_size(path: &Path, name: &str, value: usize, max: usize) -> Result<()> {
    if value == 0 || value > max {
        return Err(invalid(
            path,
            format!("{name} = {value} is outside 1..={max}"),
        ));
    }
    Ok(())
}

/// Checks that `value` (the config field `name`) is finite.
pub fn check_finite(path: &Path, name: &str, value: f64) -> Result<()> {
    if !value.is_finite() {
        return Err(invalid(path, format!("{name} = {value} is not finite")));
    }
    Ok(())
}

/// Checks the resolution levels of a UNet or VAE: 1 to 8 levels (the latent factor is
/// `2^(levels - 1)`), each width bounded and divisible by the bounded GroupNorm group count.
pub fn check_levels(path: &Path, block_out_channels: &[usize], groups: usize) -> Result<()> {
    check_size(path, "len(block_out_channels)", block_out_channels.len(), 8)?;
    check_size(path, "norm_num_groups", groups, MAX_COUNT)?;
    for &c in block_out_channels {
        check_size(path, "block_out_channels", c, MAX_WIDTH)?;
        check_divides(path, "norm_num_groups", groups, c)?;
    }
    Ok(())
}

/// Checks that `groups` divides `channels` (GroupNorm) — both already bounded.
pub fn check_divides(path: &Path, what: &str, groups: usize, channels: usize) -> Result<()> {
    if channels % groups != 0 {
        return Err(invalid(
            path,
            format!("{what}: {channels} channels are not divisible by {groups}"),
        ));
    }
    Ok(())
}
