"""The capture child: one PortAudio input stream in its own process, raw samples to stdout.

    python -m livesound.audio.capture_child --device pulse --samplerate 44100 --blocksize 256

Why a process: when a sound server dies under an open stream, PortAudio's host thread can spin or hang inside
the library, and re-initialising PortAudio while a stream is open can hang too. Neither can be interrupted from
Python inside one process. In a child, the parent (``livesound.audio.mic``) just kills it and starts a
fresh one, whose PortAudio enumerates the devices anew: nothing leaks into the parent.

Protocol
- stdout: one JSON line ``{"device": NAME, "samplerate": SR, "latency": SECONDS, "note": TEXT}`` once the
  stream runs (``latency`` is the input latency the open stream reports), then mono float32 little-endian
  samples, block after block, until killed.
- stderr: ``overflow TOTAL`` each time PortAudio says input was lost before this process read it (TOTAL counts
  this child's overflowed blocks); ``capture: TEXT`` for a failure, then exit status 2 (cannot open) or 3 (the
  stream failed). Anything else there is the libraries' chatter (ALSA writes its own lines to stderr).
The device is the one named (index or part of the name) if it exists, else the default input.
"""

from __future__ import annotations

import argparse
import json
import sys


def _die_with_parent() -> None:
    """Linux: the kernel kills this child when its parent dies, so no orphan keeps the device open."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device")
    ap.add_argument("--samplerate", type=int, default=44100)
    ap.add_argument("--blocksize", type=int, default=256)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--latency", default="low")
    args = ap.parse_args(argv)
    _die_with_parent()

    import numpy as np

    from livesound.audio.io import AudioError
    from livesound.audio.sources import (
        _sounddevice,
        list_input_devices,
        resolve_input_device,
    )

    note = ""
    try:
        sd = _sounddevice()
        devices = list_input_devices()
        try:
            dev = resolve_input_device(args.device, devices)
        except AudioError as e:
            if args.device is None or not devices:
                raise
            dev = resolve_input_device(None, devices)
            note = f"{e.problem.split(';')[0]}; using the default input {dev['name']!r}"
        latency = args.latency if args.latency in ("low", "high") else float(args.latency)
        channels = min(args.channels, dev["channels"])
        stream = sd.InputStream(device=dev["index"], channels=channels, dtype="float32",
                                samplerate=args.samplerate, blocksize=args.blocksize, latency=latency)
        stream.start()
    except (AudioError, Exception) as e:  # noqa: BLE001 - reported to the parent as one line
        print(f"capture: {e}", file=sys.stderr, flush=True)
        return 2
    out = sys.stdout.buffer
    header = {"device": dev["name"], "samplerate": args.samplerate, "latency": float(stream.latency), "note": note}
    out.write((json.dumps(header) + "\n").encode())
    out.flush()
    overflows = 0
    try:
        while True:
            data, overflowed = stream.read(args.blocksize)          # [blocksize, channels]
            mono = data[:, 0] if channels == 1 else data.mean(axis=1)
            out.write(np.ascontiguousarray(mono, dtype="<f4").tobytes())
            out.flush()
            if overflowed:
                overflows += 1
                print(f"overflow {overflows}", file=sys.stderr, flush=True)
    except (BrokenPipeError, KeyboardInterrupt):
        return 0
    except Exception as e:  # noqa: BLE001 - the stream failed (device lost): the parent reconnects
        print(f"capture: the input stream failed ({e})", file=sys.stderr, flush=True)
        return 3


if __name__ == "__main__":
    sys.exit(main())
