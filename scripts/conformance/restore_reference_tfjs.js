// Reference outputs of the esrgan-slim RDN models from TensorFlow.js itself (@tensorflow/tfjs,
// its plain CPU backend in Node).
//
//   node restore_reference_tfjs.js OUT_DIR ASSETS_RESTORE_DIR
//
// Reads the photo crops restore_reference.py wrote (OUT_DIR/crops.safetensors: `<crop>`,
// (1, 3, h, w) f32 in [0, 1]) and, per model, writes OUT_DIR/rdn-x<s>.safetensors with
// `<crop>.input` (the crop) and `<crop>.output` ((1, 3, s*h, s*w) f32): the model run as
// UpscalerJS runs it, on the crop times 255 (its declared input range [0, 255]) with the
// output divided by 255. Loading goes through tf.loadLayersModel, so the graph and the
// weights are read by TF.js' own code, from the files as they ship.
"use strict";
const fs = require("fs");
const path = require("path");
const tf = require("@tensorflow/tfjs");

function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const base = 8 + n;
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    if (t.dtype !== "F32") throw new Error(`${name}: dtype ${t.dtype}`);
    const [a, b] = t.data_offsets;
    const bytes = Buffer.from(buf.subarray(base + a, base + b));
    out[name] = { shape: t.shape, data: new Float32Array(bytes.buffer, bytes.byteOffset, (b - a) / 4) };
  }
  return out;
}

function writeSafetensors(file, tensors) {
  const header = {};
  const parts = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [off, off + bytes.length] };
    parts.push(bytes);
    off += bytes.length;
  }
  let h = Buffer.from(JSON.stringify(header), "utf8");
  const pad = (8 - (h.length % 8)) % 8;
  h = Buffer.concat([h, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, ...parts]));
}

async function loadModel(modelJson) {
  const json = JSON.parse(fs.readFileSync(modelJson, "utf8"));
  const dir = path.dirname(modelJson);
  const weightSpecs = [];
  const shards = [];
  for (const g of json.weightsManifest) {
    weightSpecs.push(...g.weights);
    for (const p of g.paths) shards.push(fs.readFileSync(path.join(dir, p)));
  }
  const all = Buffer.concat(shards);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData })
  );
}

async function main() {
  const [out, restoreDir] = process.argv.slice(2);
  await tf.setBackend("cpu");
  const crops = readSafetensors(path.join(out, "crops.safetensors"));
  for (const s of [2, 3, 4, 8]) {
    const model = await loadModel(path.join(restoreDir, "esrgan-slim", `x${s}`, "model.json"));
    const tensors = {};
    for (const [name, c] of Object.entries(crops)) {
      const [, ch, h, w] = c.shape;
      const nchw = tf.tensor4d(c.data, [1, ch, h, w]);
      const nhwc = nchw.transpose([0, 2, 3, 1]).mul(255);
      const y = model.predict(nhwc).div(255).transpose([0, 3, 1, 2]);
      const data = await y.data();
      if (y.shape[2] !== h * s || y.shape[3] !== w * s) throw new Error(`shape ${y.shape}`);
      tensors[`${name}.input`] = { shape: c.shape, data: c.data };
      tensors[`${name}.output`] = { shape: y.shape, data: Float32Array.from(data) };
      let lo = Infinity, hi = -Infinity;
      for (const v of data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      console.log(`restore_reference_tfjs: rdn-x${s} ${name} [${c.shape}] -> [${y.shape}], range [${lo.toFixed(4)}, ${hi.toFixed(4)}]`);
      tf.dispose([nchw, nhwc, y]);
    }
    writeSafetensors(path.join(out, `rdn-x${s}.safetensors`), tensors);
  }
  console.log(`restore_reference_tfjs: tfjs ${tf.version.tfjs}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
