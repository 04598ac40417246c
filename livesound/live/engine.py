"""The live engine: sound in, frames out, as a recipe of timed stages.

Threading contract
- Audio thread (the source's PortAudio callback, or its file/synth thread): writes the RingBuffer and
  nothing else; never blocks.
- Listener thread: consumes every new sample in order into the streaming log-mel (`features`), encodes the
  newest window (`encode`) and puts the unit embedding, stamped with its audio sample index, into a
  latest-wins slot. It never waits on the renderer.
- Renderer thread: peeks the newest hop of audio for the onset envelope, takes the newest embedding if there
  is one, then `smooth` -> `map` -> `synthesize` -> `to_rgb8`, and puts the frame into a latest-wins slot.
  Stale frames are replaced, never queued.
- Caller / GUI thread: reads `latest_frame()` and sets controls (strength, seed, pause, text). Controls are
  plain attribute writes that the renderer reads once per frame.
- Rig hooks (`livesound.rig`: OSC, MIDI, presets, video out): ``before_frame`` and ``after_frame`` run on the
  renderer thread and only drain a queue of control changes or hand a frame to a latest-wins slot.
The two workers each run torch with one intra-op thread, so on a 2-core machine each owns a core instead of
both fighting over two; with `pin_threads` each worker pins itself to its core at its start
(`livesound.live.affinity`). A stage that raises, returns NaN/inf or comes back too late drops that frame and is
counted in `faults` (see `faults.py`): the last good frame stays on screen and the loop goes on. Any other
`Exception` in a worker is logged, counted as a fault of stage "loop", and the worker restarts; only a
`BaseException` (KeyboardInterrupt, SystemExit) is stored in `error` and stops the engine. Nothing is
swallowed silently. `stop()` sets one event and joins every thread within its timeout.

Headless fixed-step mode (`run_fixed_step`) uses no threads at all: each frame advances the audio by exactly
`hop_samples` and runs every stage in order, so a file renders to the same frames on every run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from livesound.audio.features import PAPER_FRAMES, StreamLogMel, to_encoder_input
from livesound.live.faults import FaultGuard, StageFault
from livesound.live.hpss import StreamingHPSS
from livesound.live.reactivity import Reactivity
from livesound.live.smoothing import EmbeddingSmoother, OnsetEnvelope

log = logging.getLogger("livesound")
STAGES = ("features", "encode", "smooth", "map", "synthesize", "to_rgb8")


@dataclass
class LiveSettings:
    strength: float = 0.5            # mapper strength before the onset boost
    smoothing_s: float = 0.25        # embedding time constant
    window_s: float = 2.5            # audio the encoder sees (zero-padded to the paper's 864 frames)
    truncation_psi: float = 0.7
    noise_mode: str = "const"
    seed: int = 0
    onset_boost: float = 1.0         # strength multiplier added at a full onset
    release_s: float = 0.3           # onset envelope release
    labels: list[str] = field(default_factory=list)  # label names for the overlay (needs real CLIP weights)
    embed_hz: float = 20.0           # listener's encodes per second: the smoother (tau ~0.25 s) needs no more,
                                     # and the renderer keeps the CPU; onsets still reach every frame


@dataclass
class Frame:
    index: int
    rgb: np.ndarray                  # [H, W, 3] uint8
    audio_sample: int                # newest audio sample index the frame reflects
    t_done: float                    # time.perf_counter() when finished
    stage_ms: dict[str, float]
    level: float
    onset: float
    strength: float
    seed: int
    fps: float
    labels: list[tuple[str, float]]
    pulse: float = 0.0               # percussive envelope (livesound.live.hpss)
    motion: float = 0.0              # harmonic envelope
    bands: tuple[float, float, float] = (0.0, 0.0, 0.0)  # bass, mid, high from the spectrogram


class LatestSlot:
    """One item, replaced by each put: the reader always gets the newest, never a queue."""

    def __init__(self):
        self._item = None
        self._lock = threading.Lock()

    def put(self, item) -> None:
        with self._lock:
            self._item = item

    def get(self):
        with self._lock:
            return self._item


class StageTimes:
    """Per-stage milliseconds of recent frames, for percentiles (bounded, so long runs stay flat)."""

    def __init__(self, keep: int = 4096):
        self.ms: dict[str, deque] = {name: deque(maxlen=keep) for name in STAGES}

    def add(self, name: str, ms: float) -> None:
        self.ms[name].append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, values in self.ms.items():
            if values:
                v = np.fromiter(values, float)
                out[name] = {f"p{q}_ms": float(np.percentile(v, q)) for q in (50, 95, 99)} | {"n": len(v)}
        return out


class TorchBackend:
    """Runs a stage's module with torch in inference mode. ONNX Runtime / TensorRT backends (the engines
    issue) take the same call: ``backend(*tensors) -> tensor``."""

    name = "torch"

    def __init__(self, module: torch.nn.Module | Callable):
        self.module = module

    def __call__(self, *args):
        with torch.inference_mode():
            return self.module(*args)


class Stages:
    """The recipe of one frame: features -> encode -> smooth -> map -> synthesize -> to_rgb8.

    Each step is a method that can be called, timed and tested alone. Not thread-safe as a whole: the
    audio-side steps (features, encode) belong to one thread and the picture-side steps to one other.
    """

    def __init__(self, G, encoder, mapper, clip=None, settings: LiveSettings | None = None,
                 sample_rate: int = 44100, backends: dict[str, str] | None = None, backend_threads: int = 1):
        self.s = settings or LiveSettings()
        self.G, self.clip = G, clip
        self.sample_rate = sample_rate
        self.window_frames = int(min(PAPER_FRAMES, max(8, round(self.s.window_s * sample_rate / 512))))
        self.stream = StreamLogMel()
        self.encoder = TorchBackend(encoder)
        self.mapper_module = mapper                                          # for checkpoint swaps (livesound.rig)
        self.mapper_torch = TorchBackend(lambda ws, e, k: mapper.edit(ws, e, k))
        self.mapper = self.mapper_torch
        self.synthesis = TorchBackend(lambda ws: G.synthesis(ws, noise_mode=self.s.noise_mode))
        self.torch_backends = {"encode": self.encoder, "map": self.mapper_torch, "synthesize": self.synthesis}
        self.backends = {"encode": "torch", "map": "torch", "synthesize": "torch"} | dict(backends or {})
        if any(b != "torch" for b in self.backends.values()):
            self._accelerate(G, encoder, mapper, backend_threads)
        self.smoother = EmbeddingSmoother(time_constant_s=self.s.smoothing_s)
        self.envelope = OnsetEnvelope(sample_rate, release_s=self.s.release_s, max_boost=self.s.onset_boost)
        self.label_embs = None
        if clip is not None and self.s.labels:
            self.label_embs = clip.encode_text(self.s.labels).float()
        self.text_e: torch.Tensor | None = None
        self.text_groups: tuple[str, ...] = ("coarse",)  # layer groups the text steers (the rest follow sound)
        self.hpss = StreamingHPSS(self.stream, sample_rate=sample_rate)
        self.reactivity = Reactivity(G, self.s.truncation_psi)
        self.set_seed(self.s.seed)

    def _accelerate(self, G, encoder, mapper, threads: int) -> None:
        from exporters.onnx_stages import stage_specs
        from livesound.live.backends import make_backend

        if self.s.noise_mode != "const" and self.backends["synthesize"] != "torch":
            raise ValueError("exported generators bake in the constant noise: use noise_mode 'const'")
        specs = stage_specs(G, encoder, mapper)
        modules = {"encode": encoder, "map": mapper, "synthesize": G}
        for stage, backend in self.backends.items():
            if backend != "torch":
                setattr(self, {"encode": "encoder", "map": "mapper", "synthesize": "synthesis"}[stage],
                        make_backend(stage, backend, modules[stage], specs, threads))

    def use_torch(self, stage: str) -> None:
        """Run ``stage`` on its torch module from now on (the fault guard's fallback for a failing engine)."""
        setattr(self, {"encode": "encoder", "map": "mapper", "synthesize": "synthesis"}[stage],
                self.torch_backends[stage])
        self.backends[stage] = "torch"

    # -- controls -------------------------------------------------------------------------------------------
    def set_seed(self, seed: int) -> None:
        with torch.inference_mode():
            self.ws_src = self.G.mapping(self.G.z_from_seeds([seed]), truncation_psi=self.s.truncation_psi)
        self.seed = seed

    def set_text(self, text: str | None) -> None:
        if not text:
            self.text_e = None
        elif self.clip is None:
            raise ValueError("text steering needs a CLIP model")
        else:
            with torch.inference_mode():
                self.text_e = self.clip.encode_text([text]).float()

    # -- the stages -----------------------------------------------------------------------------------------
    def features(self, new_samples: np.ndarray) -> torch.Tensor:
        """Push new samples; the newest window as the encoder input [1, 1, 128, 512]."""
        self.stream.push(new_samples)
        self.hpss.update()                                                  # pulse/motion from the new frames
        spec = self.stream.window(self.window_frames)                       # [128, n]
        return to_encoder_input(F.pad(spec, (0, PAPER_FRAMES - spec.shape[-1]))[None])

    def encode(self, spec: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(spec).float(), dim=-1)             # [1, 512] unit

    def smooth(self, e: torch.Tensor, dt: float, onset: float) -> torch.Tensor:
        return self.smoother.update(e, dt, onset)

    def map(self, e: torch.Tensor, strength: float) -> torch.Tensor:
        k = torch.full((1,), float(strength))
        ws_src = self.reactivity.source(self.ws_src)                          # motion's walk, pulse's kick
        if self.text_e is not None:  # per-group embeddings: the torch mapper takes them, exported graphs not
            groups = {g: self.text_e if g in self.text_groups else e for g in ("coarse", "medium", "fine")}
            return self.mapper_torch(ws_src, groups, k)
        return self.mapper(ws_src, e, k)                                      # [1, num_ws, w_dim]

    def react(self, strength: float, dt: float) -> float:
        """Advance pulse/motion reactivity by ``dt``; the strength with the pulse's boost."""
        self.reactivity.step(dt, self.hpss.pulse, self.hpss.motion)
        return self.reactivity.boosted(strength)

    def rig_readings(self) -> dict:
        """The Frame fields of the spectrogram's features (pulse, motion, bands)."""
        return {"pulse": self.hpss.pulse, "motion": self.hpss.motion, "bands": self.hpss.bands}

    def synthesize(self, ws: torch.Tensor) -> torch.Tensor:
        return self.synthesis(ws)                                            # [1, 3, R, R]

    @staticmethod
    def to_rgb8(img: torch.Tensor) -> np.ndarray:
        x = ((img[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return np.ascontiguousarray(x.permute(1, 2, 0).numpy())              # [R, R, 3]

    def labels_for(self, e: torch.Tensor, k: int = 3) -> list[tuple[str, float]]:
        if self.label_embs is None:
            return []
        sims = (e @ self.label_embs.T)[0]
        top = torch.topk(sims, min(k, sims.numel()))
        return [(self.s.labels[i], float(v)) for v, i in zip(top.values, top.indices)]


def _timed(times: StageTimes, stage_ms: dict, name: str, fn, *args, guard: FaultGuard | None = None):
    t0 = time.perf_counter()
    out = fn(*args) if guard is None else guard.call(name, fn, *args)
    ms = (time.perf_counter() - t0) * 1e3
    stage_ms[name] = ms
    times.add(name, ms)
    return out


def run_fixed_step(stages: Stages, audio: np.ndarray, frames: int, hop_samples: int,
                   before_frame: Callable[[], float] | None = None) -> Iterator[Frame]:
    """Render ``frames`` frames from ``audio``, advancing exactly ``hop_samples`` per frame (no threads).

    Past the end of the audio, silence follows. Deterministic: the same input gives the same frames.
    ``before_frame`` (the rig's controls, `livesound.rig`) runs before each frame and returns its strength.
    """
    times = StageTimes()
    dt = hop_samples / stages.sample_rate
    strength = stages.s.strength
    for i in range(frames):
        if before_frame is not None:
            strength = before_frame()
        block = audio[i * hop_samples:(i + 1) * hop_samples]
        if block.size < hop_samples:
            block = np.pad(block, (0, hop_samples - block.size))
        stage_ms: dict[str, float] = {}
        spec = _timed(times, stage_ms, "features", stages.features, block)
        e = _timed(times, stage_ms, "encode", stages.encode, spec)
        level, onset, _ = stages.envelope.update(block, dt)
        e_s = _timed(times, stage_ms, "smooth", stages.smooth, e, dt, onset)
        k = stages.react(stages.envelope.boosted(strength), dt)
        ws = _timed(times, stage_ms, "map", stages.map, e_s, k)
        img = _timed(times, stage_ms, "synthesize", stages.synthesize, ws)
        rgb = _timed(times, stage_ms, "to_rgb8", stages.to_rgb8, img)
        yield Frame(i, rgb, (i + 1) * hop_samples, time.perf_counter(), stage_ms, float(level), float(onset),
                    k, stages.seed, 1.0 / dt, stages.labels_for(e_s), **stages.rig_readings())
    stages.times = times


class LiveEngine:
    """Live source + stages on two worker threads (see the module's threading contract)."""

    def __init__(self, stages: Stages, source, torch_threads: int | None = 1, pin_threads: str = "off"):
        from livesound.live.affinity import parse_pin, plan

        self.stages, self.source = stages, source
        self._cores = plan(parse_pin(pin_threads))  # {"renderer": core, "listener": core}, or {} unpinned
        self.times = StageTimes()
        self._frame_slot, self._emb_slot = LatestSlot(), LatestSlot()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._torch_threads = torch_threads
        self._pending_seed: int | None = None
        self._pending_text: tuple[str | None] | None = None
        self.error: BaseException | None = None
        self.faults = FaultGuard(stages)
        self.strength = stages.s.strength
        self.paused = False
        self.text: str | None = None
        self.frames_rendered = 0
        self._fps = 0.0
        # The rig's hooks (livesound.rig), called on the renderer thread: before each frame (and each idle
        # wait) to apply control changes, after each frame to send it out. Both must return quickly.
        self.before_frame: Callable[[], None] | None = None
        self.after_frame: Callable[[Frame], None] | None = None

    # -- controls (any thread) -------------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return self._pending_seed if self._pending_seed is not None else self.stages.seed

    def set_seed(self, seed: int) -> None:
        self._pending_seed = max(0, int(seed))

    def next_seed(self) -> None:
        self._pending_seed = self.seed + 1

    def prev_seed(self) -> None:
        self._pending_seed = max(0, self.seed - 1)

    def set_text(self, text: str | None) -> None:
        self.text = text or None
        self._pending_text = (self.text,)

    @property
    def source_name(self) -> str:
        return self.source.name

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def latest_frame(self) -> Frame | None:
        return self._frame_slot.get()

    def stats(self) -> dict:
        return {"stages": self.times.summary(), "fps": self._fps, "frames": self.frames_rendered,
                "overruns": self.source.ring.overruns, "dropped_samples": self.source.ring.dropped_samples,
                "faults": self.faults.summary(), "source_state": getattr(self.source, "state", "ok")}

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        self._stop.clear()
        self.source.start()
        self._threads = [threading.Thread(target=self._guard, args=(self._listen,), name="livesound-listener",
                                          daemon=True),
                         threading.Thread(target=self._guard, args=(self._render,), name="livesound-renderer",
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.source.stop()

    def _guard(self, loop: Callable[[], None]) -> None:
        from livesound.live.affinity import pin_current_thread

        worker = threading.current_thread().name.removeprefix("livesound-")
        try:
            pin_current_thread(self._cores.get(worker), worker)
        except BaseException as e:  # noqa: BLE001 - reported, never swallowed
            self.error = e
            log.exception("livesound: %s failed: %s", threading.current_thread().name, e)
            self._stop.set()
            return
        while not self._stop.is_set():
            try:
                loop()
            except Exception as e:  # noqa: BLE001 - counted and logged; the show goes on
                self.faults.record(StageFault("loop", "exception", f"{type(e).__name__}: {e}"))
                log.exception("livesound: %s failed and restarts: %s", threading.current_thread().name, e)
                self._stop.wait(0.1)
            except BaseException as e:  # noqa: BLE001 - reported, never swallowed
                self.error = e
                log.exception("livesound: %s stopped: %s", threading.current_thread().name, e)
                self._stop.set()

    # -- workers --------------------------------------------------------------------------------------------
    def _listen(self) -> None:
        ring, st = self.source.ring, self.stages
        interval = 1.0 / st.s.embed_hz if st.s.embed_hz > 0 else 0.0
        while not self._stop.is_set():
            t0 = time.perf_counter()
            new = ring.read_available()
            if new.size == 0:
                self._stop.wait(0.002)
                continue
            stage_ms: dict[str, float] = {}
            try:
                spec = _timed(self.times, stage_ms, "features", st.features, new, guard=self.faults)
                e = _timed(self.times, stage_ms, "encode", st.encode, spec, guard=self.faults)
            except StageFault:  # counted; the renderer keeps the previous embedding
                self._stop.wait(interval)
                continue
            self._emb_slot.put((e, st.stream.samples_total, stage_ms))
            self._stop.wait(max(0.0, interval - (time.perf_counter() - t0)))

    def _render(self) -> None:
        ring, st = self.source.ring, self.stages
        # The onset envelope sees every sample since the previous frame (at most ~0.19 s), so a click
        # between two frames is never missed.
        scratch = np.zeros(8192, np.float32)
        seen = 0
        last_t = time.perf_counter()
        e_last, audio_idx, emb_ms = None, 0, {}
        fps_t, fps_n = last_t, 0
        while not self._stop.is_set():
            if self.before_frame is not None:
                self.before_frame()
            if self._pending_seed is not None:  # taken before applying: a failing seed is tried once
                seed, self._pending_seed = self._pending_seed, None
                st.set_seed(seed)
            if self._pending_text is not None:
                (text,), self._pending_text = self._pending_text, None
                st.set_text(text)
            got = self._emb_slot.get()
            if got is not None:
                e_last, audio_idx, emb_ms = got
            if e_last is None or self.paused:
                self._stop.wait(0.005)
                continue
            now = time.perf_counter()
            dt, last_t = max(now - last_t, 1e-4), now
            newest = ring.total_written
            n = int(min(scratch.size, newest - seen))
            block = ring.read_latest(n, out=scratch[:n])
            seen = newest
            level, onset, _ = st.envelope.update(block, dt)
            stage_ms = dict(emb_ms)
            k = st.react(st.envelope.boosted(self.strength), dt)
            try:
                e_s = _timed(self.times, stage_ms, "smooth", st.smooth, e_last, dt, onset, guard=self.faults)
                ws = _timed(self.times, stage_ms, "map", st.map, e_s, k, guard=self.faults)
                img = _timed(self.times, stage_ms, "synthesize", st.synthesize, ws, guard=self.faults)
                rgb = _timed(self.times, stage_ms, "to_rgb8", st.to_rgb8, img, guard=self.faults)
            except StageFault as fault:  # counted; the previous frame stays in the slot (on screen)
                if fault.stage == "smooth":
                    st.smoother.reset()  # a NaN in its state would poison every later frame
                self._stop.wait(0.002)
                continue
            fps_n += 1
            if now - fps_t >= 0.5:
                self._fps, fps_t, fps_n = fps_n / (now - fps_t), now, 0
            frame = Frame(self.frames_rendered, rgb, max(newest, audio_idx), time.perf_counter(), stage_ms,
                          float(level), float(onset), k, st.seed, self._fps, st.labels_for(e_s),
                          **st.rig_readings())
            self._frame_slot.put(frame)
            self.frames_rendered += 1
            if self.after_frame is not None:
                self.after_frame(frame)
