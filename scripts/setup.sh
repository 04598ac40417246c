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

# System libraries (PortAudio; Qt's xcb libraries where there is a display): installed as root, else named.
bash "$root/scripts/system_libs.sh"
