//! The tiny SD3 / SD3.5 folders of the model generator load through the production loader
//! and sample (no reference needed; conformance_flow.rs compares the numbers with
//! diffusers).

mod common;

use candle_core::{DType, Device, Tensor};
use common::temp_dir;
use ttpo::diffusion::flow_scheduler::FlowMatch;
use ttpo::diffusion::sd::Variant;
use ttpo::diffusion::sd3::Sd3Transformer;
use ttpo::diffusion::tiny::{write_tiny_model, TinyKind};

fn noise(seed: u64, dims: &[usize]) -> Tensor {
    let s = ttpo::noise::NoiseStream::new(seed, 0);
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n as u64).map(|i| s.normal(i)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn tiny_sd3_folders_load_and_sample() {
    for (kind, sd35) in [(TinyKind::Sd3, false), (TinyKind::Sd35, true)] {
        let dir = temp_dir("tiny-sd3");
        write_tiny_model(&dir, kind, 7).unwrap();
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("model_index.json")).unwrap())
                .unwrap();
        assert_eq!(index["_class_name"], "StableDiffusion3Pipeline");

        // Same seed, same bytes.
        let again = temp_dir("tiny-sd3-again");
        write_tiny_model(&again, kind, 7).unwrap();
        let file = "transformer/diffusion_pytorch_model.safetensors";
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(again.join(file)).unwrap()
        );

        let tdir = dir.join("transformer");
        Sd3Transformer::check_shapes(&tdir, Variant::Auto).unwrap();
        let model = Sd3Transformer::load(&tdir, &Device::Cpu, DType::F32, Variant::Auto).unwrap();
        let cfg = model.config().clone();
        assert_eq!(cfg.qk_rms_norm(), sd35);
        assert_eq!(
            cfg.dual_attention_layers,
            if sd35 { vec![0] } else { vec![] }
        );
        let sched = FlowMatch::from_file(&dir.join("scheduler/scheduler_config.json")).unwrap();
        assert_eq!(sched.config().shift, 3.0);

        // A CFG batch: the same latent, different text rows; non-square 6x10 latent.
        let (h, w) = (6, 10);
        let x = noise(1, &[1, 16, h, w]);
        let txt = noise(2, &[2, 5, cfg.joint_attention_dim]);
        let pooled = noise(3, &[2, cfg.pooled_projection_dim]);
        let xx = Tensor::cat(&[&x, &x], 0).unwrap();
        let t = Tensor::new(&[750f32, 750.0], &Device::Cpu).unwrap();
        let out = model.forward(&xx, &txt, &pooled, &t).unwrap();
        assert_eq!(out.dims(), &[2, 16, h, w]);
        // Deterministic, and the text conditions the output.
        let again = model.forward(&xx, &txt, &pooled, &t).unwrap();
        assert_eq!(max_abs_diff(&out, &again), 0.0);
        let rows = max_abs_diff(&out.narrow(0, 0, 1).unwrap(), &out.narrow(0, 1, 1).unwrap());
        assert!(rows > 1e-4, "text rows give the same output ({rows})");
        // The timestep conditions the output.
        let t2 = Tensor::new(&[100f32, 100.0], &Device::Cpu).unwrap();
        let other = model.forward(&xx, &txt, &pooled, &t2).unwrap();
        assert!(max_abs_diff(&out, &other) > 1e-4);

        // A 4-step Euler run with CFG stays finite and keeps the shape.
        let s = sched.schedule(4, None).unwrap();
        let mut z = x.clone();
        for i in 0..s.len() {
            let t = Tensor::new(vec![s.timesteps[i]; 2], &Device::Cpu).unwrap();
            let zz = Tensor::cat(&[&z, &z], 0).unwrap();
            let o = model.forward(&zz, &txt, &pooled, &t).unwrap();
            let (u, c) = (o.narrow(0, 0, 1).unwrap(), o.narrow(0, 1, 1).unwrap());
            let v = (&u + ((c - &u).unwrap() * 4.0).unwrap()).unwrap();
            z = FlowMatch::step(&s, i, &v, &z).unwrap();
        }
        assert_eq!(z.dims(), &[1, 16, h, w]);
        let zs: Vec<f32> = z.flatten_all().unwrap().to_vec1().unwrap();
        assert!(zs.iter().all(|v| v.is_finite()));

        // Inputs the network cannot take are errors, not panics: an odd side (patch 2),
        // a patch grid larger than the position table (24), wrong text width.
        let odd = noise(4, &[2, 16, 7, 10]);
        assert!(model.forward(&odd, &txt, &pooled, &t).is_err());
        let big = noise(5, &[2, 16, 50, 8]);
        let e = model
            .forward(&big, &txt, &pooled, &t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pos_embed_max_size"), "{e}");
        let bad_txt = noise(6, &[2, 5, cfg.joint_attention_dim + 1]);
        assert!(model.forward(&xx, &bad_txt, &pooled, &t).is_err());
    }
}

#[test]
fn sd3_loader_refuses_unknown_options() {
    let dir = temp_dir("tiny-sd3-option");
    write_tiny_model(&dir, TinyKind::Sd3, 1).unwrap();
    let path = dir.join("transformer/config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["use_pos_embed"] = serde_json::json!(false);
    std::fs::write(&path, cfg.to_string()).unwrap();
    let e = Sd3Transformer::load(
        &dir.join("transformer"),
        &Device::Cpu,
        DType::F32,
        Variant::Auto,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("use_pos_embed"), "{e}");
}
