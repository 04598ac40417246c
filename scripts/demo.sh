#!/usr/bin/env bash
# The main job on the embedded `demo` preset: set up .venv if needed, then play the live instrument.
# Microphone when there is one, else the synthetic source; without a display it renders frames headless
# to out/live/ and says so. Extra arguments go to `livesound live`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/livesound live --preset demo "$@"
