#!/usr/bin/env bash
# System libraries livesound's optional parts load at run time, from Debian/Ubuntu packages: each library is
# looked up by its soname, and the packages of the missing ones are installed when running as root with apt-get,
# else named. Run by setup.sh; runs alone too: bash scripts/system_libs.sh
set -euo pipefail

have_lib() {  # have_lib SONAME: the dynamic loader's cache knows it
    ldconfig -p 2>/dev/null | grep -qF "$1 "
}

need_libs() {  # need_libs PURPOSE SONAME:PACKAGE...
    local purpose="$1"; shift
    local missing=() packages=() pair
    for pair in "$@"; do
        have_lib "${pair%%:*}" && continue
        missing+=("${pair%%:*}")
        packages+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "livesound setup: installing ${packages[*]} for $purpose"
        (apt-get install -y -qq "${packages[@]}" >/dev/null 2>&1 ||
         (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${packages[@]}" >/dev/null 2>&1)) ||
            echo "livesound setup: could not install ${packages[*]}; $purpose will be unavailable" >&2
    else
        echo "livesound setup: $purpose needs ${missing[*]}; install them with:" \
             "sudo apt-get install ${packages[*]}" >&2
    fi
}

# sounddevice needs PortAudio for the microphone; everything else runs without it.
need_libs "microphone capture" libportaudio.so.2:libportaudio2

# Qt's X11 platform plugin (libqxcb) loads every one of these; one missing and Qt aborts the process at start
# ("could not load the Qt platform plugin xcb"). Desktops have them, bare servers lack them; headless runs need
# none, so they are only looked for where there is a display.
if [ -n "${DISPLAY:-}" ]; then
    need_libs "the live window" \
        libxcb.so.1:libxcb1 libX11-xcb.so.1:libx11-xcb1 libxcb-cursor.so.0:libxcb-cursor0 \
        libxcb-icccm.so.4:libxcb-icccm4 libxcb-image.so.0:libxcb-image0 libxcb-keysyms.so.1:libxcb-keysyms1 \
        libxcb-randr.so.0:libxcb-randr0 libxcb-render.so.0:libxcb-render0 \
        libxcb-render-util.so.0:libxcb-render-util0 libxcb-shape.so.0:libxcb-shape0 libxcb-shm.so.0:libxcb-shm0 \
        libxcb-sync.so.1:libxcb-sync1 libxcb-util.so.1:libxcb-util1 libxcb-xfixes.so.0:libxcb-xfixes0 \
        libxcb-xkb.so.1:libxcb-xkb1 libxkbcommon.so.0:libxkbcommon0 libxkbcommon-x11.so.0:libxkbcommon-x11-0 \
        libEGL.so.1:libegl1 libGL.so.1:libgl1 libfontconfig.so.1:libfontconfig1 libdbus-1.so.3:libdbus-1-3
fi
