//! The built-in metric set for Stage II, resolved from option names.

use crate::error::{Error, Result};
use crate::pipeline::Options;
use crate::preference::{Metric, Sharpness};

/// Names accepted in [`Options::metrics`].
pub const METRIC_NAMES: &[&str] = &["sharpness"];

/// The metric objects for `options` (the default set when none are named).
pub fn build_metrics(options: &Options) -> Result<Vec<Box<dyn Metric>>> {
    let names: Vec<String> = if options.metrics.is_empty() {
        vec!["sharpness".into()]
    } else {
        options.metrics.clone()
    };
    names
        .iter()
        .map(|n| match n.as_str() {
            "sharpness" => Ok(Box::new(Sharpness) as Box<dyn Metric>),
            other => Err(Error::option(
                "metrics",
                format!(
                    "unknown metric {other:?} (known: {})",
                    METRIC_NAMES.join(", ")
                ),
            )),
        })
        .collect()
}
