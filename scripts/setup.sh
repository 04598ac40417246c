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

# sounddevice needs the PortAudio library for live capture; everything else runs without it.
if ! ldconfig -p 2>/dev/null | grep -q libportaudio; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "livesound setup: installing libportaudio2 for microphone capture"
        (apt-get install -y -qq libportaudio2 >/dev/null 2>&1 ||
         (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libportaudio2 >/dev/null 2>&1)) ||
            echo "livesound setup: could not install libportaudio2; live capture will be unavailable" >&2
    else
        echo "livesound setup: PortAudio (libportaudio2) not found; install it for microphone capture" >&2
    fi
fi
