//! The tiny FLUX.1 folders of the model generator load through the production loader and
//! sample (no reference needed; conformance_flow.rs compares the numbers with diffusers).

mod common;

use candle_core::{DType, Device, Tensor};
use common::temp_dir;
use ttpo::diffusion::clip_text::ClipTextModel;
use ttpo::diffusion::flow_scheduler::FlowMatch;
use ttpo::diffusion::flux::{
    latent_image_ids, pack_latents, text_ids, unpack_latents, FluxTransformer,
};
use ttpo::diffusion::sd::Variant;
use ttpo::diffusion::t5::T5Encoder;
use ttpo::diffusion::t5_tokenizer::{T5Tokenizer, T5_MAX_LENGTH};
use ttpo::diffusion::tiny::{write_tiny_model, TinyKind};
use ttpo::diffusion::tokenizer::ClipTokenizer;
use ttpo::diffusion::vae::Vae;

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

/// Every component of the tiny FLUX folder loads back through its loader, and they chain
/// as in FluxPipeline: prompt → CLIP pooled + T5 states → transformer, image → VAE latents
/// (shifted, scaled) → packed → transformer → unpacked → VAE → image of the same size.
#[test]
fn tiny_flux_folder_has_every_component() {
    let dir = temp_dir("tiny-flux-all");
    write_tiny_model(&dir, TinyKind::FluxDev, 11).unwrap();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model_index.json")).unwrap())
            .unwrap();
    for (key, class) in [
        ("text_encoder", "CLIPTextModel"),
        ("text_encoder_2", "T5EncoderModel"),
        ("tokenizer", "CLIPTokenizer"),
        ("tokenizer_2", "T5TokenizerFast"),
        ("vae", "AutoencoderKL"),
    ] {
        assert_eq!(index[key][1], class, "{key}");
    }
    let cpu = &Device::Cpu;
    let prompt = ttpo::DEFAULT_PROMPT;

    // CLIP-L: the pooled state (legacy eos_token_id 2: at the largest id, the end token).
    let clip =
        ClipTextModel::load(&dir.join("text_encoder"), cpu, DType::F32, Variant::Auto).unwrap();
    assert_eq!(clip.config().eos_token_id, 2);
    let ctok = ClipTokenizer::from_folder(&dir.join("tokenizer"), 77).unwrap();
    let ids = ctok.encode(prompt);
    let end = ids
        .iter()
        .position(|&i| i == *ids.iter().max().unwrap())
        .unwrap();
    let ids = Tensor::new(ids.as_slice(), cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let out = clip.forward_all(&ids).unwrap();
    assert_eq!(out.pooled.dims(), &[1, 32]);
    let at_end = out.last.narrow(1, end, 1).unwrap().squeeze(1).unwrap();
    assert_eq!(
        out.pooled.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        at_end.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );

    // T5: the prompt is whole words of the tiny vocabulary, `</s>` then `<pad>` follow.
    let ttok = T5Tokenizer::from_dir(&dir.join("tokenizer_2")).unwrap();
    let t5_ids = ttok.encode(prompt, T5_MAX_LENGTH).unwrap();
    assert_eq!(t5_ids.len(), T5_MAX_LENGTH);
    let n = t5_ids.iter().position(|&i| i == 1).expect("</s>");
    assert!(t5_ids[n + 1..].iter().all(|&i| i == 0), "padded with <pad>");
    assert!(!t5_ids[..n].contains(&2), "no <unk> in the default prompt");
    // transformers' T5TokenizerFast on this folder's tokenizer_2 gives exactly these ids
    // (checked with FluxPipeline.from_pretrained on a folder written by make_tiny_model):
    // whole words, punctuation and "-contrast"/"-realistic" as pieces.
    assert_eq!(
        t5_ids[..=n],
        [
            70, 20, 71, 26, 72, 20, 73, 26, 74, 20, 75, 20, 76, 77, 20, 78, 79, 20, 80, 81, 20, 82,
            83, 84, 56, 1
        ]
    );
    let t5 = T5Encoder::load(&dir.join("text_encoder_2"), cpu, DType::F32, Variant::Auto).unwrap();
    let ids = Tensor::new(t5_ids.as_slice(), cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let txt = t5.forward(&ids).unwrap();
    assert_eq!(txt.dims(), &[1, T5_MAX_LENGTH, 32]);
    // No mask: the padding positions attend and differ from each other only by position.
    let vals = txt.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(vals.iter().all(|v| v.is_finite()));

    // VAE: 16 channels at 1/8 size, shift and scale applied and undone.
    let vae = Vae::load(&dir.join("vae"), cpu, DType::F32, Variant::Auto).unwrap();
    assert_eq!(vae.config().shift_factor, Some(0.1159));
    let image = (noise(5, &[1, 3, 48, 80]) * 0.3).unwrap();
    let mean = vae.encode_mean(&image).unwrap();
    assert_eq!(mean.dims(), &[1, 16, 6, 10]);
    let lat = vae.to_latents(&mean).unwrap();
    let want = ((&mean - 0.1159).unwrap() * 0.3611).unwrap();
    assert_eq!(
        lat.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        want.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let back = vae.from_latents(&lat).unwrap();
    let err = (back - &mean).unwrap().abs().unwrap().max_all().unwrap();
    assert!(err.to_scalar::<f32>().unwrap() < 1e-5);

    // The transformer takes all of it.
    let model =
        FluxTransformer::load(&dir.join("transformer"), cpu, DType::F32, Variant::Auto).unwrap();
    let (img_ids, txt_ids) = (
        latent_image_ids(6, 10, cpu).unwrap(),
        text_ids(T5_MAX_LENGTH, cpu).unwrap(),
    );
    let t = Tensor::new(&[0.6f32], cpu).unwrap();
    let g = Tensor::new(&[3.5f32], cpu).unwrap();
    let v = model
        .forward(
            &pack_latents(&lat).unwrap(),
            &txt,
            &out.pooled,
            &t,
            Some(&g),
            &img_ids,
            &txt_ids,
        )
        .unwrap();
    let x0 = (pack_latents(&lat).unwrap() - (v * 0.6).unwrap()).unwrap();
    let img = vae
        .decode(
            &vae.from_latents(&unpack_latents(&x0, 6, 10).unwrap())
                .unwrap(),
        )
        .unwrap();
    assert_eq!(img.dims(), &[1, 3, 48, 80]);
    let vals = img.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(vals.iter().all(|v| v.is_finite()));
}

/// A missing or unusable `tokenizer_2/tokenizer.json` is an error naming the file.
#[test]
fn t5_tokenizer_errors_name_the_file() {
    let dir = temp_dir("t5-tok-errors");
    let err = T5Tokenizer::from_dir(&dir).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    std::fs::write(dir.join("tokenizer.json"), "{not json").unwrap();
    let err = T5Tokenizer::from_dir(&dir).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains("not a usable"),
        "{err}"
    );
    // A valid file without T5's special tokens is refused, not padded with a wrong id.
    write_tiny_model(&dir.join("m"), TinyKind::FluxSchnell, 1).unwrap();
    let text = std::fs::read_to_string(dir.join("m/tokenizer_2/tokenizer.json")).unwrap();
    std::fs::write(dir.join("tokenizer.json"), text.replace("<pad>", "<nopad>")).unwrap();
    let err = T5Tokenizer::from_dir(&dir).unwrap_err().to_string();
    assert!(err.contains("no <pad> token"), "{err}");
}

/// T5 v1.0's ReLU feed-forward (no `wi_0`/`wi_1`) is refused with the reason, not loaded
/// into the wrong function.
#[test]
fn t5_v1_0_config_is_refused() {
    let dir = temp_dir("t5-relu");
    write_tiny_model(&dir, TinyKind::FluxSchnell, 2).unwrap();
    let cfg = dir.join("text_encoder_2/config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("\"gated-gelu\"", "\"relu\"")).unwrap();
    let err = T5Encoder::load(
        &dir.join("text_encoder_2"),
        &Device::Cpu,
        DType::F32,
        Variant::Auto,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("gated-gelu") && err.contains("relu"), "{err}");
}
