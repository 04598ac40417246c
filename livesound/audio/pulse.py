"""A PulseAudio null sink whose monitor is the default input (docs/design.md's capture recipe).

Sound played into the sink with ``paplay`` reaches PortAudio's ``pulse`` input device as if a microphone
heard it: the latency benchmark and the capture tests use it. ``ours`` says whether this process started the
server (then ``stop`` kills it); a server that was already running only gets the sink added and removed.
Never kill the server under an open stream: PortAudio's ALSA thread may then spin instead of ending it.
"""

from __future__ import annotations

import shutil
import subprocess

from livesound.audio.io import AudioError

TOOLS = ("pulseaudio", "pactl", "paplay")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


class NullSink:
    def __init__(self, sd, sink: str):
        self.sd, self.sink = sd, sink  # sd: the sounddevice module, re-initialised when devices change
        self.ours = not self.alive()

    @staticmethod
    def alive() -> bool:
        return subprocess.run(["pulseaudio", "--check"], capture_output=True).returncode == 0

    def start(self) -> "NullSink":
        if self.ours:
            done = subprocess.run(["pulseaudio", "--start", "-n", "--exit-idle-time=-1",
                                   f"--load=module-null-sink sink_name={self.sink}",
                                   "--load=module-native-protocol-unix"], capture_output=True, text=True)
            if done.returncode != 0:
                raise AudioError("pulseaudio", f"cannot start a server: {done.stderr.strip()[-200:]}")
        else:
            subprocess.run(["pactl", "load-module", "module-null-sink", f"sink_name={self.sink}"],
                           capture_output=True)
        subprocess.run(["pactl", "set-default-source", f"{self.sink}.monitor"], capture_output=True)
        self._rescan()
        return self

    def stop(self) -> None:
        if self.ours:
            subprocess.run(["pulseaudio", "--kill"], capture_output=True)
        else:
            subprocess.run(["pactl", "unload-module", "module-null-sink"], capture_output=True)
        self._rescan()

    def play(self, path, timeout: float = 10) -> None:
        subprocess.run(["paplay", f"--device={self.sink}", str(path)], check=True, timeout=timeout)

    def __enter__(self) -> "NullSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _rescan(self) -> None:
        self.sd._terminate()  # PortAudio enumerates devices once, at initialisation
        self.sd._initialize()
