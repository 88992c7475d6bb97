//! Model-folder loading: the layouts Hub repos use, and a typed error naming the file or
//! tensor for each way a folder can be broken.

mod common;
use common::*;
use std::path::Path;
use ttpo::diffusion::sd::{weight_files, StableDiffusion, Variant};
use ttpo::diffusion::tiny::{write_tiny_model, TinyKind};
use ttpo::{Engine, EngineConfig, Error};

fn broken_copy(tag: &str) -> std::path::PathBuf {
    let d = temp_dir(tag);
    copy_dir(&tiny_model(TinyKind::Epsilon), &d);
    d
}

fn load(dir: &Path) -> Result<Engine, Error> {
    Engine::load(&[dir], &EngineConfig::default())
}

#[test]
fn missing_folder_and_files_are_named() {
    let err = load(Path::new("/nonexistent/ttpo-model")).unwrap_err();
    assert!(
        matches!(err, Error::MissingFile { .. })
            && err.to_string().contains("/nonexistent/ttpo-model"),
        "{err}"
    );
    for (file, needle) in [
        ("model_index.json", "model_index.json"),
        ("unet/config.json", "unet/config.json"),
        (
            "unet/diffusion_pytorch_model.safetensors",
            "unet/diffusion_pytorch_model",
        ),
        ("text_encoder/model.safetensors", "text_encoder/model"),
        ("scheduler/scheduler_config.json", "scheduler_config.json"),
        ("tokenizer/vocab.json", "tokenizer/vocab.json"),
    ] {
        let d = broken_copy("missing");
        std::fs::remove_file(d.join(file)).unwrap();
        let err = load(&d).unwrap_err();
        assert!(matches!(err, Error::MissingFile { .. }), "{file}: {err}");
        assert!(err.to_string().contains(needle), "{file}: {err}");
    }
}

#[test]
fn corrupt_weights_name_the_file() {
    let d = broken_copy("corrupt");
    let f = d.join("vae/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 3]).unwrap();
    let err = load(&d).unwrap_err();
    assert!(
        matches!(err, Error::Weights { ref component, .. } if component == "vae"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("vae/diffusion_pytorch_model.safetensors"),
        "{err}"
    );
    std::fs::write(&f, b"not a safetensors file").unwrap();
    assert!(matches!(load(&d).unwrap_err(), Error::Weights { .. }));
}

#[test]
fn wrong_shapes_name_the_tensor() {
    // A config that disagrees with the weights: the UNet's first level is 32 wide in the
    // file but the config now says 48.
    let d = broken_copy("shape");
    let p = d.join("unet/config.json");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "\"block_out_channels\": [\n    32,",
        "\"block_out_channels\": [\n    48,",
    );
    assert!(text.contains("48"), "edit did not apply");
    std::fs::write(&p, text).unwrap();
    let err = load(&d).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Weights { .. }), "{msg}");
    assert!(
        msg.contains("conv_in.weight") || msg.contains("shape"),
        "{msg}"
    );
}

#[test]
fn invalid_configs_are_reported() {
    let d = broken_copy("config");
    std::fs::write(d.join("vae/config.json"), "{ not json").unwrap();
    let err = load(&d).unwrap_err();
    assert!(
        matches!(err, Error::InvalidFile { .. }) && err.to_string().contains("vae/config.json"),
        "{err}"
    );

    let d = broken_copy("unsupported");
    let p = d.join("unet/config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    cfg["addition_embed_type"] = "text_time".into();
    std::fs::write(&p, cfg.to_string()).unwrap();
    let err = load(&d).unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { .. }) && err.to_string().contains("addition_embed_type"),
        "{err}"
    );

    let d = broken_copy("sched");
    std::fs::write(
        d.join("scheduler/scheduler_config.json"),
        r#"{"prediction_type": "flow"}"#,
    )
    .unwrap();
    assert!(matches!(load(&d).unwrap_err(), Error::Unsupported { .. }));
}

/// Config values found by the `model_folder` fuzz target that used to panic in the loader
/// (docs/FUZZING.md): each must be a typed error instead.
#[test]
fn fuzz_found_config_values_are_errors() {
    let cases: [(&str, &str, serde_json::Value); 3] = [
        // Division by zero heads (UNet attention, text encoder).
        ("unet/config.json", "attention_head_dim", 0.into()),
        ("text_encoder/config.json", "num_attention_heads", 0.into()),
        // An empty noise schedule (indexing alphas_cumprod[0]).
        (
            "scheduler/scheduler_config.json",
            "trained_betas",
            serde_json::json!([]),
        ),
    ];
    for (file, key, value) in cases {
        let d = broken_copy("fuzz-config");
        let p = d.join(file);
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        cfg[key] = value.clone();
        std::fs::write(&p, cfg.to_string()).unwrap();
        let err = load(&d).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidFile { .. } | Error::Unsupported { .. } | Error::Weights { .. }
            ),
            "{file} {key}={value}: {err}"
        );
    }
}

#[test]
fn fp16_variants_and_tokenizer_json_load() {
    // Convert the tiny UNet to an `.fp16` variant only: the loader must find it.
    let d = broken_copy("fp16");
    let plain = d.join("unet/diffusion_pytorch_model.safetensors");
    let tensors = candle_core::safetensors::load(&plain, &candle_core::Device::Cpu).unwrap();
    let half: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(candle_core::DType::F16).unwrap()))
        .collect();
    candle_core::safetensors::save(
        &half,
        d.join("unet/diffusion_pytorch_model.fp16.safetensors"),
    )
    .unwrap();
    std::fs::remove_file(&plain).unwrap();
    let files = weight_files(
        &d.join("unet"),
        "diffusion_pytorch_model",
        Variant::Auto,
        candle_core::DType::F32,
    )
    .unwrap();
    assert!(files[0].to_string_lossy().ends_with(".fp16.safetensors"));
    assert!(weight_files(
        &d.join("unet"),
        "diffusion_pytorch_model",
        Variant::Plain,
        candle_core::DType::F32
    )
    .is_err());
    let sd = StableDiffusion::load(
        &d,
        &candle_core::Device::Cpu,
        candle_core::DType::F32,
        Variant::Auto,
    )
    .unwrap();
    // f16-rounded weights give nearly the same UNet output as the f32 ones.
    let full = StableDiffusion::load(
        &tiny_model(TinyKind::Epsilon),
        &candle_core::Device::Cpu,
        candle_core::DType::F32,
        Variant::Auto,
    )
    .unwrap();
    let x = ttpo::noise::NoiseStream::new(3, 3)
        .tensor(&[1, 4, 8, 8], &candle_core::Device::Cpu)
        .unwrap();
    let ctx = full.encode_prompt("a photo").unwrap();
    let a = full.unet_output(&x, 500.0, &ctx).unwrap();
    let b = sd.unet_output(&x, 500.0, &ctx).unwrap();
    let rel = ((a.clone() - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap())
        / a.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
    assert!(
        rel > 0.0 && rel < 1e-2,
        "fp16 variant relative difference {rel}"
    );
}

#[test]
fn tiny_generator_is_deterministic() {
    let a = temp_dir("gen-a");
    let b = temp_dir("gen-b");
    write_tiny_model(&a, TinyKind::V, 5).unwrap();
    write_tiny_model(&b, TinyKind::V, 5).unwrap();
    for f in [
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
    ] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    let c = temp_dir("gen-c");
    write_tiny_model(&c, TinyKind::V, 6).unwrap();
    assert_ne!(
        std::fs::read(a.join("unet/diffusion_pytorch_model.safetensors")).unwrap(),
        std::fs::read(c.join("unet/diffusion_pytorch_model.safetensors")).unwrap()
    );
}

/// Rewrites a JSON file of a model folder through `edit`.
fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
}

/// Found by a misuse run: random bytes in model_index.json were an I/O error (status 10)
/// rather than an invalid model file.
#[test]
fn random_bytes_in_configs_are_invalid_files() {
    let mut seed = 0x2545F4914F6CDD1Du64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect();
    assert!(
        std::str::from_utf8(&noise).is_err(),
        "the noise must not be UTF-8"
    );
    for file in [
        "model_index.json",
        "unet/config.json",
        "vae/config.json",
        "text_encoder/config.json",
        "scheduler/scheduler_config.json",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
    ] {
        let d = broken_copy("noise");
        std::fs::write(d.join(file), &noise).unwrap();
        let err = load(&d).unwrap_err();
        assert!(
            matches!(err, Error::InvalidFile { .. }) && err.to_string().contains(file),
            "{file}: {err}"
        );
    }
}

/// Found by a misuse run: `num_train_timesteps` = 4e9 sized a 32 GB allocation, which
/// aborted the process. Every config number that sizes something is bounded first.
#[test]
fn config_sizes_are_bounded_before_anything_is_allocated() {
    let cases: Vec<(&str, &str, serde_json::Value)> = vec![
        (
            "scheduler/scheduler_config.json",
            "num_train_timesteps",
            4_000_000_000u64.into(),
        ),
        (
            "scheduler/scheduler_config.json",
            "num_train_timesteps",
            0.into(),
        ),
        (
            "scheduler/scheduler_config.json",
            "trained_betas",
            serde_json::json!([]),
        ),
        (
            "scheduler/scheduler_config.json",
            "trained_betas",
            serde_json::json!([0.5, 2.0]),
        ),
        ("unet/config.json", "attention_head_dim", 0.into()),
        (
            "unet/config.json",
            "attention_head_dim",
            serde_json::json!([]),
        ),
        ("unet/config.json", "norm_num_groups", 0.into()),
        (
            "unet/config.json",
            "layers_per_block",
            1_000_000_000u64.into(),
        ),
        (
            "unet/config.json",
            "block_out_channels",
            serde_json::json!([4_000_000_000u64, 64]),
        ),
        (
            "vae/config.json",
            "block_out_channels",
            serde_json::json!(vec![8; 70]),
        ),
        ("vae/config.json", "norm_num_groups", 3.into()),
        (
            "text_encoder/config.json",
            "max_position_embeddings",
            4_000_000_000u64.into(),
        ),
        ("text_encoder/config.json", "num_attention_heads", 0.into()),
        (
            "text_encoder/config.json",
            "hidden_size",
            4_000_000_000u64.into(),
        ),
    ];
    for (file, key, value) in cases {
        let d = broken_copy("bounds");
        edit_json(&d.join(file), |v| v[key] = value.clone());
        let err = load(&d).unwrap_err();
        assert!(
            matches!(err, Error::InvalidFile { .. } | Error::Unsupported { .. })
                && err.to_string().contains(file),
            "{file} {key}={value}: {err}"
        );
    }
}

/// transformers 5.x saves `CLIPTextModel` without the `text_model.` prefix; such a folder
/// loads and encodes exactly as the 4.x layout does.
#[test]
fn text_encoder_in_transformers5_layout_loads() {
    let d = broken_copy("tf5");
    let f = d.join("text_encoder/model.safetensors");
    let tensors = candle_core::safetensors::load(&f, &candle_core::Device::Cpu).unwrap();
    assert!(tensors.keys().all(|k| k.starts_with("text_model.")));
    let renamed: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k["text_model.".len()..].to_string(), v))
        .collect();
    candle_core::safetensors::save(&renamed, &f).unwrap();
    let dev = candle_core::Device::Cpu;
    let dtype = candle_core::DType::F32;
    let new = StableDiffusion::load(&d, &dev, dtype, Variant::Auto).unwrap();
    let old =
        StableDiffusion::load(&tiny_model(TinyKind::Epsilon), &dev, dtype, Variant::Auto).unwrap();
    let (a, b) = (
        new.encode_prompt("a photo of a cat").unwrap(),
        old.encode_prompt("a photo of a cat").unwrap(),
    );
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
}

/// The tensor-by-tensor reader gives exactly what candle's loader gives, for every tensor of
/// f32 and f16 files.
#[test]
fn weight_reader_matches_candles_loader() {
    use ttpo::diffusion::weights::WeightFiles;
    let dev = candle_core::Device::Cpu;
    let d = broken_copy("reader");
    let f32_file = d.join("unet/diffusion_pytorch_model.safetensors");
    let f16_file = d.join("unet/diffusion_pytorch_model.fp16.safetensors");
    let tensors = candle_core::safetensors::load(&f32_file, &dev).unwrap();
    let half: std::collections::HashMap<_, _> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.to_dtype(candle_core::DType::F16).unwrap()))
        .collect();
    candle_core::safetensors::save(&half, &f16_file).unwrap();
    for (file, want) in [(&f32_file, &tensors), (&f16_file, &half)] {
        let files = WeightFiles::open(std::slice::from_ref(file)).unwrap();
        let mut names: Vec<String> = files.names().map(String::from).collect();
        names.sort();
        assert_eq!(names.len(), want.len());
        let vb = files.var_builder(candle_core::DType::F32, &dev);
        for name in names {
            let got = vb.get_unchecked(&name).unwrap();
            let expect = want[&name].to_dtype(candle_core::DType::F32).unwrap();
            assert_eq!(got.dims(), expect.dims(), "{name}");
            let diff = (got - expect).unwrap().abs().unwrap();
            let diff = diff.flatten_all().unwrap().max(0).unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
        }
    }
}

/// Headers are untrusted: every lie about lengths, offsets, shapes or dtypes is an invalid
/// file that names what is wrong, before anything is allocated from it.
#[test]
fn weight_reader_refuses_lying_headers() {
    use ttpo::diffusion::weights::WeightFiles;
    let d = temp_dir("lying-headers");
    let file = |header: &str, data: usize| {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + data, 0);
        bytes
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("short", vec![1, 2, 3], "8-byte header length"),
        (
            "huge header length",
            u64::MAX.to_le_bytes().to_vec(),
            "header length",
        ),
        ("not json", file("{nope", 0), "header"),
        (
            "offsets past the end",
            file(
                r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                8,
            ),
            "data_offsets",
        ),
        (
            "shape disagrees with offsets",
            file(
                r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#,
                16,
            ),
            "data_offsets",
        ),
        (
            "overflowing shape",
            file(
                r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}}"#,
                16,
            ),
            "overflows",
        ),
        (
            "unknown dtype",
            file(
                r#"{"w":{"dtype":"F8_E9","shape":[4],"data_offsets":[0,4]}}"#,
                4,
            ),
            "dtype",
        ),
        (
            "negative size",
            file(
                r#"{"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#,
                16,
            ),
            "shape",
        ),
    ];
    for (what, bytes, needle) in cases {
        let p = d.join("w.safetensors");
        std::fs::write(&p, bytes).unwrap();
        let err = WeightFiles::open(&[p]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::InvalidFile { .. }), "{what}: {msg}");
        assert!(msg.contains(needle), "{what}: {msg}");
    }
    // A well-formed file next to them reads.
    let p = d.join("ok.safetensors");
    let mut data = Vec::new();
    for v in [1.0f32, 2.0, 3.0, 4.0] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    let mut bytes = file(
        r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#,
        0,
    );
    bytes.extend_from_slice(&data);
    std::fs::write(&p, bytes).unwrap();
    let vb = WeightFiles::open(&[p])
        .unwrap()
        .var_builder(candle_core::DType::F32, &candle_core::Device::Cpu);
    let w = vb.get((2, 2), "w").unwrap();
    assert_eq!(w.to_vec2::<f32>().unwrap(), [[1.0, 2.0], [3.0, 4.0]]);
    assert!(vb.get((4,), "w").is_err(), "a wrong shape is refused");
}

/// The text encoder is checked at load but read only to encode prompts it has not seen; a
/// prompt's states are kept. Proof: after the weights file is gone, a seen prompt still
/// encodes (identically) and a new one fails naming the file.
#[test]
fn text_encoder_is_read_on_demand_and_prompts_are_cached() {
    let d = broken_copy("lazy-text");
    let dev = candle_core::Device::Cpu;
    let sd = StableDiffusion::load(&d, &dev, candle_core::DType::F32, Variant::Auto).unwrap();
    let a = sd.encode_prompt("a photo of a cat").unwrap();
    let both = sd.encode_prompts(&["a photo of a cat", "blurry"]).unwrap();
    let ids = sd.tokenizer().encode("blurry");
    let ids = candle_core::Tensor::new(ids.as_slice(), &dev)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let direct = sd.load_text_encoder().unwrap().forward(&ids).unwrap();
    let same = |x: &candle_core::Tensor, y: &candle_core::Tensor| {
        let diff = (x - y).unwrap().abs().unwrap().flatten_all().unwrap();
        diff.max(0).unwrap().to_scalar::<f32>().unwrap() == 0.0
    };
    assert!(same(&a, &both[0]) && same(&direct, &both[1]));
    std::fs::remove_file(d.join("text_encoder/model.safetensors")).unwrap();
    assert!(same(&a, &sd.encode_prompt("a photo of a cat").unwrap()));
    let err = sd.encode_prompt("a new prompt").unwrap_err().to_string();
    assert!(err.contains("text_encoder/model"), "{err}");

    // A text encoder whose tensors do not match its config fails `load`, not the first job.
    let d = broken_copy("lazy-text-shape");
    edit_json(&d.join("text_encoder/config.json"), |v| {
        v["intermediate_size"] = (v["intermediate_size"].as_u64().unwrap() + 8).into()
    });
    let err = StableDiffusion::load(&d, &dev, candle_core::DType::F32, Variant::Auto).unwrap_err();
    assert!(
        matches!(err, Error::Weights { ref component, .. } if component == "text_encoder"),
        "{err}"
    );
}
