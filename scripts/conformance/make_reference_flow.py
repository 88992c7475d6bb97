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
  OUT_DIR/flux_pipe/      a complete tiny FLUX.1-dev-style pipeline folder (model_index.json
                          "FluxPipeline"; scheduler/, text_encoder/ CLIPTextModel, tokenizer/
                          CLIPTokenizer padding with eos, text_encoder_2/ T5EncoderModel,
                          tokenizer_2/ T5TokenizerFast, transformer/ with guidance embedding,
                          vae/), loaded back with FluxPipeline / FluxImg2ImgPipeline
                          .from_pretrained, and one FluxImg2ImgPipeline run on input.png
                          (64x96, strength 0.6, 5 steps, guidance 3.5, max_sequence_length 32)
  OUT_DIR/sd3_pipe/       the same for StableDiffusion3Pipeline / StableDiffusion3Img2Img-
                          Pipeline: CLIP-L and CLIP-G (CLIPTextModelWithProjection, widths
                          32 and 40; tokenizer_2 pads with "!"), T5 (width 80), the
                          transformer, VAE and scheduler; CFG 5.0 with negative prompt ""
                          In both runs the img2img pipeline module is patched: its
                          module-level `randn_tensor` returns the saved `noise`, and its
                          `retrieve_latents` uses sample_mode="argmax" (the VAE posterior
                          mean, as TTPO encodes). Every stage is then re-done by hand from the
                          saved tensors (manual_flux / manual_sd3) and must agree.

Each model folder is in the diffusers layout (model_index.json, transformer/, scheduler/)
with f32 safetensors, plus reference.safetensors and reference.json. Kept apart from
make_reference.py so that changing it does not regenerate the SD references (the pipeline
folders import make_reference.py's tiny CLIP tokenizer, so run.sh's flow stamp covers both).
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


# ---------------------------------------------------------------------------------------
# Complete tiny pipelines (issue #15): every component in the diffusers layout, loaded back
# with from_pretrained, and one img2img run each through diffusers' own pipeline with the
# randomness injected. Kept in its own section.
PIPE_H, PIPE_W = 64, 96                 # input image (pixels, non-square)
PIPE_STEPS, PIPE_STRENGTH, PIPE_MAX_SEQ = 5, 0.6, 32
# FLUX: CLIP-L is a plain CLIPTextModel (pooler_output); transformer widths follow the
# encoders (joint_attention_dim = T5 d_model, pooled_projection_dim = CLIP hidden size).
FLUX_CLIP = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=3,
                 num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                 layer_norm_eps=1e-5, eos_token_id=2, pad_token_id=1)
# SD3: CLIP-L and CLIP-G with projection (different widths), a wider T5 so that
# joint_attention_dim = T5 d_model > CLIP-L + CLIP-G widths (the CLIP states get padded).
SD3_CLIP_L = dict(FLUX_CLIP, projection_dim=24)
SD3_CLIP_G = dict(FLUX_CLIP, hidden_size=40, intermediate_size=44, num_attention_heads=5,
                  hidden_act="gelu", projection_dim=28)
SD3_T5 = dict(T5_TINY, d_model=80, d_kv=16, d_ff=96, num_heads=4)
SD3_PIPE_TINY = dict(SD3_TINY, joint_attention_dim=SD3_T5["d_model"],
                     pooled_projection_dim=SD3_CLIP_L["projection_dim"]
                     + SD3_CLIP_G["projection_dim"], sample_size=32, pos_embed_max_size=32)


def pipe_image(out):
    """A 64 x 96 RGB test image: smooth gradients and waves, a few hard edges and seeded
    texture, quantised to 8 bits and saved as input.png (the pipelines are given the PNG)."""
    from PIL import Image
    gen = torch.Generator().manual_seed(SEED + 70)
    y = torch.linspace(0, 1, PIPE_H)[:, None].expand(PIPE_H, PIPE_W)
    x = torch.linspace(0, 1, PIPE_W)[None, :].expand(PIPE_H, PIPE_W)
    r = 0.2 + 0.6 * x + 0.1 * torch.sin(9 * y)
    g = 0.5 + 0.35 * torch.sin(5 * x + 3 * y) * torch.cos(4 * y)
    b = 0.8 - 0.6 * y + 0.15 * ((x * 12).floor() % 2)        # vertical stripes
    img = torch.stack([r, g, b])
    img[:, 20:36, 30:50] = torch.tensor([0.9, 0.15, 0.1])[:, None, None]   # a red block
    img = img + 0.06 * torch.randn(img.shape, generator=gen)
    u8 = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    Image.fromarray(u8.permute(1, 2, 0).numpy(), "RGB").save(os.path.join(out, "input.png"))
    pil = Image.open(os.path.join(out, "input.png")).convert("RGB")
    return pil, (u8.float() / 255)[None]


def clip_tokenizer(pad):
    """The tiny CLIP BPE tokenizer of make_reference.py (slow CLIPTokenizer, max length 77)."""
    import tempfile
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_reference import make_tokenizers
    with tempfile.TemporaryDirectory() as tmp:
        slow, _, n = make_tokenizers(tmp, pad)
        slow.save_pretrained(os.path.join(tmp, "tok"))
        from transformers import CLIPTokenizer
        tok = CLIPTokenizer.from_pretrained(os.path.join(tmp, "tok"))
    assert len(tok) == n
    return tok


def stable_t5_tokenizer(out, sub):
    """t5_tokenizer's vocabulary in a reproducible order: tokenizers' UnigramTrainer gives the
    same pieces on every run, but orders pieces of (nearly) tied scores differently, so ids
    change from run to run. Scores rounded to 1e-6, then sorted by (-score, piece); the
    special tokens keep ids 0..2. Saved to out/sub."""
    import tempfile
    from transformers import T5TokenizerFast
    with tempfile.TemporaryDirectory() as tmp:
        spec = json.loads(t5_tokenizer(tmp).backend_tokenizer.to_str())
        vocab = spec["model"]["vocab"]
        assert [p for p, _ in vocab[:3]] == ["<pad>", "</s>", "<unk>"]
        spec["model"]["vocab"] = vocab[:3] + sorted(
            ([p, round(sc, 6)] for p, sc in vocab[3:]), key=lambda v: (-v[1], v[0]))
        raw = os.path.join(tmp, "raw_tokenizer.json")
        with open(raw, "w") as fh:
            json.dump(spec, fh)
        tok = T5TokenizerFast(tokenizer_file=raw, eos_token="</s>", unk_token="<unk>",
                              pad_token="<pad>", extra_ids=0, model_max_length=512)
    tok.save_pretrained(os.path.join(out, sub))
    return tok


def new_clip(cfg, vocab, seed, gen, projection):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    torch.manual_seed(seed)
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    m = cls(CLIPTextConfig(**cfg, vocab_size=vocab, bos_token_id=vocab - 2))
    perturb_all(m, gen)
    return m.eval()


def new_t5(cfg, vocab, seed, gen):
    from transformers import T5Config, T5EncoderModel
    torch.manual_seed(seed)
    m = T5EncoderModel(T5Config(vocab_size=vocab, **cfg))
    perturb_all(m, gen)
    return m.eval()


def new_vae(cfg, seed, gen):
    torch.manual_seed(seed)
    m = AutoencoderKL(**cfg)
    perturb_all(m, gen)
    return m.eval()


def save_pipe(out, class_name, parts):
    """parts: name -> (library, class, object); writes model_index.json like the Hub's."""
    index = {"_class_name": class_name, "_diffusers_version": "0.35.2"}
    for name, (lib, cls, obj) in parts.items():
        index[name] = [lib, cls]
        if lib == "transformers" and cls.startswith(("CLIPTokenizer", "T5Tokenizer")):
            obj.save_pretrained(os.path.join(out, name))
        else:
            obj.save_pretrained(os.path.join(out, name), safe_serialization=True)
    with open(os.path.join(out, "model_index.json"), "w") as fh:
        json.dump(index, fh, indent=1)


def check_roundtrip(pipe, parts, prompts):
    """The loaded pipeline holds exactly the weights and tokenizers that were written."""
    for name, (_, _, obj) in parts.items():
        got = getattr(pipe, name)
        if isinstance(obj, torch.nn.Module):
            a, b = obj.state_dict(), got.state_dict()
            assert a.keys() == b.keys(), name
            for k in a:
                assert a[k].dtype == b[k].dtype == torch.float32 and torch.equal(a[k], b[k]), \
                    (name, k)
        elif hasattr(obj, "encode"):
            for p in prompts:
                assert obj(p)["input_ids"] == got(p)["input_ids"], (name, p)
        else:
            pub = lambda c: {k: v for k, v in dict(c).items() if not k.startswith("_")}
            assert pub(obj.config) == pub(got.config), name


class Recorder:
    """Wraps the pipeline's pieces to record what diffusers computes, and injects the noise
    and the posterior-mode encoding into the pipeline module."""

    def __init__(self, pipe, module, noise, encoders):
        self.calls, self.ids, self.latents, self.steps = [], {}, {}, []
        self.module, self.saved = module, (module.randn_tensor, module.retrieve_latents)
        orig_retrieve = module.retrieve_latents

        def randn(shape, generator=None, device=None, dtype=None, layout=None):
            assert tuple(shape) == tuple(noise.shape), (shape, noise.shape)
            return noise.clone().to(dtype=dtype)

        def retrieve(enc, generator=None, sample_mode="sample"):
            return orig_retrieve(enc, generator=generator, sample_mode="argmax")

        module.randn_tensor, module.retrieve_latents = randn, retrieve
        pre, scale = pipe.image_processor.preprocess, pipe.scheduler.scale_noise

        def preprocess(*a, **k):
            self.latents["image"] = pre(*a, **k)
            return self.latents["image"]

        def scale_noise(sample, timestep, noise_):
            out = scale(sample, timestep, noise_)
            self.latents.update(image_latents=sample, noise=noise_, noised_latents=out,
                                noise_timestep=timestep)
            return out

        pipe.image_processor.preprocess, pipe.scheduler.scale_noise = preprocess, scale_noise
        self.hooks = [pipe.transformer.register_forward_pre_hook(self.on_transformer,
                                                                 with_kwargs=True)]
        for name in encoders:
            self.hooks += [getattr(pipe, name).register_forward_pre_hook(
                lambda m, a, k, name=name: self.ids.setdefault(name, []).append(
                    (a[0] if a else k["input_ids"]).clone()), with_kwargs=True)]

    def on_transformer(self, module, args, kwargs):
        self.calls.append({k: v.clone() for k, v in kwargs.items()
                           if k in ("timestep", "guidance") and v is not None})

    def on_step(self, pipe, i, t, kw):
        self.steps.append(kw["latents"].clone())
        return {}

    def restore(self):
        self.module.randn_tensor, self.module.retrieve_latents = self.saved
        for h in self.hooks:
            h.remove()


def pipe_meta(pipe, rec, settings, n_left):
    s = pipe.scheduler
    return dict(settings, timesteps_full=f32s(s.timesteps), sigmas_full=f32s(s.sigmas),
                start_index=PIPE_STEPS - n_left, steps_run=n_left,
                timesteps_run=f32s(s.timesteps[PIPE_STEPS - n_left:]),
                transformer_timestep_inputs=[f32s(c["timestep"]) for c in rec.calls],
                transformer_guidance_inputs=[f32s(c["guidance"]) for c in rec.calls
                                             if "guidance" in c],
                vae=dict(scaling_factor=pipe.vae.config.scaling_factor,
                         shift_factor=pipe.vae.config.shift_factor,
                         vae_scale_factor=pipe.vae_scale_factor),
                randomness="module-level randn_tensor of the img2img pipeline module replaced "
                           "by one returning the saved `noise`; retrieve_latents forced to "
                           "sample_mode='argmax' (VAE posterior mode = mean, not a sample)",
                versions=dict(torch=torch.__version__,
                              diffusers=__import__("diffusers").__version__,
                              transformers=__import__("transformers").__version__,
                              tokenizers=__import__("tokenizers").__version__,
                              numpy=np.__version__))


def write_ref(out, ref, meta):
    ref = {k: (v.detach().contiguous() if v.dtype == torch.int64 else
               v.detach().contiguous().float()) for k, v in ref.items()}
    save_file(ref, os.path.join(out, "reference.safetensors"))
    meta["tensors"] = {k: dict(shape=list(v.shape), dtype=str(v.dtype).replace("torch.", ""))
                       for k, v in sorted(ref.items())}
    with open(os.path.join(out, "reference.json"), "w") as fh:
        json.dump(meta, fh, indent=1)


def run_img2img(cls, module, out, parts, encoders, noise, pil, kwargs):
    """Loads `cls` from `out`, checks the round trip, runs it twice with the injected noise
    (output_type 'latent' and 'pt') and returns (pipe, recorder, latents, postprocessed)."""
    pipe = cls.from_pretrained(out)
    pipe.set_progress_bar_config(disable=True)
    check_roundtrip(pipe, parts, [DEFAULT_PROMPT, ""])
    rec = Recorder(pipe, module, noise, encoders)
    try:
        with torch.no_grad():
            lat = pipe(image=pil, prompt=DEFAULT_PROMPT, strength=PIPE_STRENGTH,
                       num_inference_steps=PIPE_STEPS, max_sequence_length=PIPE_MAX_SEQ,
                       height=PIPE_H, width=PIPE_W, output_type="latent",
                       callback_on_step_end=rec.on_step, return_dict=False, **kwargs)[0]
            first = (dict(rec.latents), [dict(c) for c in rec.calls], list(rec.steps))
            img = pipe(image=pil, prompt=DEFAULT_PROMPT, strength=PIPE_STRENGTH,
                       num_inference_steps=PIPE_STEPS, max_sequence_length=PIPE_MAX_SEQ,
                       height=PIPE_H, width=PIPE_W, output_type="pt", return_dict=False,
                       **kwargs)[0]
    finally:
        rec.restore()
    rec.latents, rec.calls, rec.steps = first
    return pipe, rec, lat, img


def close(a, b, what, tol=1e-5):
    err = (a - b).abs().max().item()
    assert err <= tol * max(1.0, b.abs().max().item()), (what, err)
    return err


def manual_flux(pipe, ref, sigmas, mu, guidance):
    """FluxImg2ImgPipeline re-done by hand from the saved tensors: tokenizers, encoders,
    VAE mode, scale_noise, the packed loop. Returns the largest difference per stage."""
    tok, tok_2 = pipe.tokenizer, pipe.tokenizer_2
    ids = torch.tensor([tok(DEFAULT_PROMPT, padding="max_length", max_length=77,
                            truncation=True).input_ids])
    ids_2 = torch.tensor([tok_2(DEFAULT_PROMPT, padding="max_length", max_length=PIPE_MAX_SEQ,
                                truncation=True).input_ids])
    assert torch.equal(ids, ref["clip_ids"]) and torch.equal(ids_2, ref["t5_ids"])
    errs = {}
    errs["pooled_prompt_embeds"] = close(pipe.text_encoder(ids).pooler_output,
                                         ref["pooled_prompt_embeds"], "pooled")
    errs["prompt_embeds"] = close(pipe.text_encoder_2(ids_2)[0], ref["prompt_embeds"], "t5")
    cfg = pipe.vae.config
    x0 = (pipe.vae.encode(ref["image"]).latent_dist.mean - cfg.shift_factor) * cfg.scaling_factor
    errs["image_latents"] = close(x0, ref["image_latents"], "image_latents")
    sched = FlowMatchEulerDiscreteScheduler(**SCHED_DEV)
    sched.set_timesteps(sigmas=sigmas, mu=mu)
    start = PIPE_STEPS - int(PIPE_STEPS * PIPE_STRENGTH)
    sig = sched.sigmas
    x = sig[start] * ref["noise"] + (1 - sig[start]) * x0
    errs["noised_latents"] = close(x, ref["noised_latents"], "noised")
    _, c, h, w = x.shape
    x = FluxPipeline._pack_latents(x, 1, c, h, w)
    for i in range(start, PIPE_STEPS):
        t = sched.timesteps[i].expand(1) / 1000
        v = pipe.transformer(hidden_states=x, timestep=t, guidance=torch.full([1], guidance),
                             pooled_projections=ref["pooled_prompt_embeds"],
                             encoder_hidden_states=ref["prompt_embeds"], txt_ids=ref["text_ids"],
                             img_ids=ref["img_ids"], return_dict=False)[0]
        x = x + (sig[i + 1] - sig[i]) * v
    x = FluxPipeline._unpack_latents(x, PIPE_H, PIPE_W, pipe.vae_scale_factor)
    errs["final_latents"] = close(x, ref["final_latents"], "final")
    return errs


def manual_sd3(pipe, ref, scale):
    """StableDiffusion3Img2ImgPipeline re-done by hand from the saved tensors."""
    errs, embeds, pooled = {}, {}, {}
    for neg, prompt in (("negative_", ""), ("", DEFAULT_PROMPT)):
        states = []
        for i, (short, tok, enc) in enumerate((("clip_l", pipe.tokenizer, pipe.text_encoder),
                                               ("clip_g", pipe.tokenizer_2,
                                                pipe.text_encoder_2))):
            ids = torch.tensor([tok(prompt, padding="max_length", max_length=77,
                                    truncation=True).input_ids])
            assert torch.equal(ids, ref[f"{neg}{short}_ids"]), (neg, short)
            o = enc(ids, output_hidden_states=True)
            states.append(o.hidden_states[-2])        # penultimate layer, no final norm
            pooled.setdefault(neg, []).append(o.text_embeds)
        ids = torch.tensor([pipe.tokenizer_3(prompt, padding="max_length",
                                             max_length=PIPE_MAX_SEQ,
                                             truncation=True).input_ids])
        assert torch.equal(ids, ref[f"{neg}t5_ids"]), (neg, "t5")
        t5 = pipe.text_encoder_3(ids)[0]
        clip = torch.cat(states, -1)
        clip = torch.cat([clip, torch.zeros(*clip.shape[:2], t5.shape[-1] - clip.shape[-1])], -1)
        embeds[neg] = torch.cat([clip, t5], 1)
        errs[f"{neg}prompt_embeds"] = close(embeds[neg], ref[f"{neg}prompt_embeds"], neg)
        pooled[neg] = torch.cat(pooled[neg], -1)
        errs[f"{neg}pooled_prompt_embeds"] = close(pooled[neg], ref[f"{neg}pooled_prompt_embeds"],
                                                   neg)
    cfg = pipe.vae.config
    x0 = (pipe.vae.encode(ref["image"]).latent_dist.mean - cfg.shift_factor) * cfg.scaling_factor
    errs["image_latents"] = close(x0, ref["image_latents"], "image_latents")
    sched = FlowMatchEulerDiscreteScheduler(**SCHED_SD3)
    sched.set_timesteps(PIPE_STEPS)
    start = PIPE_STEPS - int(PIPE_STEPS * PIPE_STRENGTH)
    sig = sched.sigmas
    x = sig[start] * ref["noise"] + (1 - sig[start]) * x0
    errs["noised_latents"] = close(x, ref["noised_latents"], "noised")
    txt = torch.cat([ref["negative_prompt_embeds"], ref["prompt_embeds"]])
    pool = torch.cat([ref["negative_pooled_prompt_embeds"], ref["pooled_prompt_embeds"]])
    for i in range(start, PIPE_STEPS):
        o = pipe.transformer(hidden_states=torch.cat([x, x]),
                             timestep=sched.timesteps[i].expand(2), encoder_hidden_states=txt,
                             pooled_projections=pool, return_dict=False)[0]
        u, c = o.chunk(2)
        x = x + (sig[i + 1] - sig[i]) * (u + scale * (c - u))
    errs["final_latents"] = close(x, ref["final_latents"], "final")
    return errs


def make_flux_pipe(root, pil, pil_t):
    from transformers import CLIPTokenizer
    import diffusers.pipelines.flux.pipeline_flux_img2img as mod
    out = os.path.join(root, "flux_pipe")
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED + 80)
    tok = clip_tokenizer("<|endoftext|>")          # FLUX's CLIP-L tokenizer pads with eos
    tok_2 = stable_t5_tokenizer(out, "tokenizer_2")
    clip = new_clip(FLUX_CLIP, len(tok), SEED + 81, gen, projection=False)
    t5 = new_t5(T5_TINY, len(tok_2), SEED + 82, gen)
    vae = new_vae(VAE_FLUX, SEED + 83, gen)
    torch.manual_seed(SEED + 84)
    tr = FluxTransformer2DModel(**dict(TINY, joint_attention_dim=T5_TINY["d_model"],
                                       pooled_projection_dim=FLUX_CLIP["hidden_size"]),
                                guidance_embeds=True)
    perturb(tr, gen)
    tr.eval()
    parts = dict(scheduler=("diffusers", "FlowMatchEulerDiscreteScheduler",
                            FlowMatchEulerDiscreteScheduler(**SCHED_DEV)),
                 text_encoder=("transformers", "CLIPTextModel", clip),
                 text_encoder_2=("transformers", "T5EncoderModel", t5),
                 tokenizer=("transformers", "CLIPTokenizer", tok),
                 tokenizer_2=("transformers", "T5TokenizerFast", tok_2),
                 transformer=("diffusers", "FluxTransformer2DModel", tr),
                 vae=("diffusers", "AutoencoderKL", vae))
    save_pipe(out, "FluxPipeline", parts)
    check_roundtrip(FluxPipeline.from_pretrained(out), parts, [DEFAULT_PROMPT, ""])

    f = 2 ** (len(VAE_FLUX["block_out_channels"]) - 1)
    noise = torch.randn(1, 16, PIPE_H // f, PIPE_W // f, generator=gen)
    guidance = 3.5
    pipe, rec, lat, img = run_img2img(FluxImg2ImgPipeline, mod, out, parts,
                                      ["text_encoder", "text_encoder_2"], noise, pil,
                                      dict(guidance_scale=guidance))
    with torch.no_grad():
        final = FluxPipeline._unpack_latents(lat, PIPE_H, PIPE_W, pipe.vae_scale_factor)
        decoded = pipe.vae.decode(final / VAE_FLUX["scaling_factor"]
                                  + VAE_FLUX["shift_factor"]).sample
        pe, pooled, _ = pipe.encode_prompt(DEFAULT_PROMPT, DEFAULT_PROMPT,
                                           max_sequence_length=PIPE_MAX_SEQ)
    L = rec.latents
    assert torch.equal(L["noise"], noise)
    assert torch.allclose(img, (decoded / 2 + 0.5).clamp(0, 1), atol=1e-6)
    assert torch.equal(L["image"], pil_t * 2 - 1)
    ids = {k: torch.stack([v[0][0]]) for k, v in rec.ids.items()}
    assert [len(v) for v in rec.ids.values()] == [2, 2]   # once per run
    unpack = lambda x: FluxPipeline._unpack_latents(x, PIPE_H, PIPE_W, pipe.vae_scale_factor)
    ref = dict(input_image=pil_t, image=L["image"], noise=noise, prompt_embeds=pe,
               pooled_prompt_embeds=pooled, text_ids=torch.zeros(pe.shape[1], 3),
               img_ids=FluxPipeline._prepare_latent_image_ids(
                   1, final.shape[2] // 2, final.shape[3] // 2, "cpu", torch.float32),
               clip_ids=ids["text_encoder"], t5_ids=ids["text_encoder_2"],
               image_latents=L["image_latents"], noised_latents=L["noised_latents"],
               step_latents=torch.stack([unpack(x) for x in rec.steps]),
               final_latents=final, decoded=decoded, image_out=img,
               transformer_timesteps=torch.cat([c["timestep"] for c in rec.calls]),
               guidance=rec.calls[0]["guidance"])
    assert torch.equal(ref["step_latents"][-1], final)
    s = pipe.scheduler.config
    mu = calculate_shift((PIPE_H // f // 2) * (PIPE_W // f // 2), s.base_image_seq_len,
                         s.max_image_seq_len, s.base_shift, s.max_shift)
    with torch.no_grad():
        manual = manual_flux(pipe, ref, np.linspace(1.0, 1 / PIPE_STEPS, PIPE_STEPS), mu,
                             guidance)
    meta = pipe_meta(pipe, rec, dict(
        pipeline="FluxImg2ImgPipeline (folder model_index _class_name FluxPipeline)",
        prompt=DEFAULT_PROMPT, prompt_2="(None: the same prompt)", height=PIPE_H,
        width=PIPE_W, strength=PIPE_STRENGTH, num_inference_steps=PIPE_STEPS,
        guidance_scale=guidance, true_cfg_scale="1.0 (off)",
        max_sequence_length=PIPE_MAX_SEQ, mu=mu,
        image_seq_len=(PIPE_H // f // 2) * (PIPE_W // f // 2),
        custom_sigmas="np.linspace(1, 1/N, N) as FluxImg2ImgPipeline passes them",
        input="input.png (8-bit RGB, = input_image) given as a PIL image",
        decoded="vae.decode(final_latents / scaling_factor + shift_factor).sample, raw "
                "(no clamp); image_out = the pipeline's output_type='pt' = "
                "(decoded / 2 + 0.5).clamp(0, 1)",
        latents_layout="every *_latents tensor is unpacked (1, 16, h, w); the transformer "
                       "sees FluxPipeline._pack_latents of it (2x2 patches, 64 features)",
        transformer_timesteps="the `timestep` argument of each transformer call: "
                              "t.expand(1).to(f32) / 1000 (the transformer multiplies by "
                              "1000 itself); `guidance` = full([1], 3.5) f32"), rec.steps and
        len(rec.calls))
    meta["manual_check"] = dict(max_abs_diff=manual, how="the pipeline re-done by hand "
                                "(manual_flux) from the saved tensors")
    write_ref(out, ref, meta)
    return meta


def make_sd3_pipe(root, pil, pil_t):
    from diffusers import SD3Transformer2DModel, StableDiffusion3Img2ImgPipeline
    from diffusers import StableDiffusion3Pipeline
    import diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3_img2img as mod
    out = os.path.join(root, "sd3_pipe")
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED + 90)
    tok = clip_tokenizer("<|endoftext|>")           # SD3's tokenizer (CLIP-L): pad = eos
    tok_2 = clip_tokenizer("!")                     # SD3's tokenizer_2 (CLIP-G): pad "!"
    tok_3 = stable_t5_tokenizer(out, "tokenizer_3")
    clip_l = new_clip(SD3_CLIP_L, len(tok), SEED + 91, gen, projection=True)
    clip_g = new_clip(SD3_CLIP_G, len(tok_2), SEED + 92, gen, projection=True)
    t5 = new_t5(SD3_T5, len(tok_3), SEED + 93, gen)
    vae = new_vae(VAE_SD3, SEED + 94, gen)
    torch.manual_seed(SEED + 95)
    tr = SD3Transformer2DModel(**SD3_PIPE_TINY)
    perturb(tr, gen)
    tr.eval()
    parts = dict(scheduler=("diffusers", "FlowMatchEulerDiscreteScheduler",
                            FlowMatchEulerDiscreteScheduler(**SCHED_SD3)),
                 text_encoder=("transformers", "CLIPTextModelWithProjection", clip_l),
                 text_encoder_2=("transformers", "CLIPTextModelWithProjection", clip_g),
                 text_encoder_3=("transformers", "T5EncoderModel", t5),
                 tokenizer=("transformers", "CLIPTokenizer", tok),
                 tokenizer_2=("transformers", "CLIPTokenizer", tok_2),
                 tokenizer_3=("transformers", "T5TokenizerFast", tok_3),
                 transformer=("diffusers", "SD3Transformer2DModel", tr),
                 vae=("diffusers", "AutoencoderKL", vae))
    save_pipe(out, "StableDiffusion3Pipeline", parts)
    check_roundtrip(StableDiffusion3Pipeline.from_pretrained(out), parts,
                    [DEFAULT_PROMPT, ""])

    f = 2 ** (len(VAE_SD3["block_out_channels"]) - 1)
    noise = torch.randn(1, 16, PIPE_H // f, PIPE_W // f, generator=gen)
    scale = 5.0
    encs = ["text_encoder", "text_encoder_2", "text_encoder_3"]
    pipe, rec, lat, img = run_img2img(StableDiffusion3Img2ImgPipeline, mod, out, parts, encs,
                                      noise, pil, dict(guidance_scale=scale,
                                                       negative_prompt=""))
    with torch.no_grad():
        decoded = pipe.vae.decode(lat / VAE_SD3["scaling_factor"]
                                  + VAE_SD3["shift_factor"]).sample
        pe, npe, pooled, npooled = pipe.encode_prompt(
            DEFAULT_PROMPT, None, None, negative_prompt="", do_classifier_free_guidance=True,
            max_sequence_length=PIPE_MAX_SEQ)
    L = rec.latents
    assert torch.equal(L["noise"], noise)
    assert torch.allclose(img, (decoded / 2 + 0.5).clamp(0, 1), atol=1e-6)
    assert torch.equal(L["image"], pil_t * 2 - 1)
    # encode_prompt calls each encoder for the prompt, then for the negative prompt.
    assert [len(rec.ids[e]) for e in encs] == [4, 4, 4]     # 2 per run
    short = dict(text_encoder="clip_l", text_encoder_2="clip_g", text_encoder_3="t5")
    ref = dict(input_image=pil_t, image=L["image"], noise=noise, prompt_embeds=pe,
               pooled_prompt_embeds=pooled, negative_prompt_embeds=npe,
               negative_pooled_prompt_embeds=npooled,
               image_latents=L["image_latents"], noised_latents=L["noised_latents"],
               step_latents=torch.stack(rec.steps), final_latents=lat, decoded=decoded,
               image_out=img,
               transformer_timesteps=torch.stack([c["timestep"] for c in rec.calls]))
    for e in encs:
        ref[f"{short[e]}_ids"] = rec.ids[e][0]
        ref[f"negative_{short[e]}_ids"] = rec.ids[e][1]
    assert torch.equal(ref["step_latents"][-1], lat)
    with torch.no_grad():
        manual = manual_sd3(pipe, ref, scale)
    meta = pipe_meta(pipe, rec, dict(
        pipeline="StableDiffusion3Img2ImgPipeline (folder model_index _class_name "
                 "StableDiffusion3Pipeline)",
        prompt=DEFAULT_PROMPT, prompt_2="(None)", prompt_3="(None)", negative_prompt="",
        height=PIPE_H, width=PIPE_W, strength=PIPE_STRENGTH,
        num_inference_steps=PIPE_STEPS, guidance_scale=scale, clip_skip=None,
        max_sequence_length=PIPE_MAX_SEQ, mu=None,
        input="input.png (8-bit RGB, = input_image) given as a PIL image",
        decoded="vae.decode(final_latents / scaling_factor + shift_factor).sample, raw "
                "(no clamp); image_out = the pipeline's output_type='pt' = "
                "(decoded / 2 + 0.5).clamp(0, 1)",
        text_layout="prompt_embeds = cat([pad(cat([CLIP-L penultimate (77, 32), CLIP-G "
                    "penultimate (77, 40)], -1), to 80 with zeros), T5 last (32, 80)], -2) "
                    "= (1, 109, 80); pooled = cat([CLIP-L text_embeds (24), CLIP-G "
                    "text_embeds (28)], -1). Transformer batch: [negative, positive]",
        transformer_timesteps="the `timestep` argument of each transformer call: the "
                              "scheduler's t (= 1000 sigma, f32) expanded to the CFG batch "
                              "of 2; no division"), len(rec.steps))
    meta["manual_check"] = dict(max_abs_diff=manual, how="the pipeline re-done by hand "
                                "(manual_sd3) from the saved tensors")
    write_ref(out, ref, meta)
    return meta


def make_pipes(root):
    import time
    t0 = time.time()
    os.makedirs(root, exist_ok=True)
    pil, pil_t = pipe_image(root)
    for name in ("flux_pipe", "sd3_pipe"):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        pil.save(os.path.join(root, name, "input.png"))
    os.remove(os.path.join(root, "input.png"))
    for make in (make_flux_pipe, make_sd3_pipe):
        meta = make(root, pil, pil_t)
        print(f"make_reference_flow: {make.__name__}: manual re-run max |diff| "
              f"{meta['manual_check']['max_abs_diff']}")
    print(f"make_reference_flow: flux_pipe + sd3_pipe in {time.time() - t0:.1f} s")


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
    make_pipes(root)
    print(f"make_reference_flow: wrote {root}")


if __name__ == "__main__":
    main()
