"""Wires OSC, MIDI, live presets, checkpoint swaps, recording and video out to the frame loop.

The rig hangs off two hooks, both on the renderer thread: ``before_frame`` drains the control queue and
installs a swapped checkpoint; ``after_frame`` sends the frame's features over OSC and offers the frame to the
video outputs and the recorder. Everything slow lives on threads of its own (OSC listener, MIDI callback,
checkpoint loader, video senders, the recorder's writer, and one rig worker that finishes recordings and writes
the preset file, so neither a stopping encoder nor a synced file write lands on the renderer).

OSC is unauthenticated, so the rig bounds what a sender can do: the listener stays on loopback unless
``osc_listen_any`` (``--osc-listen-any``) says otherwise (and then it says, once, what a sender can do),
``osc_allow_from`` names the senders it reads, checkpoints are swapped only from the models folder and the folders
in ``osc_allow_path``, the control queue is bounded, and a recording stops at ``record_max_mb`` or before its disk
fills.
"""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from livesound.models.presets import models_dir
from livesound.recording import MIN_FREE_BYTES, Recorder, new_recording_path
from livesound.rig.control import ControlError, Controls, StepTarget
from livesound.rig.midi import MidiMap, open_midi
from livesound.rig.osc import OscIn, OscOut, is_loopback, parse_host_port
from livesound.rig.presets import PresetBank, capture
from livesound.rig.swap import CheckpointSwap
from livesound.rig.video_out import NdiSender, V4l2Sender, VideoOut, VideoOutError

log = logging.getLogger("livesound")


@dataclass
class RigOptions:
    osc_in: str | None = None         # HOST:PORT to listen on
    osc_out: str | None = None        # HOST:PORT to send per-frame features to
    midi: str | None = None           # None: no MIDI; "": the first input port; else part of a port name
    ndi: str | None = None            # NDI source name
    v4l2: str | None = None           # "": the first loopback device; else a device path
    preset_file: str | None = None    # live presets 1-9 and the MIDI map (JSON); starts from slot 1 if stored
    record_dir: str = "recordings"    # where OSC/MIDI `record 1` writes
    record_max_mb: float = 2048.0     # a rig recording stops at this size (and before its disk fills)
    osc_listen_any: bool = False      # allow --osc-in on an address beyond loopback
    osc_allow_from: list[str] = field(default_factory=list)   # senders OSC reads (empty: any that reaches it)
    osc_allow_path: list[str] = field(default_factory=list)   # folders swaps may load from, besides the models'

    @property
    def any(self) -> bool:
        return any(x is not None for x in (self.osc_in, self.osc_out, self.midi, self.ndi, self.v4l2,
                                           self.preset_file))


class Rig:
    """The rig around one target: a LiveEngine (``attach``) or a fixed-step run (``StepTarget``)."""
    def __init__(self, target, opts: RigOptions | None = None):
        self.opts = opts or RigOptions()
        self.target = target
        self.bank = PresetBank(self.opts.preset_file)
        self.midi_map = MidiMap.from_json(self.bank.midi)
        self.swap = CheckpointSwap(target.pipeline, allowed_dirs=[models_dir(), *self.opts.osc_allow_path])
        self.controls = Controls(target, {
            "preset": lambda i: self.bank.recall(i, self.target),
            "preset_save": self.store_preset,
            "record": self.set_recording,
            "generator": lambda path: self.swap.request("generator", path),
            "mapper": lambda path: self.swap.request("mapper", path)},
            checks={"generator": lambda path: self._check_swap("generator", path),
                    "mapper": lambda path: self._check_swap("mapper", path)})
        self.osc_in = self.osc_out = self.midi = self.recorder = None
        # One worker, created on first use: finishing a recording and writing the preset file, in order.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livesound-rig-io")
        self.video: list = []
        if 1 in self.bank.slots:  # a set starts from its first scene
            self.controls.submit("preset", 1)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        o = self.opts
        if o.osc_in is not None:
            host, port = parse_host_port(o.osc_in, "--osc-in")
            if not is_loopback(host):
                if not o.osc_listen_any:
                    raise ValueError(f"--osc-in {o.osc_in} listens beyond this machine, and OSC has no "
                                     f"authentication: any sender that reaches it could {self.osc_powers()}. "
                                     "Add --osc-listen-any to allow it (and --osc-allow-from ADDR to name the "
                                     "senders), or listen on 127.0.0.1")
                senders = ", ".join(o.osc_allow_from) or "anyone who can reach it"
                print(f"livesound live: OSC on {host}:{port} is open to the network ({senders}): a sender can "
                      f"{self.osc_powers()}", file=sys.stderr)
            self.osc_in = OscIn(self.controls, host, port, allow_from=o.osc_allow_from)
        if o.osc_out is not None:
            self.osc_out = OscOut(*parse_host_port(o.osc_out, "--osc-out"))
        if o.midi is not None:
            self.midi = open_midi(o.midi, self.midi_map, self.controls)
        for kind, arg in (("ndi", o.ndi), ("v4l2", o.v4l2)):
            if arg is not None:
                self.start_video(kind, arg)

    # -- hooks (renderer thread) -----------------------------------------------------------------------------
    def before_frame(self) -> None:
        self.controls.apply_pending()
        self.swap.apply_pending()

    def step_before_frame(self) -> float:
        """The fixed-step loop's hook: apply changes, return the frame's strength."""
        self.before_frame()
        return self.target.strength

    def after_frame(self, frame) -> None:
        if self.osc_out is not None:
            # A counter on the source (an attribute read, not engine.stats(), which sorts timing history).
            source = getattr(self.target, "source", None)
            self.osc_out.send_frame(frame, getattr(source, "input_overflows", 0))
        for out in self.video:
            out.offer(frame.rgb)
        if self.recorder is not None:
            self.recorder.write(frame.rgb)
            if self.recorder.stopped is not None:  # its cap or the disk: finish it; `record 1` starts anew
                self.set_recording(0)

    def attach(self, engine) -> "Rig":
        engine.before_frame, engine.after_frame = self.before_frame, self.after_frame
        return self

    # -- actions ---------------------------------------------------------------------------------------------
    def osc_powers(self) -> str:
        """What an OSC sender can do with this rig, in words (told when OSC listens beyond loopback)."""
        where = f" in {self.bank.path}" if self.bank.path else ""
        return (f"change every live parameter, recall and overwrite live presets{where}, start recordings into "
                f"{Path(self.opts.record_dir).resolve()} (each at most {self.opts.record_max_mb:g} MB, stopping "
                f"before the disk has under {MIN_FREE_BYTES >> 20} MB free), and swap in checkpoints from "
                f"{', '.join(map(str, self.swap.allowed_dirs))}")

    def _check_swap(self, kind: str, path: str) -> None:
        try:
            self.swap.check(kind, path)
        except ValueError as e:
            raise ControlError("refused_path", str(e)) from None

    def store_preset(self, slot: int) -> None:
        """Renderer thread: capture the state now; the file is written by the rig's worker."""
        self.bank.midi = self.midi_map.to_json()
        self.bank.slots[self.bank.check_slot(slot)] = capture(self.target)
        snapshot = self.bank.snapshot()
        self._worker.submit(self._write_presets, snapshot, slot)

    def _write_presets(self, snapshot: dict, slot: int | None = None) -> None:
        try:
            self.bank.write(snapshot)
        except OSError as e:
            log.error("livesound: live presets not saved to %s: %s", self.bank.path, e)
            return
        if slot is not None:
            log.info("livesound: live preset %d stored%s", slot, f" in {self.bank.path}" if self.bank.path else "")

    def settle(self, timeout_s: float = 30.0) -> None:
        """Wait until the rig's worker has done what was handed to it so far (written presets, finished
        recordings). Not for the renderer thread."""
        self._worker.submit(lambda: None).result(timeout_s)

    def save_midi_map(self) -> None:
        self.bank.midi = self.midi_map.to_json()
        self.bank.save()

    def set_recording(self, on: int) -> None:
        if on and self.recorder is None:
            folder = new_recording_path(Path(self.opts.record_dir))
            self.recorder = Recorder(folder, fps=30.0, max_bytes=int(self.opts.record_max_mb * 1e6))
            log.info("livesound: recording to %s", self.recorder.path)
        elif not on and self.recorder is not None:
            rec, self.recorder = self.recorder, None
            self._worker.submit(_finish_recording, rec)  # close() drains the writer: not on the renderer

    def start_video(self, kind: str, arg: str) -> None:
        """Start an NDI ("ndi", source name) or v4l2 ("v4l2", device or "") output; one line if it cannot."""
        try:
            sender = NdiSender(arg or "livesound") if kind == "ndi" else V4l2Sender(arg or None)
        except VideoOutError as e:
            import sys

            print(f"livesound live: no {kind} video out ({e}); running without it", file=sys.stderr)
            return
        self.video.append(VideoOut(sender))

    def stats(self) -> dict:
        out = {"controls_applied": self.controls.applied, "controls_failed": self.controls.failed,
               "controls_dropped": self.controls.dropped, "swaps": self.swap.swaps,
               "swaps_superseded": self.swap.superseded}
        if self.osc_in is not None:
            out["osc_in"] = dict(self.osc_in.counts)
        if self.osc_out is not None:
            out["osc_out"] = {"sent": self.osc_out.sent, "dropped": self.osc_out.dropped}
        for v in self.video:
            out[f"video_{v.sender.kind}"] = {"offered": v.offered, "sent": v.sent, "failed": v.failed}
        return out

    def close(self) -> None:
        for part in (self.osc_in, self.osc_out, self.midi, *self.video):
            if part is not None:
                part.close()
        self.set_recording(0)
        self._worker.shutdown(wait=True)  # recordings finished, preset files written
        if self.bank.path is not None and self.midi_map.to_json() != self.bank.midi:
            self.save_midi_map()  # what was learnt stays with the set


def _finish_recording(rec: Recorder) -> None:
    try:
        rec.close()
    except RuntimeError as e:
        log.error("livesound: %s", e)
        return
    why = f" (stopped: {rec.stopped})" if rec.stopped else ""
    log.info("livesound: recorded %d frames to %s%s", rec.frames_written, rec.path, why)


def open_rig(target_or_stages, opts: RigOptions | None) -> Rig | None:
    """A Rig when ``opts`` asks for any part of it; a bare Pipeline gets a StepTarget (fixed-step runs)."""
    if opts is None or not opts.any:
        return None
    target = target_or_stages if hasattr(target_or_stages, "pipeline") else StepTarget(target_or_stages)
    return Rig(target, opts)
