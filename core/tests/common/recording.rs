//! A `VarBuilder` that records the name and shape of every tensor a model constructor asks
//! for and answers with a broadcast view of one zero: the loader's expected tensor list
//! for a config, without allocating weights (full-size FLUX is 12 B parameters).

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

struct Recorder(Arc<Mutex<BTreeMap<String, Vec<usize>>>>);

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let previous = self
            .0
            .lock()
            .unwrap()
            .insert(name.to_owned(), s.dims().to_vec());
        assert!(previous.is_none(), "tensor {name} requested twice");
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("recording backend: {name} requested without a shape")
    }
    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// Runs `build` on a recording `VarBuilder` (f32, CPU) and returns name → shape.
pub fn expected_tensors<T>(
    build: impl FnOnce(VarBuilder) -> candle_core::Result<T>,
) -> BTreeMap<String, Vec<usize>> {
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let vb = VarBuilder::from_backend(Box::new(Recorder(seen.clone())), DType::F32, Device::Cpu);
    build(vb).expect("model builds from its config");
    let out = seen.lock().unwrap().clone();
    out
}
