#!/usr/bin/env bash
# CI stage: build a copy of ebmfast with AddressSanitizer + UndefinedBehaviorSanitizer
# on the CPU sources (EBMFAST_SANITIZE; CUDA off: device code is never instrumented)
# into its own venv (build/sanitize/venv), so the normal install stays as it is, and run
# the test suite under it. The venv sees the calling environment's packages (pytest,
# hypothesis, scipy, ...) through a .pth file placed after its own site-packages, so the
# sanitized ebmfast shadows the normal one and nothing is downloaded twice.
#
# CPython is not instrumented, so the sanitizer runtimes (GCC's: the build uses the default
# g++) are preloaded. detect_leaks=0:
# the interpreter keeps objects alive at exit by design, LeakSanitizer would report every
# interned string. Any ASan or UBSan report aborts the test process (nonzero exit).
# Suppressions: none are needed. libgomp (uninstrumented) raised no reports here; ASan
# does not look for races, so OpenMP's lock-free handoffs are not flagged. Should a
# third-party report ever need silencing, add .ci/asan.supp (one line per report, with
# the reason) and pass it as ASAN_OPTIONS=suppressions=.ci/asan.supp.
#
# Usage: bash .ci/sanitize.sh [pytest args...]   (default: the whole suite, ~3 min)
# Env:   EBMFAST_SANITIZE (default address,undefined), PYTHON (default python3),
#        EBMFAST_SANITIZE_SKIP_BUILD=1 reuses the venv built last time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SAN=${EBMFAST_SANITIZE:-address,undefined}
VENV=$PWD/build/sanitize/venv
VPY=$VENV/bin/python

# CUDA off: nothing of it would be instrumented, and the build is quicker. Exported, so
# tests/test_build.py does not expect a CUDA backend in this copy.
export EBMFAST_CUDA=OFF

if [[ "${EBMFAST_SANITIZE_SKIP_BUILD:-0}" != 1 ]]; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  # RelWithDebInfo: -g for readable reports (the CMake option also turns off pybind11's
  # strip and LTO). Its own build dir, so the normal build is kept.
  "$VPY" -m pip install -q --no-deps . \
    -Ccmake.define.EBMFAST_SANITIZE="$SAN" -Ccmake.build-type=RelWithDebInfo \
    -Cbuild-dir=build/sanitize/cmake
  # After the install (so pip's isolated build never sees them): the calling
  # environment's site directories, searched after the venv's own.
  "$PY" -c 'import os, sys
print("\n".join(p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages") and os.path.isdir(p)))' \
    > "$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_ebmfast_outer_env.pth"
fi

preload=()
[[ "$SAN" == *address* ]] && preload+=("$(gcc -print-file-name=libasan.so)")
[[ "$SAN" == *undefined* ]] && preload+=("$(gcc -print-file-name=libubsan.so)")
for lib in "${preload[@]}"; do
  [[ -f "$lib" ]] || { echo "sanitize.sh: sanitizer runtime $lib not found" >&2; exit 1; }
done
export LD_PRELOAD="${preload[*]}"
# allocator_may_return_null=1: tests ask for terabytes on purpose and expect MemoryError;
# ASan would otherwise abort on any request above its 1 TiB limit.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:print_summary=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

# The tests must import the instrumented module of this venv, not the normal install.
"$VPY" - "$VENV" <<'PYEOF'
import os, sys
import ebmfast._core as core
venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(core.__file__)
assert where.startswith(venv + os.sep), f"imported {where}, not the sanitized copy in {venv}"
with open(where, "rb") as f:
    data = f.read()
assert b"__asan_init" in data or b"__ubsan_handle" in data, f"{where} is not instrumented"
print("sanitize.sh: testing", where)
PYEOF

# Tests that cannot hold under ASan, whatever the code does (a deselect that matches no
# test is ignored):
deselect=(
  # the probe runs under RLIMIT_AS of a few GiB; ASan reserves a ~20 TiB shadow mapping,
  # so that interpreter dies with MemoryError before it imports anything
  tests/test_hostile_input.py::test_huge_sizes_fail_fast
  tests/test_hostile_input.py::test_kernel_probes_do_not_crash
  # ASan keeps freed blocks in quarantine (256 MiB) and pads every block: RSS grows
  tests/test_memory.py::test_no_resident_growth_over_repeated_calls
  # a wall-clock speedup assertion; instrumented code on two shared cores shows none
  tests/test_threads.py::test_two_threads_sample_concurrently
)
# --capture=sys: a sanitizer report goes to fd 2 and then aborts, which fd capture would
# swallow.
"$VPY" -m pytest -q -p no:cacheprovider --capture=sys "${deselect[@]/#/--deselect=}" "$@"
