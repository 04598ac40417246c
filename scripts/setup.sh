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

# Bytecode for the installed packages, once per install: where PYTHONDONTWRITEBYTECODE is set pip writes none,
# and every Python process (a live start, each of the tests' subprocesses) compiled torch's and timm's modules
# again: ~4 s of a 10 s start. (One file of torch's test helpers is Python 3.12 syntax: its error is expected.)
compiled=.venv/.livesound-compiled
if [ "$(cat "$compiled" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m compileall -q -j 0 .venv/lib/python3*/site-packages >/dev/null 2>&1 || true
    echo "$want" > "$compiled"
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

# System libraries (PortAudio; Qt's xcb libraries where there is a display): installed as root, else named.
bash "$root/scripts/system_libs.sh"
