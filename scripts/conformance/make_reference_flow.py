#!/usr/bin/env python3
"""Generate rectified-flow (FLUX.1) reference models and tensors with diffusers, for TTPO's
Rust conformance tests (core/tests/conformance_flow.rs).

    python make_reference_flow.py OUT_DIR

writes
  OUT_DIR/flux_dev/       tiny FluxTransformer2DModel with guidance embedding (FLUX.1-dev
                          style, dynamic shifting scheduler) + reference tensors
  OUT_DIR/flux_schnell/   the same without guidance embedding (FLUX.1-schnell style,
                          static shift 1.0)
  OUT_DIR/scheduler.json  FlowMatchEulerDiscreteScheduler sigmas/timesteps for several
                          configs, step counts and mu values, img2img start indices
  OUT_DIR/encoders/       the text encoders and VAEs of the flow pipelines, tiny and seeded:
                          text_encoder/ (CLIPTextModelWithProjection, legacy eos_token_id 2:
                          pooled at the argmax id, as FLUX's / SD3's CLIP-L), text_encoder_3/
                          (the same with eos_token_id 997: pooled at its first occurrence),
                          text_encoder_2/ (T5EncoderModel, v1.1 gated-gelu) and tokenizer_2/
                          (a T5TokenizerFast over a small trained unigram vocabulary, in the
                          layout FLUX/SD3 ship), vae_flux/ and vae_sd3/ (16-channel
                          AutoencoderKL) + reference tensors
  OUT_DIR/flux_full_shapes.json
                          every tensor name and shape of the full-size FLUX.1-dev and
                          FLUX.1-schnell transformers (built on the meta device: no weights)
  OUT_DIR/encoder_full_shapes.json
                          the same for the full-size text encoders and VAEs: FLUX's T5-XXL
                          and CLIP-L, SD3's CLIP-L/G with projection, FLUX's and SD3's VAE
  OUT_DIR/sd3/, sd35/     tiny SD3Transformer2DModel (SD3; SD3.5 style with qk_norm and dual
                          attention) + SD3 scheduler (shift 3) + reference tensors
  OUT_DIR/sd3_full_shapes.json
                          tensor names/shapes of the full-size SD3-medium, SD3.5-medium and
                          SD3.5-large transformers (meta device)

Each model folder is in the diffusers layout (model_index.json, transformer/, scheduler/)
with f32 safetensors, plus reference.safetensors and reference.json. Kept apart from
make_reference.py so that changing it does not regenerate the SD references.
"""
import copy
import json
import os
import sys
import types

import numpy as np
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline, calculate_shift
from diffusers.pipelines.flux.pipeline_flux_img2img import FluxImg2ImgPipeline
from safetensors.torch import save_file

SEED = 20251201

# Published transformer/config.json of black-forest-labs/FLUX.1-dev (schnell: no guidance).
FULL_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
                attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=[16, 56, 56])
FULL_SCHNELL = dict(FULL_DEV, guidance_embeds=False)

# Published scheduler/scheduler_config.json files.
SCHED_DEV = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15,
                 num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True)
SCHED_SCHNELL = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096,
                     max_shift=1.15, num_train_timesteps=1000, shift=1.0,
                     use_dynamic_shifting=False)
SCHED_SD3 = dict(num_train_timesteps=1000, shift=3.0)
SCHED_LINEAR = dict(SCHED_DEV, time_shift_type="linear")
SCHEDULERS = dict(flux_dev=SCHED_DEV, flux_schnell=SCHED_SCHNELL, sd3=SCHED_SD3,
                  dynamic_linear=SCHED_LINEAR)

# Tiny: width 2 heads x 16, RoPE axes 4 + 6 + 6, latent 16 channels (64 packed features).
TINY = dict(patch_size=1, in_channels=64, num_layers=2, num_single_layers=2,
            attention_head_dim=16, num_attention_heads=2, joint_attention_dim=24,
            pooled_projection_dim=20, axes_dims_rope=[4, 6, 6])
B, C, H, W = 2, 16, 8, 12     # latent (non-square: rows and columns are distinguishable)
PIX_H, PIX_W = 8 * H, 8 * W   # pixel size FluxPipeline's _unpack_latents is given
TXT_LEN = 7
STEPS = [1, 2, 3, 4, 7, 20, 28, 50]
SEQ_LENS = [24, 256, 1024, 4096, 6000]
IMG2IMG = [(10, 0.3), (10, 0.5), (28, 0.6), (50, 0.15), (20, 0.75), (7, 0.33), (4, 1.0),
           (50, 0.1), (3, 0.9)]


def f32s(t):
    return [float(v) for v in torch.as_tensor(t, dtype=torch.float32).flatten()]


def perturb(model, gen):
    """RMSNorm weights 1 + 0.1 N; every other parameter + 0.02 N on top of its init."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".norm_" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.add_(0.02 * torch.randn(p.shape, generator=gen))


def scheduler_refs():
    out = {}
    for name, cfg in SCHEDULERS.items():
        s = FlowMatchEulerDiscreteScheduler(**cfg)
        entry = dict(config=cfg, flux_sigmas={}, default={})
        for n in STEPS:
            for seq in SEQ_LENS:
                mu = calculate_shift(seq, s.config.get("base_image_seq_len", 256),
                                     s.config.get("max_image_seq_len", 4096),
                                     s.config.get("base_shift", 0.5),
                                     s.config.get("max_shift", 1.15))
                # FluxPipeline: custom sigmas np.linspace(1, 1/n, n) and mu.
                s.set_timesteps(sigmas=np.linspace(1.0, 1 / n, n), mu=mu)
                entry["flux_sigmas"][f"{n}/{seq}"] = dict(
                    mu=mu, sigmas=f32s(s.sigmas), timesteps=f32s(s.timesteps))
                # SD3 pipelines: no custom sigmas (mu only with dynamic shifting).
                s.set_timesteps(n, mu=mu if cfg.get("use_dynamic_shifting") else None)
                entry["default"][f"{n}/{seq}"] = dict(
                    mu=mu, sigmas=f32s(s.sigmas), timesteps=f32s(s.timesteps))
        out[name] = entry
    # FluxImg2ImgPipeline.get_timesteps itself, on a stand-in `self`.
    i2i = []
    s = FlowMatchEulerDiscreteScheduler(**SCHED_DEV)
    for n, strength in IMG2IMG:
        s.set_timesteps(sigmas=np.linspace(1.0, 1 / n, n), mu=1.0)
        ts, left = FluxImg2ImgPipeline.get_timesteps(types.SimpleNamespace(scheduler=s), n,
                                                     strength, "cpu")
        i2i.append(dict(num_inference_steps=n, strength=strength, t_start=n - left,
                        timesteps=f32s(ts)))
    return dict(schedulers=out, img2img=i2i)


# Published text_encoder / text_encoder_2 / vae configs of FLUX.1 and SD3 (the fields that
# decide tensor names and shapes).
FULL_T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                   num_heads=64, relative_attention_num_buckets=32,
                   relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                   tie_word_embeddings=False, is_encoder_decoder=False, use_cache=False)
FULL_CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                   num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                   hidden_act="quick_gelu", projection_dim=768, eos_token_id=2)
FULL_CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120,
                   num_hidden_layers=32, num_attention_heads=20, max_position_embeddings=77,
                   hidden_act="gelu", projection_dim=1280, eos_token_id=2)
FULL_VAE = dict(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=2,
                block_out_channels=[128, 256, 512, 512], norm_num_groups=32,
                down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, use_quant_conv=False,
                use_post_quant_conv=False, sample_size=1024)


def encoder_full_shapes():
    """Name -> shape of the full-size encoders and VAEs, built on the meta device. T5's
    `encoder.embed_tokens.weight` is the tied alias of `shared.weight` (not in the files)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    from transformers import T5Config, T5EncoderModel
    items = [
        ("flux_t5_xxl", "t5", FULL_T5_XXL, lambda c: T5EncoderModel(T5Config(**c))),
        ("flux_clip_l", "clip", FULL_CLIP_L, lambda c: CLIPTextModel(CLIPTextConfig(**c))),
        ("sd3_clip_l", "clip_projection", FULL_CLIP_L,
         lambda c: CLIPTextModelWithProjection(CLIPTextConfig(**c))),
        ("sd3_clip_g", "clip_projection", FULL_CLIP_G,
         lambda c: CLIPTextModelWithProjection(CLIPTextConfig(**c))),
        ("flux_vae", "vae", dict(FULL_VAE, scaling_factor=0.3611, shift_factor=0.1159),
         lambda c: AutoencoderKL(**c)),
        ("sd3_vae", "vae", dict(FULL_VAE, scaling_factor=1.5305, shift_factor=0.0609),
         lambda c: AutoencoderKL(**c)),
    ]
    out = {}
    for name, kind, cfg, build in items:
        with torch.device("meta"):
            m = build(cfg)
        tensors = {k: list(v.shape) for k, v in m.state_dict().items()
                   if k != "encoder.embed_tokens.weight"}
        out[name] = dict(kind=kind, config=cfg, tensors=tensors)
    return out


def full_shapes():
    out = {}
    for name, cfg in (("flux_dev", FULL_DEV), ("flux_schnell", FULL_SCHNELL)):
        with torch.device("meta"):
            m = FluxTransformer2DModel(**cfg)
        out[name] = dict(config=cfg, tensors={k: list(v.shape) for k, v in m.state_dict().items()})
    return out


def write_folder(out, model, sched_cfg):
    model.save_pretrained(os.path.join(out, "transformer"), safe_serialization=True)
    sched = FlowMatchEulerDiscreteScheduler(**sched_cfg)
    sched.save_pretrained(os.path.join(out, "scheduler"))
    with open(os.path.join(out, "model_index.json"), "w") as fh:
        json.dump({"_class_name": "FluxPipeline", "_diffusers_version": "0.35.2",
                   "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                   "transformer": ["diffusers", "FluxTransformer2DModel"],
                   "text_encoder": [None, None], "text_encoder_2": [None, None],
                   "tokenizer": [None, None], "tokenizer_2": [None, None],
                   "vae": [None, None]}, fh, indent=1)
    return sched


def make_tiny(root, name, guidance):
    out = os.path.join(root, name)
    torch.manual_seed(SEED + (1 if guidance else 2))
    gen = torch.Generator().manual_seed(SEED + (10 if guidance else 20))
    model = FluxTransformer2DModel(**TINY, guidance_embeds=guidance)
    perturb(model, gen)
    model.eval()
    sched_cfg = SCHED_DEV if guidance else SCHED_SCHNELL
    sched = write_folder(out, model, sched_cfg)
    ref, meta = {}, dict(model=name, seed=SEED, guidance_embeds=guidance,
                         latent=[B, C, H, W], pixel=[PIX_H, PIX_W],
                         timestep_convention="the transformer is given timestep = t/1000 "
                                             "(sigma) and guidance = the scale; it multiplies "
                                             "both by 1000 itself")
    with torch.no_grad():
        lat = torch.randn(B, C, H, W, generator=gen)
        packed = FluxPipeline._pack_latents(lat, B, C, H, W)
        img_ids = FluxPipeline._prepare_latent_image_ids(B, H // 2, W // 2, "cpu", torch.float32)
        txt = torch.randn(B, TXT_LEN, TINY["joint_attention_dim"], generator=gen)
        pooled = torch.randn(B, TINY["pooled_projection_dim"], generator=gen)
        txt_ids = torch.zeros(TXT_LEN, 3)
        ref.update(latents=lat, packed=packed, img_ids=img_ids, txt=txt, pooled=pooled,
                   txt_ids=txt_ids)
        g = torch.tensor([3.5, 1.25]) if guidance else None
        if guidance:
            ref["guidance"] = g
        calls = []
        for i, t in enumerate([[1.0, 1.0], [0.75, 0.3], [0.02, 0.5]]):
            tt = torch.tensor(t)
            o = model(hidden_states=packed, encoder_hidden_states=txt, pooled_projections=pooled,
                      timestep=tt, img_ids=img_ids, txt_ids=txt_ids, guidance=g,
                      return_dict=False)[0]
            ref[f"timestep_{i}"] = tt
            ref[f"out_{i}"] = o
            calls.append(t)
        meta["calls"] = calls
        ref["unpacked_out_0"] = FluxPipeline._unpack_latents(ref["out_0"], PIX_H, PIX_W, 8)

        # The pipeline's loop (FluxPipeline.__call__ without text encoders and VAE):
        # 4 steps from pure noise on FluxPipeline's schedule for this sequence length.
        n = 4
        seq = packed.shape[1]
        mu = calculate_shift(seq, sched.config.get("base_image_seq_len", 256),
                             sched.config.get("max_image_seq_len", 4096),
                             sched.config.get("base_shift", 0.5),
                             sched.config.get("max_shift", 1.15))
        gscale = 3.5
        gvec = torch.full([1], gscale, dtype=torch.float32).expand(B) if guidance else None

        def run(x, timesteps):
            for t in timesteps:
                x = sched.step(model(hidden_states=x, encoder_hidden_states=txt,
                                     pooled_projections=pooled,
                                     timestep=t.expand(B).to(x.dtype) / 1000, img_ids=img_ids,
                                     txt_ids=txt_ids, guidance=gvec, return_dict=False)[0],
                               t, x, return_dict=False)[0]
            return x

        noise = torch.randn(B, C, H, W, generator=gen)
        noise_p = FluxPipeline._pack_latents(noise, B, C, H, W)
        sched.set_timesteps(sigmas=np.linspace(1.0, 1 / n, n), mu=mu)
        ref["t2i_noise"] = noise
        ref["t2i_out"] = FluxPipeline._unpack_latents(run(noise_p, sched.timesteps),
                                                      PIX_H, PIX_W, 8)
        meta["t2i"] = dict(num_inference_steps=n, mu=mu, guidance_scale=gscale,
                           timesteps=f32s(sched.timesteps), sigmas=f32s(sched.sigmas))

        # img2img: FluxImg2ImgPipeline's start index and scale_noise, then the same loop.
        n, strength = 5, 0.6
        sched.set_timesteps(sigmas=np.linspace(1.0, 1 / n, n), mu=mu)
        ts, left = FluxImg2ImgPipeline.get_timesteps(types.SimpleNamespace(scheduler=sched), n,
                                                     strength, "cpu")
        x0 = torch.randn(B, C, H, W, generator=gen)
        eps = torch.randn(B, C, H, W, generator=gen)
        x0_p = FluxPipeline._pack_latents(x0, B, C, H, W)
        eps_p = FluxPipeline._pack_latents(eps, B, C, H, W)
        xs = sched.scale_noise(x0_p, ts[:1].repeat(B), eps_p)
        ref["i2i_x0"], ref["i2i_noise"] = x0, eps
        ref["i2i_noised"] = FluxPipeline._unpack_latents(xs, PIX_H, PIX_W, 8)
        ref["i2i_out"] = FluxPipeline._unpack_latents(run(xs, ts), PIX_H, PIX_W, 8)
        meta["i2i"] = dict(num_inference_steps=n, strength=strength, t_start=n - left, mu=mu,
                           guidance_scale=gscale, timesteps=f32s(ts))

        # One scheduler step on the model's own output (scheduler arithmetic only).
        sched.set_timesteps(sigmas=np.linspace(1.0, 1 / n, n), mu=mu)
        t1 = sched.timesteps[1]
        sched._step_index = 1
        ref["step_out"] = sched.step(ref["out_1"], t1, packed, return_dict=False)[0]
        meta["step"] = dict(num_inference_steps=n, mu=mu, index=1, model_output="out_1",
                            sample="packed")

        # The same call as out_1 with the model and inputs in bf16 (the GPU precision).
        half = copy.deepcopy(model).to(torch.bfloat16)
        bf = lambda k: ref[k].to(torch.bfloat16)
        ref["out_bf16_1"] = half(hidden_states=bf("packed"), encoder_hidden_states=bf("txt"),
                                 pooled_projections=bf("pooled"), timestep=bf("timestep_1"),
                                 img_ids=img_ids, txt_ids=txt_ids,
                                 guidance=g.to(torch.bfloat16) if guidance else None,
                                 return_dict=False)[0]

    ref = {k: v.detach().contiguous().float() for k, v in ref.items()}
    save_file(ref, os.path.join(out, "reference.safetensors"))
    meta["versions"] = dict(torch=torch.__version__,
                            diffusers=__import__("diffusers").__version__,
                            numpy=np.__version__)
    with open(os.path.join(out, "reference.json"), "w") as fh:
        json.dump(meta, fh, indent=1)


# The prompts the T5 tokenizer is compared on (ids exactly): TTPO's default prompt,
# punctuation, digits, unicode (accents, NFKC-folded forms, characters outside the
# vocabulary), repeated spaces, empty, and text longer than every max_length.
DEFAULT_PROMPT = ("Cinematic, high-contrast, photo-realistic, 8k, ultra HD, meticulous "
                  "detailing, hyper sharpness, perfect without deformations.")
T5_PROMPTS = [
    DEFAULT_PROMPT,
    "",
    "a photo of a cat, sitting on a mat!!! (1995) -- 3.14159 #42 @home",
    "Café déjà vu: naïve façade, Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ, ﬁne ligature, ½ and ² signs",
    "日本語のテキスト and emoji 🙂🎨 mixed   with    spaces\tand\nnewlines",
    "  leading and trailing spaces  ",
    "<pad> </s> <unk> look like special tokens",
    " ".join(f"word{i} and more text, {i * 7}" for i in range(400)),
]
T5_CORPUS = [
    DEFAULT_PROMPT, "a photo of a cat sitting on a mat", "the quick brown fox jumps over the "
    "lazy dog", "high quality, sharp, detailed photograph of a mountain landscape at sunset",
    "restore the image, remove noise and blur", "0123456789 numbers and digits 42 3.14",
    "café déjà vu naïve façade", "portrait of a woman, studio lighting, 85mm lens",
    "word and more text, punctuation: ; ! ? ( ) - #",
] * 3
T5_TINY = dict(d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
               relative_attention_num_buckets=16, relative_attention_max_distance=40,
               feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, dropout_rate=0.0,
               tie_word_embeddings=False, is_encoder_decoder=False, use_cache=False)
CLIP_TINY = dict(vocab_size=1000, hidden_size=32, intermediate_size=37, projection_dim=24,
                 num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=77,
                 hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=998, pad_token_id=1)
# Published vae/config.json fields of FLUX.1 and SD3 (both: 16 channels, no quant convs);
# widths shrunk.
VAE_TINY = dict(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=1,
                block_out_channels=[32, 64], norm_num_groups=8,
                down_block_types=["DownEncoderBlock2D"] * 2,
                up_block_types=["UpDecoderBlock2D"] * 2, use_quant_conv=False,
                use_post_quant_conv=False, sample_size=64)
VAE_FLUX = dict(VAE_TINY, scaling_factor=0.3611, shift_factor=0.1159)
VAE_SD3 = dict(VAE_TINY, scaling_factor=1.5305, shift_factor=0.0609)


def t5_tokenizer(out):
    """A T5TokenizerFast in FLUX's tokenizer_2 layout (unigram, Metaspace, `</s>` appended),
    its vocabulary trained here (no download; sentencepiece's charsmap replaced by NFKC)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import processors, trainers
    from transformers import T5TokenizerFast
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.train_from_iterator(T5_CORPUS, trainers.UnigramTrainer(
        vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
        shrinking_factor=0.75, n_sub_iterations=2))
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    raw = os.path.join(out, "raw_tokenizer.json")
    tok.save(raw)
    fast = T5TokenizerFast(tokenizer_file=raw, eos_token="</s>", unk_token="<unk>",
                           pad_token="<pad>", extra_ids=0, model_max_length=512)
    os.remove(raw)
    fast.save_pretrained(os.path.join(out, "tokenizer_2"))
    return fast


def make_encoders(root):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config
    from transformers import T5EncoderModel
    out = os.path.join(root, "encoders")
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED + 30)
    ref, meta = {}, dict(model="encoders", seed=SEED, tokenizer={})

    tok = t5_tokenizer(out)
    for max_len in (256, 512):
        # FluxPipeline._get_t5_prompt_embeds / SD3's: pad to max_length, truncate.
        enc = tok(T5_PROMPTS, padding="max_length", max_length=max_len, truncation=True,
                  return_length=False, return_overflowing_tokens=False)
        meta["tokenizer"][str(max_len)] = enc["input_ids"]
    meta["tokenizer"]["prompts"] = T5_PROMPTS
    meta["tokenizer"]["vocab_size"] = len(tok)

    torch.manual_seed(SEED + 31)
    t5 = T5EncoderModel(T5Config(vocab_size=len(tok), **T5_TINY))
    perturb_all(t5, gen)
    t5.eval().save_pretrained(os.path.join(out, "text_encoder_2"), safe_serialization=True)
    with torch.no_grad():
        # No attention mask, as FluxPipeline and the SD3 pipelines call it.
        ids = torch.tensor(meta["tokenizer"]["256"][:3])
        ref["t5_ids"] = ids
        ref["t5_hidden"] = t5(ids)[0]
        ref["t5_hidden_bf16"] = copy.deepcopy(t5).to(torch.bfloat16)(ids)[0]
        # The relative-position buckets of the full-size config (32 buckets, distance 128)
        # and the tiny one, for every offset of a 512-token sequence: the edges are where
        # an f32 log could round the other way.
        from transformers.models.t5.modeling_t5 import T5Attention
        rel = torch.arange(-511, 512)
        ref["t5_buckets_32_128"] = T5Attention._relative_position_bucket(
            rel, bidirectional=True, num_buckets=32, max_distance=128)
        ref["t5_buckets_tiny"] = T5Attention._relative_position_bucket(
            rel, bidirectional=True, num_buckets=T5_TINY["relative_attention_num_buckets"],
            max_distance=T5_TINY["relative_attention_max_distance"])

    clip_ids = torch.randint(3, 990, (2, 77), generator=gen)
    clip_ids[:, 0] = 998
    clip_ids[0, 9:] = 999     # FLUX's CLIP tokenizer pads with eos
    clip_ids[1, 40] = 997     # row 1: eos 997 for text_encoder_3; its largest id is the bos
    clip_ids[1, 41:] = 0      # SD3's CLIP-G tokenizer pads with "!" (id 0)
    ref["clip_ids"] = clip_ids
    for name, eos in (("text_encoder", 2), ("text_encoder_3", 997)):
        torch.manual_seed(SEED + 32 + eos)
        m = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_TINY, eos_token_id=eos))
        perturb_all(m, gen)
        m.eval().save_pretrained(os.path.join(out, name), safe_serialization=True)
        with torch.no_grad():
            o = m(clip_ids, output_hidden_states=True)
            ref[f"{name}_last"] = o.last_hidden_state
            ref[f"{name}_penultimate"] = o.hidden_states[-2]
            ref[f"{name}_text_embeds"] = o.text_embeds
            # CLIPTextModel's pooler_output (FLUX's pooled CLIP-L) from the same weights.
            ref[f"{name}_pooled"] = m.text_model(clip_ids).pooler_output
        meta[name] = dict(eos_token_id=eos)

    img = torch.rand(2, 3, 32, 48, generator=gen) * 2 - 1
    ref["vae_image"] = img
    for name, cfg in (("vae_flux", VAE_FLUX), ("vae_sd3", VAE_SD3)):
        torch.manual_seed(SEED + 40 + len(name))
        vae = AutoencoderKL(**cfg)
        perturb_all(vae, gen)
        vae.eval().save_pretrained(os.path.join(out, name), safe_serialization=True)
        with torch.no_grad():
            mean = vae.encode(img).latent_dist.mode()
            # The pipelines' latents: (z - shift) * scale; decoding: z / scale + shift.
            lat = (mean - cfg["shift_factor"]) * cfg["scaling_factor"]
            ref[f"{name}_mean"] = mean
            ref[f"{name}_latents"] = lat
            dec_in = torch.randn(lat.shape, generator=gen)
            ref[f"{name}_dec_in"] = dec_in
            ref[f"{name}_decoded"] = vae.decode(dec_in / cfg["scaling_factor"]
                                                + cfg["shift_factor"]).sample
        meta[name] = cfg

    ref = {k: (v.detach().contiguous() if v.dtype == torch.int64 else
               v.detach().contiguous().float()) for k, v in ref.items()}
    save_file(ref, os.path.join(out, "reference.safetensors"))
    meta["versions"] = dict(torch=torch.__version__,
                            transformers=__import__("transformers").__version__,
                            tokenizers=__import__("tokenizers").__version__,
                            diffusers=__import__("diffusers").__version__)
    with open(os.path.join(out, "reference.json"), "w") as fh:
        json.dump(meta, fh, indent=0)


def perturb_all(model, gen):
    """Every parameter + 0.05 N: LayerNorm weights and zero-initialised biases leave 1 / 0."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))


# ---------------------------------------------------------------------------------------
# SD3 / SD3.5 (SD3Transformer2DModel, the MMDiT). Kept in its own section.
# Published transformer/config.json of stabilityai/stable-diffusion-3-medium-diffusers,
# stable-diffusion-3.5-medium and stable-diffusion-3.5-large.
FULL_SD3_MEDIUM = dict(sample_size=128, patch_size=2, in_channels=16, num_layers=24,
                       attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
                       caption_projection_dim=1536, pooled_projection_dim=2048,
                       out_channels=16, pos_embed_max_size=192)
FULL_SD35_MEDIUM = dict(FULL_SD3_MEDIUM, pos_embed_max_size=384, qk_norm="rms_norm",
                        dual_attention_layers=list(range(13)))
FULL_SD35_LARGE = dict(FULL_SD3_MEDIUM, num_layers=38, num_attention_heads=38,
                       caption_projection_dim=2432, qk_norm="rms_norm")

# Tiny: 3 blocks (the last context_pre_only), patch 2, a 12x12 position table cropped to the
# 4x6 patch grid of an 8x12 latent (non-square: rows and columns are distinguishable).
SD3_TINY = dict(sample_size=16, patch_size=2, in_channels=16, num_layers=3,
                attention_head_dim=16, num_attention_heads=2, joint_attention_dim=24,
                caption_projection_dim=32, pooled_projection_dim=20, out_channels=16,
                pos_embed_max_size=12)
SD35_TINY = dict(SD3_TINY, qk_norm="rms_norm", dual_attention_layers=[0, 1])
SD3_H, SD3_W, SD3_TXT = 8, 12, 9


def sd3_full_shapes():
    from diffusers import SD3Transformer2DModel
    out = {}
    for name, cfg in (("sd3_medium", FULL_SD3_MEDIUM), ("sd35_medium", FULL_SD35_MEDIUM),
                      ("sd35_large", FULL_SD35_LARGE)):
        with torch.device("meta"):
            m = SD3Transformer2DModel(**cfg)
        out[name] = dict(config=cfg, tensors={k: list(v.shape) for k, v in m.state_dict().items()})
    return out


def make_sd3(root, name, cfg, seed_off):
    """A tiny SD3Transformer2DModel, its scheduler (SD3's static shift 3) and references:
    calls on a CFG batch (unconditional row first, the same latent in both rows, as
    StableDiffusion3Pipeline makes it), and a 4-step text-to-image loop with CFG."""
    from diffusers import SD3Transformer2DModel
    out = os.path.join(root, name)
    torch.manual_seed(SEED + seed_off)
    gen = torch.Generator().manual_seed(SEED + seed_off + 1)
    model = SD3Transformer2DModel(**cfg)
    perturb(model, gen)
    model.eval()
    model.save_pretrained(os.path.join(out, "transformer"), safe_serialization=True)
    sched = FlowMatchEulerDiscreteScheduler(**SCHED_SD3)
    sched.save_pretrained(os.path.join(out, "scheduler"))
    with open(os.path.join(out, "model_index.json"), "w") as fh:
        json.dump({"_class_name": "StableDiffusion3Pipeline", "_diffusers_version": "0.35.2",
                   "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                   "transformer": ["diffusers", "SD3Transformer2DModel"],
                   **{k: [None, None] for k in ("text_encoder", "text_encoder_2",
                                                "text_encoder_3", "tokenizer", "tokenizer_2",
                                                "tokenizer_3", "vae")}}, fh, indent=1)
    ref, meta = {}, dict(model=name, seed=SEED, config=cfg, latent=[1, 16, SD3_H, SD3_W],
                         timestep_convention="the transformer is given t = 1000 sigma, "
                                             "as StableDiffusion3Pipeline passes it")
    with torch.no_grad():
        lat = torch.randn(1, 16, SD3_H, SD3_W, generator=gen)
        txt = torch.randn(2, SD3_TXT, cfg["joint_attention_dim"], generator=gen)
        pooled = torch.randn(2, cfg["pooled_projection_dim"], generator=gen)
        x2 = torch.cat([lat] * 2)
        ref.update(latents=lat, txt=txt, pooled=pooled)
        calls = [[1000.0, 1000.0], [750.25, 750.25], [12.5, 600.0]]
        for i, t in enumerate(calls):
            tt = torch.tensor(t)
            ref[f"timestep_{i}"] = tt
            ref[f"out_{i}"] = model(hidden_states=x2, encoder_hidden_states=txt,
                                    pooled_projections=pooled, timestep=tt,
                                    return_dict=False)[0]
        meta["calls"] = calls
        # The call out_1 with the model and inputs in bf16 (the GPU precision); the timestep
        # stays f32 as StableDiffusion3Pipeline passes the scheduler's timesteps.
        half = copy.deepcopy(model).to(torch.bfloat16)
        bf = torch.bfloat16
        ref["out_bf16_1"] = half(hidden_states=x2.to(bf), encoder_hidden_states=txt.to(bf),
                                 pooled_projections=pooled.to(bf), timestep=ref["timestep_1"],
                                 return_dict=False)[0]
        # StableDiffusion3Pipeline.__call__'s loop without text encoders and VAE.
        n, scale = 4, 5.0
        sched.set_timesteps(n)
        x = torch.randn(1, 16, SD3_H, SD3_W, generator=gen)
        ref["t2i_noise"] = x
        for t in sched.timesteps:
            o = model(hidden_states=torch.cat([x] * 2), encoder_hidden_states=txt,
                      pooled_projections=pooled, timestep=t.expand(2), return_dict=False)[0]
            u, c = o.chunk(2)
            x = sched.step(u + scale * (c - u), t, x, return_dict=False)[0]
        ref["t2i_out"] = x
        meta["t2i"] = dict(num_inference_steps=n, guidance_scale=scale,
                           timesteps=f32s(sched.timesteps), sigmas=f32s(sched.sigmas))
    ref = {k: v.detach().contiguous().float() for k, v in ref.items()}
    save_file(ref, os.path.join(out, "reference.safetensors"))
    meta["versions"] = dict(torch=torch.__version__,
                            diffusers=__import__("diffusers").__version__)
    with open(os.path.join(out, "reference.json"), "w") as fh:
        json.dump(meta, fh, indent=1)


def make_sd3_all(root):
    make_sd3(root, "sd3", SD3_TINY, 50)
    make_sd3(root, "sd35", SD35_TINY, 60)
    with open(os.path.join(root, "sd3_full_shapes.json"), "w") as fh:
        json.dump(sd3_full_shapes(), fh, indent=0)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    os.makedirs(root, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    make_tiny(root, "flux_dev", True)
    make_tiny(root, "flux_schnell", False)
    make_encoders(root)
    with open(os.path.join(root, "scheduler.json"), "w") as fh:
        json.dump(scheduler_refs(), fh)
    with open(os.path.join(root, "flux_full_shapes.json"), "w") as fh:
        json.dump(full_shapes(), fh, indent=0)
    with open(os.path.join(root, "encoder_full_shapes.json"), "w") as fh:
        json.dump(encoder_full_shapes(), fh, indent=0)
    make_sd3_all(root)
    print(f"make_reference_flow: wrote {root}")


if __name__ == "__main__":
    main()
