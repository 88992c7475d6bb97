//! Image files in and out of the commands: reading an input with its alpha plane, and
//! refusing an output name before any work is done.

use crate::error::{one_line, CliError, CliResult};
use std::path::Path;
use ttpo::Image;

/// Reads an input with its alpha plane; `max_pixels` is checked against the file's header
/// before any pixel is decoded.
pub fn open(path: &Path, max_pixels: Option<usize>) -> CliResult<ttpo::Decoded> {
    Image::open_with_alpha(path, max_pixels.unwrap_or(ttpo::DEFAULT_MAX_PIXELS))
        .map_err(CliError::from_input)
}

/// Refuses an output name whose format cannot be written, before any work is done.
pub fn check_output_name(path: &Path) -> CliResult<()> {
    ttpo::image::output_format(path)
        .map(|_| ())
        .map_err(|e| CliError::usage(one_line(&e.to_string())))
}
