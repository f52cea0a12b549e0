"""Build the CUDA sources of csrc/cuda as a host library with the emulator (emu.h) and load
it with ctypes.

Each .cu file of UNITS is copied with its kernel launches rewritten
(``k<T><<<grid, block, smem, stream>>>(args)`` -> ``::emu::launch("k<T>", grid, block,
smem, stream)(k<T>, args)``), compiled by g++ as C++20 with emu.h force-included, and
linked with emu.cpp and the extern "C" shims into one shared library. The library is
cached under a directory keyed by a hash of every input (sources, headers, emulator,
flags, compiler version), so only the first test run compiles.

To emulate a new kernel file: write a shim in shims/ (extern "C" functions returning
``emu::guard([&] { ... })``, see shims/layer_update.cpp) and add one line to UNITS:
``("csrc/cuda/new_kernel.cu", "shims/new_kernel.cpp"),``. Then ``load()`` exposes its functions.

Environment: EBMFAST_EMU_CACHE (cache directory, default <tmp>/ebmfast-cuda-emu),
CXX (compiler, default g++).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# (CUDA source relative to the repository root, its shim relative to this directory or
# None when the source defines its extern "C" entry points itself).
# device_query.cu is left out: it asks the driver about real devices.
UNITS = [
    ("csrc/cuda/layer_update.cu", "shims/layer_update.cpp"),
    ("csrc/cuda/ising_chains.cu", "shims/ising_chains.cpp"),
    ("csrc/cuda/hopfield_recall.cu", "shims/hopfield_recall.cpp"),
    ("csrc/cuda/mcmc_chains.cu", "shims/mcmc_chains.cpp"),
    ("csrc/cuda/rbm.cu", "shims/rbm.cpp"),
    ("csrc/cuda/summarize.cu", "shims/summarize.cpp"),
    ("tests/cuda_emu/selftest.cu", None),  # the emulator's own checks (entry points inside)
]

# Every file whose change must rebuild the library (besides UNITS).
DEPENDS = ["csrc/common", "csrc/cuda", "python/ebmfast/_cuda"]

CXXFLAGS = ["-std=c++20", "-O1", "-g", "-fPIC", "-pthread", "-ffp-contract=off",
            "-fno-fast-math", "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-function"]
# The "ASan" build: AddressSanitizer + UndefinedBehaviorSanitizer (misaligned float4
# loads, signed overflow, bad shifts), any report fatal.
ASAN_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
              "-fno-omit-frame-pointer"]


class EmuUnavailable(RuntimeError):
    """No usable C++20 compiler (g++ with <barrier>/<source_location>/atomic_ref)."""


# --------------------------------------------------------------------------- rewriting

_LAUNCH = re.compile(r"<<<")


def _kernel_start(src: str, end: int) -> int:
    """Index where the kernel expression ending at `end` (exclusive, just before <<<)
    starts: an identifier (with ::) optionally followed by balanced template arguments."""
    i = end
    while i > 0 and src[i - 1].isspace():
        i -= 1
    if i > 0 and src[i - 1] == ">":  # template arguments: walk back to the matching <
        depth = 0
        while i > 0:
            i -= 1
            c = src[i]
            if c == ">":
                depth += 1
            elif c == "<":
                depth -= 1
                if depth == 0:
                    break
            elif c in ";{}":
                raise ValueError("unbalanced template arguments before <<<")
        while i > 0 and src[i - 1].isspace():
            i -= 1
    j = i
    while j > 0 and (src[j - 1].isalnum() or src[j - 1] in "_:"):
        j -= 1
    if j == i:
        raise ValueError("no kernel name before <<<")
    return j


def _balanced(src: str, start: int, open_: str, close: str) -> int:
    """Index just past the `close` matching src[start] == open_ (ignores strings/comments,
    which launch argument lists of ours do not contain)."""
    assert src[start] == open_
    depth = 0
    for k in range(start, len(src)):
        c = src[k]
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return k + 1
    raise ValueError(f"unbalanced {open_}{close}")


def rewrite_launches(src: str) -> tuple[str, int]:
    """Rewrite every `kernel<<<cfg>>>(args)` of a CUDA source; returns (text, count). Line
    numbers are kept (the newlines of a rewritten launch follow it)."""
    out, pos, count = [], 0, 0
    while True:
        m = _LAUNCH.search(src, pos)
        if m is None:
            out.append(src[pos:])
            return "".join(out), count
        k0 = _kernel_start(src, m.start())
        kernel = src[k0:m.start()].strip()
        cfg_end = src.index(">>>", m.end())
        cfg = src[m.end():cfg_end]
        p = cfg_end + 3
        while src[p].isspace():
            p += 1
        if src[p] != "(":
            raise ValueError(f"launch of {kernel} without an argument list")
        a_end = _balanced(src, p, "(", ")")
        args = src[p + 1:a_end - 1]
        original = src[k0:a_end]
        name = re.sub(r"\s+", " ", kernel)
        call = f'::emu::launch("{name}", {cfg.strip()})({kernel}'
        call += f", {args.strip()})" if args.strip() else ")"
        call = re.sub(r"\s*\n\s*", " ", call) + "\n" * original.count("\n")
        out.append(src[pos:k0])
        out.append(call)
        pos = a_end
        count += 1


# --------------------------------------------------------------------------- building

def _cxx() -> str:
    return os.environ.get("CXX", "g++")


def _compiler_id(cxx: str) -> str:
    try:
        r = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmuUnavailable(f"no C++ compiler ({cxx}): {exc}") from None
    if r.returncode != 0:
        raise EmuUnavailable(f"{cxx} --version failed")
    return r.stdout.splitlines()[0] if r.stdout else cxx


def _inputs(units) -> list[Path]:
    files = {HERE / "emu.h", HERE / "emu.cpp", HERE / "cuda_runtime.h", HERE / "mma.h",
             HERE / "build.py", HERE / "shims" / "shim.h"}
    for cu, shim in units:
        files.add(ROOT / cu)
        if shim:
            files.add(HERE / shim)
    for d in DEPENDS:
        files.update(p for p in (ROOT / d).rglob("*") if p.is_file())
    return sorted(p for p in files if p.exists())


def _key(units, flags, cxx_id) -> str:
    h = hashlib.sha256()
    h.update(repr((units, flags, cxx_id)).encode())
    for p in _inputs(units):
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:20]


def cache_dir() -> Path:
    return Path(os.environ.get("EBMFAST_EMU_CACHE", Path(tempfile.gettempdir()) / "ebmfast-cuda-emu"))


def _check_compiler(cxx: str, work: Path) -> None:
    probe = work / "probe.cpp"
    probe.write_text("#include <barrier>\n#include <source_location>\n#include <atomic>\n"
                     "int main() { float f = 0; std::atomic_ref<float>(f).fetch_add(1.0f);\n"
                     "  std::barrier b(1); b.arrive_and_wait();\n"
                     "  return std::source_location::current().line() > 0 ? 0 : 1; }\n")
    r = subprocess.run([cxx, "-std=c++20", "-pthread", "-fsyntax-only", str(probe)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise EmuUnavailable(f"{cxx} lacks C++20 (<barrier>, <source_location>, atomic_ref): "
                             + r.stderr.strip()[-500:])


def build(asan: bool = False, units=None, jobs: int = 2, verbose: bool = False) -> Path:
    """Compile (or find in the cache) the emulated library; returns its path."""
    units = list(UNITS if units is None else units)
    cxx = _cxx()
    flags = CXXFLAGS + (ASAN_FLAGS if asan else [])
    key = _key(units, flags, _compiler_id(cxx))
    out_dir = cache_dir() / key
    lib = out_dir / "libebm_cuda_emu.so"
    if lib.exists():
        return lib
    cache_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=cache_dir()))
    try:
        _check_compiler(cxx, work)
        inc = ["-include", str(HERE / "emu.h"), "-I", str(HERE), "-I", str(ROOT / "csrc")]
        jobs_list = []
        for i, (cu, shim) in enumerate(units):
            src = (ROOT / cu).read_text()
            text, n = rewrite_launches(src)
            if n == 0 and "<<<" in src:
                raise ValueError(f"{cu}: launches not rewritten")
            copy = work / f"u{i}_{Path(cu).stem}.cpp"
            copy.write_text(f'#line 1 "{cu}"\n' + text)
            # -iquote the source's own directory: its relative #includes still resolve.
            jobs_list.append([cxx, *flags, "-x", "c++", *inc, "-iquote", str((ROOT / cu).parent),
                              "-c", str(copy), "-o", str(copy.with_suffix(".o"))])
            if shim:
                jobs_list.append([cxx, *flags, *inc, "-c", str(HERE / shim),
                                  "-o", str(work / f"s{i}_{Path(shim).stem}.o")])
        jobs_list.append([cxx, *flags, *inc, "-c", str(HERE / "emu.cpp"), "-o", str(work / "emu.o")])

        def run(cmd):
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
            if verbose or r.returncode != 0:
                print(" ".join(cmd), r.stderr, sep="\n")
            if r.returncode != 0:
                raise RuntimeError(f"emulated build failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
            list(ex.map(run, jobs_list))
        objs = sorted(str(p) for p in work.glob("*.o"))
        run([cxx, *flags, "-shared", "-o", str(work / lib.name), *objs])
        out_dir.mkdir(parents=True, exist_ok=True)
        os.replace(work / lib.name, lib)  # atomic: concurrent builders agree on the result
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune(keep=8)
    return lib


def _prune(keep: int) -> None:
    """Drop all but the `keep` most recent cached builds (each source edit adds one)."""
    try:
        dirs = sorted((p for p in cache_dir().iterdir() if p.is_dir() and "-" not in p.name),
                      key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for p in dirs[keep:]:
        shutil.rmtree(p, ignore_errors=True)


def load(asan: bool = False) -> ctypes.CDLL:
    """Build if needed and load the emulated library (an ASan build must be loaded in a
    process started with libasan preloaded, see asan_env)."""
    if not (ROOT / "csrc" / "cuda").is_dir():
        # The tests run from a copy outside the source tree (the wheel stage of CI tests
        # the installed package): there are no CUDA sources to emulate here.
        raise EmuUnavailable(f"no CUDA sources next to the tests ({ROOT / 'csrc'} is missing)")
    return ctypes.CDLL(str(build(asan=asan)))


def asan_env() -> dict:
    """Environment for a subprocess that loads the sanitizer build: libasan and libubsan
    preloaded (CPython is not instrumented), leak checking off (the interpreter leaks by
    design), every report fatal."""
    paths = []
    for rt in ("libasan.so", "libubsan.so"):
        r = subprocess.run([_cxx(), f"-print-file-name={rt}"], capture_output=True, text=True)
        path = r.stdout.strip()
        if r.returncode != 0 or not os.path.isabs(path) or not os.path.exists(path):
            raise EmuUnavailable(f"no {rt} for the compiler")
        paths.append(path)
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(paths)
    env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=23"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    return env


if __name__ == "__main__":  # python tests/cuda_emu/build.py [--asan]: build and print the path
    import sys
    print(build(asan="--asan" in sys.argv, verbose="-v" in sys.argv))
