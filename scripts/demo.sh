#!/usr/bin/env bash
# The main job on the embedded `demo` preset: set up .venv if needed, then render demo frames.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/livesound generate --preset demo --seeds 0-15 --grid --out out/demo "$@"
