//! The tiny FLUX.1 folders of the model generator load through the production loader and
//! sample (no reference needed; conformance_flow.rs compares the numbers with diffusers).

mod common;

use candle_core::{DType, Device, Tensor};
use common::temp_dir;
use ttpo::diffusion::flow_scheduler::FlowMatch;
use ttpo::diffusion::flux::{
    latent_image_ids, pack_latents, text_ids, unpack_latents, FluxTransformer,
};
use ttpo::diffusion::sd::Variant;
use ttpo::diffusion::tiny::{write_tiny_model, TinyKind};

fn noise(seed: u64, dims: &[usize]) -> Tensor {
    let s = ttpo::noise::NoiseStream::new(seed, 0);
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n as u64).map(|i| s.normal(i)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

#[test]
fn tiny_flux_folders_load_and_sample() {
    for (kind, guidance) in [(TinyKind::FluxDev, true), (TinyKind::FluxSchnell, false)] {
        let dir = temp_dir("tiny-flux");
        write_tiny_model(&dir, kind, 7).unwrap();
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("model_index.json")).unwrap())
                .unwrap();
        assert_eq!(index["_class_name"], "FluxPipeline");

        // Same seed, same bytes.
        let again = temp_dir("tiny-flux-again");
        write_tiny_model(&again, kind, 7).unwrap();
        let file = "transformer/diffusion_pytorch_model.safetensors";
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(again.join(file)).unwrap()
        );

        FluxTransformer::check_shapes(&dir.join("transformer"), Variant::Auto).unwrap();
        let model = FluxTransformer::load(
            &dir.join("transformer"),
            &Device::Cpu,
            DType::F32,
            Variant::Auto,
        )
        .unwrap();
        assert_eq!(model.config().guidance_embeds, guidance);
        let sched = FlowMatch::from_file(&dir.join("scheduler/scheduler_config.json")).unwrap();
        assert_eq!(sched.config().use_dynamic_shifting, guidance);

        let cfg = model.config().clone();
        let (h, w) = (6, 10);
        let x0 = noise(1, &[1, 16, h, w]);
        let txt = noise(2, &[1, 5, cfg.joint_attention_dim]);
        let pooled = noise(3, &[1, cfg.pooled_projection_dim]);
        let (img_ids, txt_ids) = (
            latent_image_ids(h, w, &Device::Cpu).unwrap(),
            text_ids(5, &Device::Cpu).unwrap(),
        );
        let g = Tensor::new(&[3.5f32], &Device::Cpu).unwrap();
        let g = guidance.then_some(&g);
        let schedule = sched.flux_schedule(4, (h / 2) * (w / 2)).unwrap();
        let start = FlowMatch::img2img_start(4, 0.5).unwrap();
        let mut x = FlowMatch::scale_noise(
            &pack_latents(&x0).unwrap(),
            &pack_latents(&noise(4, &[1, 16, h, w])).unwrap(),
            schedule.sigmas[start],
        )
        .unwrap();
        let mut outs = vec![];
        for i in start..schedule.len() {
            let t = Tensor::new(&[schedule.timesteps[i] / 1000.0], &Device::Cpu).unwrap();
            let v = model
                .forward(&x, &txt, &pooled, &t, g, &img_ids, &txt_ids)
                .unwrap();
            assert_eq!(v.dims(), &[1, (h / 2) * (w / 2), 64]);
            outs.push(v.clone());
            x = FlowMatch::step(&schedule, i, &v, &x).unwrap();
        }
        let out = unpack_latents(&x, h, w).unwrap();
        assert_eq!(out.dims(), &[1, 16, h, w]);
        let vals = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(vals.iter().all(|v| v.is_finite()));
        // The two model calls differ (the timestep reaches the network).
        assert_ne!(
            outs[0].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            outs[1].flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        // bf16 (the GPU precision; candle's generic ops on the CPU) loads and runs
        // (conformance_flow.rs compares it with diffusers' bf16 output).
        let half = FluxTransformer::load(
            &dir.join("transformer"),
            &Device::Cpu,
            DType::BF16,
            Variant::Auto,
        )
        .unwrap();
        let t = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
        let x = pack_latents(&x0).unwrap();
        let low = half
            .forward(&x, &txt, &pooled, &t, g, &img_ids, &txt_ids)
            .unwrap();
        assert_eq!(low.dtype(), DType::BF16);
        let low = low.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
        assert!(low.to_vec1::<f32>().unwrap().iter().all(|v| v.is_finite()));
        // Inputs of the wrong width are refused with the expected shapes in the message.
        let err = model
            .forward(&txt, &txt, &pooled, &t, g, &img_ids, &txt_ids)
            .unwrap_err()
            .to_string();
        assert!(err.contains("want (B, N, 64)"), "{err}");
        // A missing or unexpected guidance input is an error, not a silent default.
        let t = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
        let wrong = if guidance { None } else { Some(&t) };
        let x = pack_latents(&x0).unwrap();
        assert!(model
            .forward(&x, &txt, &pooled, &t, wrong, &img_ids, &txt_ids)
            .is_err());
    }
}
