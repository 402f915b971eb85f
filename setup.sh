#!/usr/bin/env bash
# Set up mrcnn + mrcnn-viewer on a fresh Debian/Ubuntu machine with Python >= 3.10:
#   1. Qt's system libraries (xcb platform plugin, EGL/GL, fonts) via apt when missing,
#   2. a virtual environment in .venv with the package and its test tools.
# Usage: ./setup.sh            (CPU)      ./setup.sh --gpu   (adds tensorflow[and-cuda])
set -euo pipefail
cd "$(dirname "$0")"

QT_DEBS="libegl1 libgl1 libfontconfig1 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0
libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0
libxcb-image0 libxcb-xkb1 libglib2.0-0"

missing=""
if command -v dpkg-query >/dev/null; then
  for pkg in $QT_DEBS; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
  done
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then apt_get="apt-get"; elif command -v sudo >/dev/null; then apt_get="sudo apt-get"; fi
  if [ -n "${apt_get:-}" ]; then
    echo "setup: installing Qt system libraries:$missing"
    $apt_get update -qq && DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq $missing >/dev/null \
      || echo "setup: warning: could not install$missing; the viewer's window may not open (offscreen tests still run)" >&2
  else
    echo "setup: warning: Qt needs these Debian packages, install them as root:$missing" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 is required"'
[ -d .venv ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras="test"
[ "${1:-}" = "--gpu" ] && extras="test,gpu"
.venv/bin/python -m pip install -q -e ".[$extras]"
echo "setup: done. Launch the viewer with: .venv/bin/mrcnn-viewer"
