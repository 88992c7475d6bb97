#!/usr/bin/env python3
"""Build tiny stand-in shared libraries for the CUDA libraries that PyPI's
Linux x86_64 torch wheel links against, so that a torch installed with
`pip install --no-deps torch==...` imports and runs on the CPU without the
~3 GB of nvidia-* wheels.

How it works: torch's libraries (libtorch_cuda.so, libtorch_python.so, ...)
have DT_NEEDED entries for libcudart.so.12, libcublas.so.12, libcudnn.so.9,
... and an RPATH that includes $ORIGIN/../../nvidia/<pkg>/lib. For every such
library that cannot be found, this script compiles a stub with the same
SONAME, the same symbol-version nodes and every symbol torch imports from it.
Every stub function returns 100 (cudaErrorNoDevice for the CUDA runtime; an
error code for the others), so torch.cuda.is_available() is False and
nothing on the CPU path ever calls them. Stubs go to
site-packages/nvidia/cuda_runtime/lib (on torch's RPATH) with a marker file
site-packages/nvidia/TTPO_CUDA_STUBS.

CUDA is of course unusable with the stubs; for GPU use install the real
nvidia-* packages (setup.sh with TTPO_TORCH_CUDA=1) instead.

Usage: python cuda_stubs.py SITE_PACKAGES_DIR
Needs: readelf (binutils) and gcc.
"""
import os
import re
import subprocess
import sys
import tempfile

# Torch libraries loaded by `import torch` (libcaffe2_nvrtc.so is only
# dlopen'ed lazily for CUDA JIT and is skipped).
TORCH_LIBS = [
    "libtorch_global_deps.so",
    "libc10_cuda.so",
    "libtorch_cuda.so",
    "libtorch_cuda_linalg.so",
    "libtorch_nvshmem.so",
    "libtorch_python.so",
    "libtorch.so",
    "libtorch_cpu.so",
    "libc10.so",
    "libshm.so",
]

# unversioned symbol prefix -> stub library it goes to
PREFIX_HOME = [
    ("nccl", "libnccl.so.2"),
    ("cusparseLt", "libcusparseLt.so.0"),
    ("cuFile", "libcufile.so.0"),
    ("nvshmem", "libnvshmem_host.so.3"),
    ("cudnn", "libcudnn.so.9"),
    ("cublasLt", "libcublasLt.so.12"),
    ("cublas", "libcublas.so.12"),
    ("cufft", "libcufft.so.11"),
    ("curand", "libcurand.so.10"),
    ("cusolver", "libcusolver.so.11"),
    ("cusparse", "libcusparse.so.12"),
]


def readelf(args, path):
    return subprocess.run(["readelf", "-W"] + args + [path], check=True,
                          capture_output=True, text=True).stdout


def needed(path):
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf(["-d"], path))


def system_has(soname, cache=[]):
    if not cache:
        cache.append(subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout)
    return re.search(r"^\s+" + re.escape(soname) + r"\s", cache[0], re.M) is not None


def dynsyms(path):
    """(undefined, defined): undefined = list of (name, version or None, type)."""
    und, defd = [], set()
    for line in readelf(["--dyn-syms"], path).splitlines():
        parts = line.split()
        if len(parts) < 8 or not parts[0].endswith(":"):
            continue
        typ, bind, ndx, name = parts[3], parts[4], parts[6], parts[7]
        if bind == "LOCAL" or not name:
            continue
        ver = None
        if "@" in name:
            name, _, ver = name.partition("@")
            ver = ver.lstrip("@")
        if ndx == "UND":
            if bind != "WEAK":
                und.append((name, ver, typ))
        else:
            defd.add(name)
    return und, defd


def verneed(path):
    """version name -> file (from .gnu.version_r)."""
    out, cur = {}, None
    for line in readelf(["-V"], path).splitlines():
        m = re.search(r"File: (\S+)", line)
        if m:
            cur = m.group(1)
            continue
        m = re.search(r"Name: (\S+)\s+Flags", line)
        if m and cur:
            out[m.group(1)] = cur
    return out


def main():
    site = os.path.abspath(sys.argv[1])
    tlib = os.path.join(site, "torch", "lib")
    libs = [os.path.join(tlib, f) for f in TORCH_LIBS if os.path.exists(os.path.join(tlib, f))]
    present = set(os.listdir(tlib))
    missing = set()
    for p in libs:
        for n in needed(p):
            if n not in present and not system_has(n):
                missing.add(n)
    outdir = os.path.join(site, "nvidia", "cuda_runtime", "lib")
    if not missing:
        print("cuda_stubs: nothing missing, no stubs needed")
        return
    # symbols that torch's own libraries or system libraries provide
    defined = set()
    sysdefs = set()
    for p in libs:
        defined |= dynsyms(p)[1]
    for so in ["libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libpthread.so.0",
               "libdl.so.2", "librt.so.1", "ld-linux-x86-64.so.2"]:
        m = re.search(r"\s" + re.escape(so) + r" \([^)]*x86-64[^)]*\) => (\S+)",
                      subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout)
        if m:
            sysdefs |= dynsyms(m.group(1))[1]
    gomp = os.path.join(tlib, "libgomp.so.1")
    if os.path.exists(gomp):
        sysdefs |= dynsyms(gomp)[1]
    per_lib = {m: {} for m in missing}        # soname -> {symbol: type}
    versions = {m: set() for m in missing}    # soname -> version names
    for p in libs:
        vmap = verneed(p)
        und, _ = dynsyms(p)
        for name, ver, typ in und:
            if ver is not None:
                f = vmap.get(ver)
                if f in missing:
                    per_lib[f][name] = (typ, ver)
                    versions[f].add(ver)
            elif name not in defined and name not in sysdefs:
                home = None
                for pre, so in PREFIX_HOME:
                    if name.startswith(pre) and so in missing:
                        home = so
                        break
                if home is None:
                    home = "libcudart.so.12" if "libcudart.so.12" in missing else sorted(missing)[0]
                per_lib[home].setdefault(name, (typ, None))
    os.makedirs(outdir, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        for so in sorted(missing):
            src = ["/* generated by TTPO scripts/conformance/cuda_stubs.py */",
                   "static const char ttpo_msg[] = \"CUDA unavailable (TTPO CPU stub library)\";"]
            vs_nodes = {v: [] for v in versions[so]}
            unver = []
            for name, (typ, ver) in sorted(per_lib[so].items()):
                if typ == "OBJECT":
                    src.append(f"char {name}[256];")
                elif re.search(r"(Error|Status)(String|Name)$", name):
                    src.append(f"const char *{name}(void) {{ return ttpo_msg; }}")
                else:
                    src.append(f"long {name}(void) {{ return 100; }}")
                (vs_nodes[ver] if ver else unver).append(name)
            cpath = os.path.join(td, so + ".c")
            with open(cpath, "w") as fh:
                fh.write("\n".join(src) + "\n")
            vpath = os.path.join(td, so + ".map")
            with open(vpath, "w") as fh:
                nodes = sorted(vs_nodes) or [so]
                for i, v in enumerate(nodes):
                    syms = vs_nodes.get(v, [])
                    if i == 0:
                        syms = syms + unver
                    body = "".join(f"  {s};\n" for s in syms)
                    local = "  local: *;\n" if i == 0 else ""
                    fh.write(f"{v} {{\n global:\n{body}{local}}};\n" if syms else
                             f"{v} {{\n{local}}};\n")
            subprocess.run(["gcc", "-shared", "-fPIC", "-O0", "-w", "-o", os.path.join(outdir, so),
                            f"-Wl,-soname,{so}", f"-Wl,--version-script,{vpath}", cpath], check=True)
            print(f"cuda_stubs: {so}: {len(per_lib[so])} symbols, versions {sorted(versions[so])}")
    with open(os.path.join(site, "nvidia", "TTPO_CUDA_STUBS"), "w") as fh:
        fh.write("CPU-only stand-ins for CUDA libraries; see scripts/conformance/cuda_stubs.py\n"
                 + "\n".join(sorted(missing)) + "\n")


if __name__ == "__main__":
    main()
