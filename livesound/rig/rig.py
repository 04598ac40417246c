"""Wires OSC, MIDI, live presets, checkpoint swaps, recording and video out to the frame loop.

The rig hangs off two hooks, both on the renderer thread: ``before_frame`` drains the control queue and
installs a swapped checkpoint; ``after_frame`` sends the frame's features over OSC and offers the frame to the
video outputs and the recorder. Everything slow lives on threads of its own (OSC listener, MIDI callback,
checkpoint loader, video senders, the recorder's writer).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from livesound.recording import Recorder
from livesound.rig.control import Controls, StepTarget
from livesound.rig.midi import MidiMap, open_midi
from livesound.rig.osc import OscIn, OscOut, parse_host_port
from livesound.rig.presets import PresetBank
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
        self.swap = CheckpointSwap(target.pipeline)
        self.controls = Controls(target, {
            "preset": lambda i: self.bank.recall(i, self.target),
            "preset_save": self.store_preset,
            "record": self.set_recording,
            "generator": lambda path: self.swap.request("generator", path),
            "mapper": lambda path: self.swap.request("mapper", path)})
        self.osc_in = self.osc_out = self.midi = self.recorder = None
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
            self.osc_in = OscIn(self.controls, *parse_host_port(o.osc_in, "--osc-in"))
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

    def attach(self, engine) -> "Rig":
        engine.before_frame, engine.after_frame = self.before_frame, self.after_frame
        return self

    # -- actions ---------------------------------------------------------------------------------------------
    def store_preset(self, slot: int) -> None:
        self.bank.midi = self.midi_map.to_json()
        self.bank.store(slot, self.target)
        log.info("livesound: live preset %d stored%s", slot, f" in {self.bank.path}" if self.bank.path else "")

    def save_midi_map(self) -> None:
        self.bank.midi = self.midi_map.to_json()
        self.bank.save()

    def set_recording(self, on: int) -> None:
        if on and self.recorder is None:
            folder = Path(self.opts.record_dir)
            folder.mkdir(parents=True, exist_ok=True)
            self.recorder = Recorder(folder / f"livesound-{time.strftime('%Y%m%d-%H%M%S')}", fps=30.0)
            log.info("livesound: recording to %s", self.recorder.path)
        elif not on and self.recorder is not None:
            rec, self.recorder = self.recorder, None
            rec.close()
            log.info("livesound: recorded %d frames to %s", rec.frames_written, rec.path)

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
               "swaps": self.swap.swaps}
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
        if self.bank.path is not None and self.midi_map.to_json() != self.bank.midi:
            self.save_midi_map()  # what was learnt stays with the set


def open_rig(target_or_stages, opts: RigOptions | None) -> Rig | None:
    """A Rig when ``opts`` asks for any part of it; a bare Pipeline gets a StepTarget (fixed-step runs)."""
    if opts is None or not opts.any:
        return None
    target = target_or_stages if hasattr(target_or_stages, "pipeline") else StepTarget(target_or_stages)
    return Rig(target, opts)
