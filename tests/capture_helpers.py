"""A stand-in for the capture child: a real process that speaks its protocol into real pipes.

The header line then float32 samples (a 0.25 tone at 440 Hz) in real time on stdout, as
``livesound.audio.capture_child`` does; ``before`` runs before the header and ``each_block`` after every block
(``n`` samples written so far, ``out``/``err`` the binary stdout and the text stderr), so a test can make it
report overflows, flood stderr or break the protocol.
"""

from __future__ import annotations

import sys
import textwrap

SR = 44100
HEADER = {"device": "fake", "samplerate": SR, "latency": 0.0116, "note": ""}

_CHILD = r"""
import json, os, sys, time
import numpy as np
out, err, args = sys.stdout.buffer, sys.stderr, sys.argv[1:]
{before}
out.write((json.dumps({header}) + "\n").encode()); out.flush()
t0, n = time.monotonic(), 0
while True:
    block = (0.25 * np.sin(2 * np.pi * 440 * (n + np.arange(256)) / {sr})).astype("<f4")
    out.write(block.tobytes()); out.flush(); n += 256
{each_block}
    time.sleep(max(0.0, t0 + n / {sr} - time.monotonic()))
"""


def fake_child(before: str = "", each_block: str = "", *args: str) -> list[str]:
    """argv of a stand-in child (``args`` reach it as ``args``)."""
    code = _CHILD.format(before=textwrap.dedent(before), header=repr(HEADER), sr=SR,
                         each_block=textwrap.indent(textwrap.dedent(each_block), "    "))
    return [sys.executable, "-c", code, *args]
