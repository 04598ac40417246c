#!/usr/bin/env bash
# Create .venv at the repository root (if missing) and install livesound with its test tools into it.
# Re-running is cheap: the install is skipped while pyproject.toml and constraints.txt are unchanged.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    echo "livesound setup: creating .venv with $($py --version)"
    "$py" -m venv .venv
fi

stamp=.venv/.livesound-installed
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "livesound setup: installing dependencies (first run takes a few minutes)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
    echo "$want" > "$stamp"
fi

# The GPU runtime where there is an NVIDIA GPU (LIVESOUND_GPU=1 or 0 overrides the detection). onnxruntime and
# onnxruntime-gpu are one module in two wheels: the CPU one goes (an install above may have brought it back),
# then the GPU one is installed whole again, since removing the other deleted files they share.
gpu="${LIVESOUND_GPU:-}"
if [ -z "$gpu" ]; then
    gpu=0
    command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q "^GPU" && gpu=1
fi
has() { .venv/bin/python -m pip show "$1" >/dev/null 2>&1; }
if [ "$gpu" = 1 ] && { has onnxruntime || ! has onnxruntime-gpu; }; then
    echo "livesound setup: NVIDIA GPU found; installing onnxruntime-gpu (CUDA and TensorRT execution providers)"
    .venv/bin/python -m pip uninstall --quiet -y onnxruntime
    .venv/bin/python -m pip install --quiet --force-reinstall --no-deps -c constraints.txt onnxruntime-gpu
    echo "livesound setup: for livesound's own TensorRT engines also: .venv/bin/pip install 'tensorrt>=10,<11'"
elif [ "$gpu" = 0 ] && has onnxruntime-gpu; then
    echo "livesound setup: no NVIDIA GPU; going back to the CPU onnxruntime"
    .venv/bin/python -m pip uninstall --quiet -y onnxruntime-gpu
    .venv/bin/python -m pip install --quiet --force-reinstall --no-deps -c constraints.txt onnxruntime
fi

# System libraries from Debian/Ubuntu packages: installed when running as root, else named.
need_deb() {  # need_deb LIBRARY PURPOSE PACKAGE...
    local lib="$1" purpose="$2"; shift 2
    ldconfig -p 2>/dev/null | grep -q "$lib" && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "livesound setup: installing $* for $purpose"
        (apt-get install -y -qq "$@" >/dev/null 2>&1 ||
         (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$@" >/dev/null 2>&1)) ||
            echo "livesound setup: could not install $*; $purpose will be unavailable" >&2
    else
        echo "livesound setup: $lib not found; install $* for $purpose" >&2
    fi
}
# sounddevice needs PortAudio for the microphone; everything else runs without it.
need_deb libportaudio "microphone capture" libportaudio2
# Qt's X11 window needs xcb libraries that desktops have and bare servers lack (headless runs need none).
if [ -n "${DISPLAY:-}" ]; then
    need_deb libxcb-cursor "the live window" libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 \
        libxcb-image0 libxcb-render-util0 libxcb-xinerama0 libxcb-shape0 libegl1 libgl1 libfontconfig1 libdbus-1-3
fi
