//! `ttpo restore`: one restoration network alone (the step `--restore` runs before Stage I),
//! tiled, with a status line per tile and Ctrl-C between tiles.

use crate::args::{Global, RestoreArgs};
use crate::error::{CliError, CliResult};
use crate::input;
use crate::ui::{self, status, ProgressMode};
use serde_json::json;
use std::time::Instant;
use ttpo::restore::{self, RestoreKind};

pub fn run(g: &Global, a: RestoreArgs) -> CliResult<()> {
    let t0 = Instant::now();
    input::check_output_name(&a.output)?;
    let kind = RestoreKind::from_name(&a.net).map_err(|e| CliError::usage(e.to_string()))?;
    if a.tile != 0 && a.overlap >= a.tile {
        return Err(CliError::usage(format!(
            "--overlap {} must be smaller than --tile {}",
            a.overlap, a.tile
        )));
    }
    let ttpo::Decoded {
        image: input,
        alpha,
    } = input::open(&a.input, None)?;
    let dir = a
        .restore_dir
        .clone()
        .or_else(restore::default_dir)
        .ok_or_else(|| CliError::usage("no folder for the networks' files: pass --restore-dir"))?;
    let net = restore::load_with(kind, &dir, &restore::Device::Cpu, a.restore_noise)?;
    let noise = if kind.takes_noise() {
        format!(", noise {}", a.restore_noise)
    } else {
        String::new()
    };
    status(
        g,
        format!(
            "{} ({}x{noise}): {}",
            kind.name(),
            kind.scale(),
            kind.licence()
        ),
    );
    let show = ui::progress_mode(g).resolve() != ProgressMode::None;
    let mut tiles = 0;
    let out = restore::restore_image(net.as_ref(), &input, a.tile, a.overlap, &mut |done, n| {
        tiles = n;
        if show && done > 0 {
            eprintln!("restore: tile {done}/{n}");
        }
        !ui::interrupted()
    });
    let out = match out {
        Err(ttpo::Error::Cancelled) => return Err(CliError::cancelled()),
        r => r?,
    };
    let size = (input.width(), input.height());
    let alpha = alpha.map(|al| ttpo::image::scale_alpha(&al, size, (out.width(), out.height())));
    ui::save_image_with_alpha(&out, alpha.as_deref(), &a.output)?;
    let seconds = t0.elapsed().as_secs_f64();
    if a.json {
        println!(
            "{}",
            json!({
                "input": a.input, "output": a.output, "net": kind.name(),
                "scale": kind.scale(), "licence": kind.licence(),
                "noise": kind.takes_noise().then_some(a.restore_noise),
                "size": [out.width(), out.height()], "tiles": tiles, "seconds": seconds,
            })
        );
    }
    status(
        g,
        format!(
            "{} -> {} ({}x{}, {:.1}s)",
            a.input.display(),
            a.output.display(),
            out.width(),
            out.height(),
            seconds
        ),
    );
    Ok(())
}
