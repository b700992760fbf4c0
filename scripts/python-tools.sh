#!/usr/bin/env bash
# The Python tools the test suites run, pinned, in a virtual environment
# under ~/.cache (reused between runs): openapi-spec-validator and
# schemathesis (tests/openapi.rs). A no-op when they are installed.
set -euo pipefail
venv="${1:?usage: python-tools.sh VENV_DIR}"
packages=(openapi-spec-validator==0.9.0 schemathesis==4.32.5)

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
missing=()
for p in "${packages[@]}"; do
  name="${p%%==*}" version="${p##*==}"
  have="$("$venv/bin/python" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')"
  [ "$have" = "$version" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing test tools: ${missing[*]}"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
fi
