//! Shared input validation.

use crate::{MetricError, RgbView};

/// Validates shape, finiteness and a minimum size; returns nothing on success.
pub(crate) fn validate(img: &RgbView, metric: &'static str, min: usize) -> Result<(), MetricError> {
    img.validate_shape()?;
    if let Some(index) = img.data.iter().position(|v| !v.is_finite()) {
        return Err(MetricError::NonFinite { index });
    }
    if img.width < min || img.height < min {
        return Err(MetricError::ImageTooSmall {
            metric,
            min,
            width: img.width,
            height: img.height,
        });
    }
    Ok(())
}
