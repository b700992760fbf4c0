#!/usr/bin/env bash
# Builds the Python package's wheel (python/, maturin) and installs it into
# a virtual environment, made when missing with the pinned tools of
# python/requirements-dev.txt. Usage: python-package.sh VENV PROFILE
# (PROFILE: release, or dev for the test build, which reuses the test
# suite's compiled dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:?usage: python-package.sh VENV PROFILE}"
profile="${2:-release}"
requirements=python/requirements-dev.txt

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.pulsedb-requirements"
if ! cmp -s "$requirements" "$stamp"; then
  echo "installing the Python build and test tools into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi

out="${CARGO_TARGET_DIR:-target}/wheels/$profile"
rm -rf "$out"
"$venv/bin/maturin" build --quiet --manifest-path python/Cargo.toml --profile "$profile" \
  --interpreter "$venv/bin/python" --out "$out" --compatibility linux --auditwheel skip
wheel="$(ls "$out"/pulsedb-*.whl)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
echo "installed $wheel into $venv"
