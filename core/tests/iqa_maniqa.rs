//! MANIQA (core/src/scoring/maniqa.rs).
//!
//! Conformance (`#[ignore]`d; scripts/conformance/run.sh runs it): against pyiqa's own
//! architecture code on identical random weights, from $TTPO_REFERENCE/iqa/maniqa.pth (the
//! published checkpoints' layout, read through `Maniqa::load`) and maniqa.safetensors (written
//! by scripts/conformance/iqa_reference_maniqa.py): the normalised crops (resize and crop
//! rule) of every image, pyiqa's own `uniform_crop` positions, and on a few images the ViT
//! features, both stages, the per-patch scores and weights and the score, each within 1e-5
//! of the reference's max abs.
//!
//! The other tests need no reference: they write a tiny MANIQA checkpoint (ViT with 28-pixel
//! patches and 64 channels, small heads) as a PyTorch zip pickle with pyiqa's tensor names.

mod common;

use candle_core::{Device, Tensor};
use common::compare::check;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use ttpo::scoring::maniqa::{self, CropRule, Maniqa};
use ttpo::{Error, Metric};

/// A named f32 tensor: name, shape, values.
type Named = (String, Vec<usize>, Vec<f32>);

// ---------- a minimal PyTorch checkpoint writer (zip, stored, pickle protocol 2) ----------

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A zip archive with uncompressed entries.
fn write_zip(path: &Path, entries: &[(String, Vec<u8>)]) {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let head = |sig: u32, central: bool| {
            let mut h = sig.to_le_bytes().to_vec();
            if central {
                h.extend(20u16.to_le_bytes());
            }
            for v in [20u16, 0, 0, 0, 0x21] {
                h.extend(v.to_le_bytes());
            }
            for v in [crc, data.len() as u32, data.len() as u32] {
                h.extend(v.to_le_bytes());
            }
            h.extend((name.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes());
            h
        };
        out.extend(head(0x0403_4b50, false));
        out.extend(name.as_bytes());
        out.extend(data);
        central.extend(head(0x0201_4b50, true));
        for v in [0u16, 0, 0] {
            central.extend(v.to_le_bytes());
        }
        central.extend(0u32.to_le_bytes());
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, entries.len() as u16, entries.len() as u16] {
        out.extend(v.to_le_bytes());
    }
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    std::fs::write(path, out).unwrap();
}

fn pickle_str(p: &mut Vec<u8>, s: &str) {
    p.push(b'X');
    p.extend((s.len() as u32).to_le_bytes());
    p.extend(s.as_bytes());
}

fn pickle_ints(p: &mut Vec<u8>, v: &[usize]) {
    p.push(b'(');
    for &x in v {
        p.push(b'J');
        p.extend((x as i32).to_le_bytes());
    }
    p.push(b't');
}

/// `torch.save(state_dict)` of f32 tensors, as torch lays it out (archive/data.pkl +
/// archive/data/<key>).
fn write_pth(path: &Path, tensors: &[Named]) {
    let mut p = vec![0x80, 2, b'}', b'('];
    let mut entries = Vec::new();
    for (i, (name, shape, data)) in tensors.iter().enumerate() {
        pickle_str(&mut p, name);
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.push(b'(');
        pickle_str(&mut p, "storage");
        p.extend(b"ctorch\nFloatStorage\n");
        pickle_str(&mut p, &i.to_string());
        pickle_str(&mut p, "cpu");
        p.push(b'J');
        p.extend((data.len() as i32).to_le_bytes());
        p.extend(b"tQK\x00");
        pickle_ints(&mut p, shape);
        let strides: Vec<usize> = (0..shape.len())
            .map(|d| shape[d + 1..].iter().product())
            .collect();
        pickle_ints(&mut p, &strides);
        p.push(0x89);
        p.extend(b"ccollections\nOrderedDict\n)R");
        p.extend(b"tR");
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        entries.push((format!("archive/data/{i}"), bytes));
    }
    p.extend(b"u.");
    entries.insert(0, ("archive/data.pkl".into(), p));
    write_zip(path, &entries);
}

/// Tiny MANIQA tensors under pyiqa's names: ViT width 64 (one head), 28-pixel patches (an
/// 8x8 token grid), 10 blocks; TAB over 64 tokens; Swin widths 32 / 16, window 4, 2 heads.
fn tiny_tensors() -> Vec<Named> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut t = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                offset + scale * ((seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
            })
            .collect();
        t.push((name, shape, data));
    };
    let linear =
        |add: &mut dyn FnMut(String, Vec<usize>, f32, f32), n: &str, o: usize, i: usize| {
            add(
                format!("{n}.weight"),
                vec![o, i],
                (3.0 / i as f32).sqrt(),
                0.0,
            );
            add(format!("{n}.bias"), vec![o], 0.05, 0.0);
        };
    let norm = |add: &mut dyn FnMut(String, Vec<usize>, f32, f32), n: &str, d: usize| {
        add(format!("{n}.weight"), vec![d], 0.1, 1.0);
        add(format!("{n}.bias"), vec![d], 0.05, 0.0);
    };
    let (dim, grid, patch) = (64, 8, 28);
    add(
        "vit.patch_embed.proj.weight".into(),
        vec![dim, 3, patch, patch],
        0.02,
        0.0,
    );
    add("vit.patch_embed.proj.bias".into(), vec![dim], 0.05, 0.0);
    add("vit.cls_token".into(), vec![1, 1, dim], 0.2, 0.0);
    add(
        "vit.pos_embed".into(),
        vec![1, grid * grid + 1, dim],
        0.2,
        0.0,
    );
    for b in 0..10 {
        let n = format!("vit.blocks.{b}");
        norm(&mut add, &format!("{n}.norm1"), dim);
        linear(&mut add, &format!("{n}.attn.qkv"), 3 * dim, dim);
        linear(&mut add, &format!("{n}.attn.proj"), dim, dim);
        norm(&mut add, &format!("{n}.norm2"), dim);
        linear(&mut add, &format!("{n}.mlp.fc1"), 2 * dim, dim);
        linear(&mut add, &format!("{n}.mlp.fc2"), dim, 2 * dim);
    }
    let tokens = grid * grid;
    for s in ["tablock1", "tablock2"] {
        for i in 0..2 {
            for q in ["c_q", "c_k", "c_v"] {
                linear(&mut add, &format!("{s}.{i}.{q}"), tokens, tokens);
            }
        }
    }
    let add_conv = |add: &mut dyn FnMut(String, Vec<usize>, f32, f32),
                    n: &str,
                    o: usize,
                    i: usize,
                    k: usize| {
        add(
            format!("{n}.weight"),
            vec![o, i, k, k],
            (1.5 / (i * k * k) as f32).sqrt(),
            0.0,
        );
        add(format!("{n}.bias"), vec![o], 0.05, 0.0);
    };
    add_conv(&mut add, "conv1", 32, 4 * dim, 1);
    add_conv(&mut add, "conv2", 16, 32, 1);
    for (s, d) in [("swintransformer1", 32), ("swintransformer2", 16)] {
        for l in 0..2 {
            let ln = format!("{s}.layers.{l}");
            add_conv(&mut add, &format!("{ln}.conv"), d, d, 3);
            for b in 0..2 {
                let n = format!("{ln}.blocks.{b}");
                norm(&mut add, &format!("{n}.norm1"), d);
                add(
                    format!("{n}.attn.relative_position_bias_table"),
                    vec![49, 2],
                    0.5,
                    0.0,
                );
                linear(&mut add, &format!("{n}.attn.qkv"), 3 * d, d);
                linear(&mut add, &format!("{n}.attn.proj"), d, d);
                norm(&mut add, &format!("{n}.norm2"), d);
                linear(&mut add, &format!("{n}.mlp.fc1"), 24, d);
                linear(&mut add, &format!("{n}.mlp.fc2"), d, 24);
            }
        }
    }
    for h in ["fc_score", "fc_weight"] {
        linear(&mut add, &format!("{h}.0"), 16, 16);
        linear(&mut add, &format!("{h}.3"), 1, 16);
    }
    // Most patches pass fc_score's final ReLU.
    t.iter_mut()
        .filter(|(n, _, _)| n == "fc_score.3.bias")
        .for_each(|(_, _, d)| d[0] += 0.5);
    t
}

fn tiny_checkpoint(tag: &str, edit: impl FnOnce(&mut Vec<Named>)) -> PathBuf {
    let mut t = tiny_tensors();
    edit(&mut t);
    let path = common::temp_dir(tag).join("maniqa.pth");
    write_pth(&path, &t);
    path
}

// ---------- tests that need no reference ----------

#[test]
fn tiny_checkpoint_scores_deterministically() {
    let m = Maniqa::load(&tiny_checkpoint("maniqa-ok", |_| {}), &Device::Cpu).unwrap();
    assert_eq!(m.name(), "maniqa");
    assert!(m.higher_is_better());
    let img = common::textured(300, 260);
    let a = m.score(&img).unwrap();
    let b = m.score(&img).unwrap();
    assert_eq!(a.to_bits(), b.to_bits(), "same image, same score");
    // A weighted mean of ReLU outputs: finite and non-negative, and not a constant.
    assert!(a.is_finite() && a > 0.0, "score {a}");
    let other = m.score(&common::textured(260, 300)).unwrap();
    assert_ne!(a, other, "different images, different scores");
    // The smallest accepted image is upscaled and scored.
    let s = m.score(&common::textured(maniqa::MIN_SIDE, 100)).unwrap();
    assert!(s.is_finite());
}

#[test]
fn missing_or_misshaped_tensor_is_an_error_naming_it() {
    let missing = tiny_checkpoint("maniqa-missing", |t| {
        t.retain(|(n, _, _)| n != "tablock2.1.c_v.bias")
    });
    let e = Maniqa::load(&missing, &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::Weights { .. }), "{e}");
    assert!(e.to_string().contains("tablock2.1.c_v.bias"), "{e}");

    let misshaped = tiny_checkpoint("maniqa-shape", |t| {
        let w = t.iter_mut().find(|(n, _, _)| n == "conv1.weight").unwrap();
        w.1 = vec![32, 255, 1, 1];
        w.2.truncate(32 * 255);
    });
    let e = Maniqa::load(&misshaped, &Device::Cpu).unwrap_err();
    assert!(
        e.to_string().contains("conv1.weight") && e.to_string().contains("255"),
        "{e}"
    );

    let dir = common::temp_dir("maniqa-files");
    let e = Maniqa::load(&dir.join("absent.pth"), &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::MissingFile { .. }), "{e}");
    let junk = dir.join("junk.pth");
    std::fs::write(&junk, b"not a zip file").unwrap();
    let e = Maniqa::load(&junk, &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::Weights { .. }), "{e}");
}

#[test]
fn too_small_image_is_an_error() {
    let m = Maniqa::load(&tiny_checkpoint("maniqa-small", |_| {}), &Device::Cpu).unwrap();
    let e = m
        .score(&common::textured(maniqa::MIN_SIDE - 1, 400))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidImage(_)), "{e}");
    assert!(e.to_string().contains("maniqa"), "{e}");
}

#[test]
fn crop_rules() {
    // 3x3 grid on 384x512 (h x w): both borders and the centre on each axis.
    let g = CropRule::Grid(3).positions(384, 512);
    assert_eq!(g.len(), 9);
    assert_eq!(&g[..4], &[(0, 0), (0, 144), (0, 288), (80, 0)]);
    assert_eq!(g[8], (160, 288));
    assert_eq!(CropRule::Grid(1).positions(384, 512), vec![(80, 144)]);
    // pyiqa's uniform_crop, 20 crops: steps margin / 4, 4 rows of 5 (the bottom row unused).
    let u = CropRule::Uniform(20).positions(384, 512);
    assert_eq!(u.len(), 20);
    assert_eq!(u[0], (0, 0));
    assert_eq!(u[4], (0, 288));
    assert_eq!(u[19], (120, 288));
    assert_eq!(CropRule::Uniform(9).positions(384, 512)[8], (106, 192));
    // pyiqa's upscale: shorter side <= 224 goes to 225.
    assert_eq!(maniqa::working_size(150, 200).0, 225);
    assert_eq!(maniqa::working_size(150, 200).1, 300);
    assert_eq!(maniqa::working_size(225, 400).2, None);
    assert_eq!(maniqa::working_size(224, 300).0, 225);
}

// ---------- conformance against pyiqa ----------

#[test]
#[ignore = "needs $TTPO_REFERENCE/iqa from scripts/conformance/iqa_reference_maniqa.py"]
fn maniqa_matches_pyiqa() {
    let Some(root) = std::env::var_os("TTPO_REFERENCE") else {
        println!("TTPO_REFERENCE is not set: skipping the MANIQA conformance test");
        return;
    };
    let dir = PathBuf::from(root).join("iqa");
    let (ckpt, refs) = (dir.join("maniqa.pth"), dir.join("maniqa.safetensors"));
    assert!(
        ckpt.is_file() && refs.is_file(),
        "missing {} or {} (run scripts/conformance/iqa_reference_maniqa.py)",
        ckpt.display(),
        refs.display()
    );
    let r: HashMap<String, Tensor> = candle_core::safetensors::load(&refs, &Device::Cpu).unwrap();
    let get = |k: &str| {
        r.get(k)
            .unwrap_or_else(|| panic!("reference tensor {k} missing"))
    };
    let t0 = std::time::Instant::now();
    let mut model = Maniqa::load(&ckpt, &Device::Cpu).unwrap();
    println!(
        "conformance maniqa.pth loaded in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let tol = 1e-5;
    let mut fails = Vec::new();
    let mut names: Vec<&str> = r.keys().filter_map(|k| k.strip_suffix(".image")).collect();
    names.sort();
    assert!(
        names.len() >= 10,
        "expected the 5 calibration images, the photos and `small`"
    );
    for name in &names {
        let img = common::image_from_u8(get(&format!("{name}.image")));
        let crops = maniqa::crops(&img, CropRule::default(), &Device::Cpu).unwrap();
        if !check(
            name,
            "crops (resize, normalise, 3x3 grid)",
            &crops,
            get(&format!("{name}.crops")),
            tol,
        ) {
            fails.push(format!("{name} crops"));
        }
        let (h, w, _) = maniqa::working_size(img.height(), img.width());
        let pos: Vec<i32> = CropRule::Uniform(20)
            .positions(h, w)
            .into_iter()
            .flat_map(|(t, l)| [t as i32, l as i32])
            .collect();
        let want = get(&format!("{name}.uniform_pos"))
            .flatten_all()
            .unwrap()
            .to_vec1::<i32>()
            .unwrap();
        println!(
            "conformance {name:8} pyiqa uniform_crop(20) positions {}",
            if pos == want { "equal" } else { "FAIL" }
        );
        if pos != want {
            fails.push(format!("{name} uniform positions {pos:?} vs {want:?}"));
        }
        let Some(score_ref) = r.get(&format!("{name}.score")) else {
            continue;
        };
        let ps_ref = get(&format!("{name}.patch_score"));
        let k = (ps_ref.dim(0).unwrap() as f64).sqrt() as usize;
        model.set_crop_rule(CropRule::Grid(k));
        let t0 = std::time::Instant::now();
        let (mut ps, mut pw) = (Vec::new(), Vec::new());
        let score = model
            .score_with_features(&img, |i, out| {
                if i == 0 {
                    for (what, got, key) in [
                        ("ViT blocks 6-9 (crop 0)", out.vit.squeeze(0)?, "vit"),
                        ("stage 1 (crop 0)", out.stage1.squeeze(0)?, "stage1"),
                        ("stage 2 (crop 0)", out.stage2.squeeze(0)?, "stage2"),
                    ] {
                        if !check(name, what, &got, get(&format!("{name}.{key}")), tol) {
                            fails.push(format!("{name} {what}"));
                        }
                    }
                }
                ps.push(out.patch_score.clone());
                pw.push(out.patch_weight.clone());
                Ok(())
            })
            .unwrap();
        println!(
            "conformance {name:8} whole net, {} crops: {:.1} s",
            k * k,
            t0.elapsed().as_secs_f64()
        );
        for (what, got, key) in [
            ("per-patch scores", &ps, "patch_score"),
            ("per-patch weights", &pw, "patch_weight"),
        ] {
            let got = Tensor::cat(got, 0).unwrap();
            if !check(name, what, &got, get(&format!("{name}.{key}")), tol) {
                fails.push(format!("{name} {what}"));
            }
        }
        let want = score_ref.to_vec1::<f32>().unwrap()[0] as f64;
        let e = (score - want).abs() / want.abs();
        println!("conformance {name:8} score {score:.7} pyiqa {want:.7} rel err {e:.3e}");
        if e > tol {
            fails.push(format!("{name} score {score} vs {want}"));
        }
    }
    assert!(fails.is_empty(), "failed: {fails:#?}");
}
