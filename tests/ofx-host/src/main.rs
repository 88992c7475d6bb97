//! `ttpo-ofx-host`: the test host as a command.
//!
//! - `ttpo-ofx-host scan BUNDLE` — load + describe + describe in context (what a host does at
//!   start-up), with timings; says whether libttpo got loaded (it must not).
//! - `ttpo-ofx-host render BUNDLE IN.png OUT.png [--depth byte|short|float] [--rgb] [name=value…]`
//! - `ttpo-ofx-host crop IN.png OUT.png SIDE` — centred square crop resized to SIDE px.
//! - `ttpo-ofx-host diff A.png B.png` — largest channel difference (0..255) of two images.

use std::ffi::CString;
use std::path::Path;
use std::time::Instant;
use ttpo_ofx_host::{ofx, ImageBuf, Plugin, Rows, Val};

fn die(m: &str) -> ! {
    eprintln!("ttpo-ofx-host: {m}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("scan") if args.len() == 2 => {
            let t = Instant::now();
            let p = Plugin::load(Path::new(&args[1])).unwrap_or_else(|e| die(&e));
            let t_load = t.elapsed();
            let d = p.describe().unwrap_or_else(|s| die(&format!("describe: {s}")));
            let f = p.describe_in_context(&d, ofx::CONTEXT_FILTER).unwrap_or_else(|s| die(&format!("describe in context: {s}")));
            let _g = p.describe_in_context(&d, ofx::CONTEXT_GENERAL).unwrap_or_else(|s| die(&format!("describe in context: {s}")));
            let t_all = t.elapsed();
            println!("plugin {} v{}.{} ({} in binary)", p.id, p.version.0, p.version.1, p.count);
            println!("label {:?}", d.props.get_str("OfxPropLabel", 0).unwrap_or_default());
            println!("params {}", f.param_names().join(","));
            println!("libttpo loaded: {}", ttpo_ofx_host::is_mapped("libttpo.so"));
            println!("scan: dlopen+load {:.2} ms, total with describe {:.2} ms", t_load.as_secs_f64() * 1e3, t_all.as_secs_f64() * 1e3);
        }
        Some("render") if args.len() >= 4 => {
            let (mut depth, mut comps, mut params) = (ofx::DEPTH_BYTE, 4, Vec::new());
            let mut it = args[4..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--depth" => depth = match it.next().map(String::as_str) {
                        Some("byte") => ofx::DEPTH_BYTE,
                        Some("short") => ofx::DEPTH_SHORT,
                        Some("float") => ofx::DEPTH_FLOAT,
                        _ => die("--depth byte|short|float"),
                    },
                    "--rgb" => comps = 3,
                    kv => params.push(kv.split_once('=').unwrap_or_else(|| die("name=value expected"))),
                }
            }
            let img = image::open(&args[2]).unwrap_or_else(|e| die(&e.to_string())).to_rgba8();
            let p = Plugin::load(Path::new(&args[1])).unwrap_or_else(|e| die(&e));
            let d = p.describe().unwrap_or_else(|s| die(&format!("describe: {s}")));
            let f = p.describe_in_context(&d, ofx::CONTEXT_FILTER).unwrap_or_else(|s| die(&format!("describe in context: {s}")));
            let inst = p.create_instance(&f, ofx::CONTEXT_FILTER).unwrap_or_else(|s| die(&format!("create instance: {s}")));
            for (k, v) in params {
                let prm = inst.param(k).unwrap_or_else(|| die(&format!("no parameter {k}")));
                let val = match prm.kind.as_str() {
                    "OfxParamTypeString" => Val::Str(CString::new(v).unwrap()),
                    "OfxParamTypeDouble" => Val::Dbl(v.parse().unwrap_or_else(|_| die(&format!("{k}: number expected")))),
                    _ => Val::Int(v.parse().unwrap_or_else(|_| die(&format!("{k}: integer expected")))),
                };
                p.set_param(&inst, k, val);
            }
            let src = ImageBuf::from_rgba8(&img, depth, comps, Rows::BottomUp, 0);
            let t = Instant::now();
            let (st, out) = p.render(&inst, src, depth, comps, Rows::BottomUp, None, 1.0, 0.0);
            let dt = t.elapsed();
            if st != ofx::STAT_OK {
                die(&format!("render failed with status {st}: {:?}", inst.persistent.lock().unwrap()));
            }
            out.to_rgba8().save(&args[3]).unwrap_or_else(|e| die(&e.to_string()));
            eprintln!("rendered in {:.1} ms", dt.as_secs_f64() * 1e3);
            p.destroy_instance(inst);
        }
        Some("crop") if args.len() == 4 => {
            // A centred square crop of half the shorter side, resized to SIDE px, as RGBA PNG.
            let img = image::open(&args[1]).unwrap_or_else(|e| die(&e.to_string())).to_rgba8();
            let side: u32 = args[3].parse().unwrap_or_else(|_| die("SIDE: integer expected"));
            let s = img.width().min(img.height()) / 2;
            let c = image::imageops::crop_imm(&img, (img.width() - s) / 2, (img.height() - s) / 2, s, s).to_image();
            image::imageops::resize(&c, side, side, image::imageops::FilterType::Triangle)
                .save(&args[2])
                .unwrap_or_else(|e| die(&e.to_string()));
        }
        Some("diff") if args.len() == 3 => {
            let a = image::open(&args[1]).unwrap_or_else(|e| die(&e.to_string())).to_rgba8();
            let b = image::open(&args[2]).unwrap_or_else(|e| die(&e.to_string())).to_rgba8();
            if a.dimensions() != b.dimensions() {
                die(&format!("sizes differ: {:?} vs {:?}", a.dimensions(), b.dimensions()));
            }
            let m = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
            println!("{m}");
        }
        _ => die("usage: ttpo-ofx-host scan BUNDLE | render BUNDLE IN OUT [--depth D] [--rgb] [k=v...] | crop IN OUT SIDE | diff A B"),
    }
}
