#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py says what it runs): under 8 minutes on a machine with an NVIDIA GPU.
#
#   bash benchmarks/gpu_check.sh              # writes benchmarks/results/gpu_<device>.json, regenerates the README
#   bash benchmarks/gpu_check.sh --install    # first installs the GPU runtimes it can (onnxruntime-gpu, TensorRT)
#   bash benchmarks/gpu_check.sh --dry-run    # the same plan on the CPU, tiny sizes: checks the script itself
#
# Other arguments go to gpu_check.py (--sizes, --backends, --frames, --budget). Runtimes that are not installed
# are reported unavailable in the JSON, not as failures.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py=python3

dry=0 install=0 args=()
for a in "$@"; do
    case "$a" in
        --dry-run) dry=1; args+=("$a") ;;
        --install) install=1 ;;
        *) args+=("$a") ;;
    esac
done

if [ "$dry" = 0 ]; then
    if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
        echo "gpu_check: no NVIDIA GPU here (nvidia-smi finds none); try --dry-run" >&2
        exit 2
    fi
    nvidia-smi -L
fi
if [ "$install" = 1 ]; then
    # onnxruntime and onnxruntime-gpu are one module: the CPU wheel goes before the GPU one comes (as setup.sh)
    "$py" -m pip uninstall --quiet -y onnxruntime || true
    "$py" -m pip install --quiet --force-reinstall --no-deps -c constraints.txt onnxruntime-gpu ||
        echo "gpu_check: could not install onnxruntime-gpu; its backends will be reported unavailable" >&2
    "$py" -m pip install --quiet "tensorrt>=10,<11" ||
        echo "gpu_check: could not install TensorRT; its backends will be reported unavailable" >&2
fi
# Engines and auto's choices go to a folder of their own: a GPU check never reuses a CPU machine's cache.
export LIVESOUND_ENGINES="${LIVESOUND_ENGINES:-${TMPDIR:-/tmp}/livesound-gpu-check-engines}"
# The Python side keeps its own budget (450 s); the timeout only stops a hang.
timeout 900 "$py" benchmarks/gpu_check.py "${args[@]}"
if [ "$dry" = 0 ]; then
    "$py" benchmarks/report.py
fi
