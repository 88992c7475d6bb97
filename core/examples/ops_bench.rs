//! Times the CPU kernels of `ttpo::ops` against candle's ops on the shapes of SD's UNet
//! (64x64 latent) and VAE (512x512 image). Prints one line per shape: median seconds of
//! each side and the maximum relative difference.
//!
//! `cargo run --release -p ttpo --example ops_bench [-- --repeat K] [--only conv,norm,attn]`

use candle_core::{Device, Module, Tensor};
use std::time::Instant;
use ttpo::noise::NoiseStream;
use ttpo::ops::{Conv, GroupNorm};

fn rand(seed: u64, dims: &[usize]) -> Tensor {
    NoiseStream::new(seed, 0)
        .tensor(dims, &Device::Cpu)
        .unwrap()
}

fn median(f: &dyn Fn() -> Tensor, repeat: usize) -> (f64, Tensor) {
    let mut out = f();
    let mut v = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        out = f();
        v.push(t.elapsed().as_secs_f64());
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], out)
}

fn report(name: &str, repeat: usize, ours: &dyn Fn() -> Tensor, candle: &dyn Fn() -> Tensor) {
    let (t_ours, a) = median(ours, repeat);
    let (t_candle, b) = median(candle, repeat);
    let d: f32 = (&a - &b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    let m: f32 = b.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    println!(
        "{name:44} ours {t_ours:8.4} s  candle {t_candle:8.4} s  x{:5.2}  rel diff {:.1e}",
        t_candle / t_ours,
        d / m.max(1e-30)
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut repeat, mut only) = (3usize, String::from("conv,norm,attn"));
    while let Some(a) = args.next() {
        let v = args.next().expect("value");
        match a.as_str() {
            "--repeat" => repeat = v.parse().expect("number"),
            "--only" => only = v,
            _ => panic!("unknown option {a}"),
        }
    }
    println!(
        "threads {}, load average {}",
        candle_core::utils::get_num_threads(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let has = |s: &str| only.split(',').any(|o| o == s);
    if has("conv") {
        // (cin, cout, side, k, stride, pad)
        for &(cin, cout, side, k, s, p) in &[
            (320, 320, 64, 3, 1, 1),
            (640, 640, 32, 3, 1, 1),
            (1280, 1280, 16, 3, 1, 1),
            (1280, 1280, 8, 3, 1, 1),
            (320, 320, 64, 3, 2, 1),
            (960, 320, 64, 1, 1, 0),
            (512, 512, 128, 3, 1, 1),
            (256, 256, 256, 3, 1, 1),
            (128, 128, 512, 3, 1, 1),
        ] {
            let w = (rand(1, &[cout, cin, k, k]) * 0.05).unwrap();
            let cfg = candle_nn::Conv2dConfig {
                padding: p,
                stride: s,
                ..Default::default()
            };
            let conv =
                Conv::from_candle(candle_nn::Conv2d::new(w, Some(rand(2, &[cout])), cfg)).unwrap();
            let x = rand(3, &[1, cin, side, side]);
            if k == 3 && s == 1 {
                // The same kernel without the Winograd path (im2col + gemm only).
                let direct = conv.clone().with_winograd_from(usize::MAX);
                report(
                    &format!("conv {cin}->{cout} {side}x{side} k{k} im2col only"),
                    repeat,
                    &|| direct.forward(&x).unwrap(),
                    &|| conv.candle().forward(&x).unwrap(),
                );
                // And with it at every size, to place the threshold.
                let forced = conv.clone().with_winograd_from(0);
                report(
                    &format!("conv {cin}->{cout} {side}x{side} k{k} Winograd always"),
                    repeat,
                    &|| forced.forward(&x).unwrap(),
                    &|| conv.candle().forward(&x).unwrap(),
                );
            }
            report(
                &format!("conv {cin}->{cout} {side}x{side} k{k} s{s} p{p}"),
                repeat,
                &|| conv.forward(&x).unwrap(),
                &|| conv.candle().forward(&x).unwrap(),
            );
        }
    }
    if has("norm") {
        for &(c, side) in &[(320, 64), (128, 512), (256, 256)] {
            let gn = GroupNorm::new(rand(4, &[c]), rand(5, &[c]), 32, 1e-6).unwrap();
            let x = rand(6, &[1, c, side, side]);
            report(
                &format!("group norm + silu {c}x{side}x{side}"),
                repeat,
                &|| gn.forward_silu(&x).unwrap(),
                &|| gn.candle().forward(&x).unwrap().silu().unwrap(),
            );
        }
    }
    if has("attn") {
        // (batch, n, m, heads, channels)
        for &(n, m, heads, c) in &[
            (4096, 4096, 5, 320),
            (4096, 77, 5, 320),
            (4096, 4096, 1, 512),
        ] {
            let q = rand(7, &[1, n, c]);
            let k = rand(8, &[1, m, c]);
            let v = rand(9, &[1, m, c]);
            report(
                &format!("attention n{n} m{m} heads {heads} c{c}"),
                repeat,
                &|| ttpo::ops::attention(&q, &k, &v, heads).unwrap(),
                &|| {
                    ttpo::ops::attention::attention_reference(&q, &k, &v, heads, usize::MAX)
                        .unwrap()
                },
            );
        }
    }
}
