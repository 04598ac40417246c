"""The frame recipe: sound in, one picture out, as named stages that can each be timed and tested alone.

    hear:  features -> encode                          (new audio -> the newest window's unit embedding)
    draw:  smooth -> map -> synthesize -> to_rgb8       (embedding + strength -> an 8-bit RGB frame)
           with an output size (`livesound.live.output`): synthesize -> upscale? -> resize -> to_rgb8

``hear`` and ``draw`` are the recipe's two halves, and the only way frames are made: the threaded live engine
(`livesound.live.engine`) runs ``hear`` on its listener thread and ``draw`` on its renderer thread; the
fixed-step loop here (``run_fixed_step``) runs both in order on the calling thread, so a file renders to the
same frames on every run. Every stage call goes through a ``StageClock``, which times it and, in the live
engine, guards it against faults (`livesound.live.faults`).

The ``map`` stage is the steerer's (`livesound.live.steering`): source latent and embedding in, w+ out. The
``encode``, ``map`` and ``synthesize`` stages each run on one backend (`livesound.live.backends`); the rig and
the fault guard change networks and backends only through ``replace`` and ``use_torch``.

Not thread-safe as a whole: the ``hear`` side belongs to one thread and the ``draw`` side (and the controls,
applied between frames) to one other.

Devices: the networks, the embedding, the latents and the image live on ``device`` (a CUDA GPU or the CPU);
only the spectrogram goes to the device and only the finished 8-bit frame comes back, in ``to_rgb8``'s one
copy (`livesound.live.host`). On a GPU ``hear`` runs on a CUDA stream of its own, so the audio side of the next
frame overlaps the synthesis of this one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from livesound.audio.features import PAPER_FRAMES, StreamLogMel, to_encoder_input
from livesound.live.backends import TorchBackend, make_backend
from livesound.live.glide import GLIDE_S, SourceGlide
from livesound.live.host import HostFrames
from livesound.live.hpss import StreamingHPSS
from livesound.live.novelty import ChangeDetector
from livesound.live.reactivity import Reactivity
from livesound.live.smoothing import EmbeddingSmoother, OnsetEnvelope
from livesound.live.steering import Steerer
from livesound.live.timing import StageClock, StageTimes
from livesound.models.mapper import GROUPS


@dataclass
class LiveSettings:
    """The live path's settings; the one place their defaults live (a preset's ``live`` section overrides)."""

    strength: float = 0.5            # steering strength before the onset boost
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
    change_db: float = 8.0           # a change of sound re-windows the encoder (livesound.live.novelty); 0: off
    change_smoothing: float = 3.0    # at a change the smoothing time constant is divided by 1 + this

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


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


@dataclass
class Drawn:
    """What ``draw`` made of one embedding: the picture and the readings it was made with."""

    rgb: np.ndarray
    level: float
    onset: float
    strength: float
    embedding: torch.Tensor          # the smoothed embedding the picture shows


class Pipeline:
    """The networks and state of the live path, and the stages of one frame (see the module docstring)."""

    def __init__(self, G, encoder, steerer: Steerer, clip=None, settings: LiveSettings | None = None,
                 sample_rate: int = 44100, backends: dict[str, str] | None = None, backend_threads: int = 1,
                 device: torch.device | str | None = None, upscaler=None, resizer=None):
        self.s = settings or LiveSettings()
        self.device = torch.device(device or "cpu")
        G, encoder, steerer = G.to(self.device), encoder.to(self.device), steerer.to(self.device)
        self.G, self.encoder, self.steerer, self.clip = G, encoder, steerer, clip
        self.host = HostFrames(self.device)
        self.hear_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self.sample_rate = sample_rate
        self.backend_threads = backend_threads
        self.window_frames = int(min(PAPER_FRAMES, max(8, round(self.s.window_s * sample_rate / 512))))
        self.stream = StreamLogMel()
        self.smoother = EmbeddingSmoother(time_constant_s=self.s.smoothing_s)
        self.envelope = OnsetEnvelope(sample_rate, release_s=self.s.release_s, max_boost=self.s.onset_boost)
        self.hpss = StreamingHPSS(self.stream, sample_rate=sample_rate)
        self.change = ChangeDetector(self.stream, self.s.change_db, sample_rate)
        self.reactivity = Reactivity(G, self.s.truncation_psi)
        self.label_embs = None
        if clip is not None and self.s.labels:
            self.label_embs = clip.encode_text(self.s.labels).float().to(self.device)
        self.text_e: torch.Tensor | None = None
        self.text_groups: tuple[str, ...] = ("coarse",)  # layer groups the text steers (the rest follow sound)
        self.steering = None  # livesound.live.steer_choice.SteeringChoice: what steers and why (start line, overlay)
        self.times = StageTimes()
        self.upscaler, self.resizer = upscaler, resizer   # the output stages (livesound.live.output); None: none
        self.torch_runners = {"encode": TorchBackend(encoder, self.device), "map": TorchBackend(steerer, self.device),
                              "synthesize": TorchBackend(self._synthesis(G), self.device)}
        if upscaler is not None:
            self.upscaler = upscaler.to(self.device)
            self.torch_runners["upscale"] = TorchBackend(self.upscaler, self.device)
        self.runners = dict(self.torch_runners)
        self.backends = {stage: "torch" for stage in self.runners} | \
            {stage: name for stage, name in (backends or {}).items() if stage in self.runners}
        if self.s.noise_mode != "const" and self.backends["synthesize"] != "torch":
            raise ValueError("exported generators bake in the constant noise: use noise_mode 'const'")
        for stage, name in self.backends.items():
            if name != "torch":  # ``auto`` resolves to a concrete backend here: the name it chose is recorded
                styles = stage == "synthesize" and steerer.edits_styles  # the generator with a style-offset input
                self.runners[stage] = make_backend(stage, name, self.network(stage), backend_threads, self.device,
                                                   styles=styles)
                self.backends[stage] = getattr(self.runners[stage], "name", name)
        self.set_seed(self.s.seed)

    def _synthesis(self, G) -> Callable[..., torch.Tensor]:
        return lambda ws, style_delta=None: G.synthesis(ws, noise_mode=self.s.noise_mode, style_delta=style_delta)

    def network(self, stage: str) -> torch.nn.Module:
        """The module a backend of ``stage`` runs (what an accelerated backend exports)."""
        module = {"encode": self.encoder, "map": self.steerer.network, "synthesize": self.G,
                  "upscale": self.upscaler}[stage]
        if module is None:
            raise ValueError(f"the {self.steerer.kind} steerer has no network to accelerate; run map on torch")
        return module

    # -- replacing parts (renderer thread, between frames) ----------------------------------------------------
    def replace(self, *, generator=None, steerer: Steerer | None = None, runners: dict | None = None) -> None:
        """Put a new generator and/or steerer in. ``runners``: accelerated backends for their stages
        ("synthesize", "map"), already built and warmed up on the side; a replaced network without one runs on
        torch. Only swaps references and recomputes the source latent, so it fits between two frames."""
        runners = dict(runners or {})
        if steerer is not None:
            old, self.steerer = self.steerer, steerer.to(self.device)
            steerer.fixed_step = old.fixed_step
            old.close()
            if steerer.edits_styles != old.edits_styles and generator is None:
                self._use("synthesize", None)  # an exported generator has one input or the other; torch has both
            self.torch_runners["map"] = TorchBackend(self.steerer, self.device)
            self._use("map", runners.get("map"))
        if generator is not None:
            self.G = generator = generator.to(self.device)
            self.torch_runners["synthesize"] = TorchBackend(self._synthesis(generator), self.device)
            self._use("synthesize", runners.get("synthesize"))
            self.reactivity.use_generator(generator, self.s.truncation_psi)
            self.set_seed(self.seed)

    def use_torch(self, stage: str) -> None:
        """Run ``stage`` on its torch module from now on (the fault guard's fallback for a failing engine)."""
        self._use(stage, None)

    def _use(self, stage: str, runner) -> None:
        self.runners[stage] = runner if runner is not None else self.torch_runners[stage]
        self.backends[stage] = getattr(runner, "name", "torch")

    # -- controls (renderer thread, between frames) -----------------------------------------------------------
    def set_seed(self, seed: int) -> None:
        with torch.inference_mode():
            ws = self.G.mapping(self.G.z_from_seeds([seed]), truncation_psi=self.s.truncation_psi)
        self.set_source(ws, seed)

    def set_source(self, ws_src: torch.Tensor, seed: int) -> None:
        """The source latent [1, num_ws, w_dim] (and the seed it is filed under); ends any glide."""
        self.ws_src, self.seed = ws_src, int(seed)
        self.glide: SourceGlide | None = None

    def glide_to(self, ws: torch.Tensor, seconds: float = GLIDE_S) -> None:
        """Travel the source latent to ``ws`` [1, num_ws, w_dim] over ``seconds`` of frames (`livesound.live.glide`)."""
        self.glide = SourceGlide(self.ws_src, ws, seconds)

    def set_text(self, text: str | None) -> None:
        if not text:
            self.text_e = None
        elif self.clip is None:
            raise ValueError("text steering needs a CLIP model")
        else:
            with torch.inference_mode():
                self.text_e = self.clip.encode_text([text]).float().to(self.device)

    def set_text_groups(self, groups: tuple[str, ...]) -> None:
        unknown = set(groups) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown layer groups {sorted(unknown)}; groups are {', '.join(GROUPS)}")
        self.text_groups = tuple(groups)

    def set_smoothing(self, seconds: float) -> None:
        self.smoother.time_constant_s = float(seconds)

    # -- the stages -----------------------------------------------------------------------------------------
    def features(self, new_samples: np.ndarray) -> torch.Tensor:
        """Push new samples; the newest window as the encoder input [1, 1, 128, 512]."""
        self.stream.push(new_samples)
        self.hpss.update()                                                  # pulse/motion from the new frames
        self.change.update()                                                # a new sound: the window restarts
        spec = self.change.window(self.window_frames)                       # [128, n]
        spec = to_encoder_input(F.pad(spec, (0, PAPER_FRAMES - spec.shape[-1]))[None])
        return spec if self.device.type == "cpu" else spec.pin_memory().to(self.device, non_blocking=True)

    def encode(self, spec: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.runners["encode"](spec).float(), dim=-1)    # [1, 512] unit

    def smooth(self, e: torch.Tensor, dt: float, onset: float) -> torch.Tensor:
        return self.smoother.update(e, dt, max(onset, self.s.change_smoothing * self.change.envelope))

    def map(self, e: torch.Tensor, strength: float) -> torch.Tensor:
        k = torch.full((1,), float(strength), device=self.device)
        ws_src = self.reactivity.source(self.ws_src)                          # motion's walk, pulse's kick
        if self.text_e is not None:  # per-group embeddings: the torch steerer takes them, exported graphs not
            groups = {g: self.text_e if g in self.text_groups else e for g in GROUPS}
            return self.torch_runners["map"](ws_src, groups, k)
        return self.runners["map"](ws_src, e, k)                              # [1, num_ws, w_dim]

    def synthesize(self, ws: torch.Tensor) -> torch.Tensor:
        delta = self.steerer.style_delta  # the map stage's StyleSpace edit, when the steerer makes one
        if delta is None:
            return self.runners["synthesize"](ws)                             # [1, 3, R, R]
        return self.runners["synthesize"](ws, delta)

    def upscale(self, img: torch.Tensor) -> torch.Tensor:
        return self.runners["upscale"](img)                                   # [1, 3, scale*R, scale*R]

    def resize(self, img: torch.Tensor) -> torch.Tensor:
        return self.resizer(img)                                  # [1, 3, H, W] uint8, on img's device

    def to_rgb8(self, img: torch.Tensor) -> np.ndarray:
        """[1, 3, H, W] in [-1, 1] (or uint8 from ``resize``), quantised on the device, then the frame's one copy
        to the host (`livesound.live.host`) -> [H, W, 3] uint8."""
        x = img[0] if img.dtype == torch.uint8 else ((img[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return self.host(x.permute(1, 2, 0))

    # -- the recipe -----------------------------------------------------------------------------------------
    def hear(self, samples: np.ndarray, clock: StageClock) -> torch.Tensor:
        """New audio -> the newest window's unit embedding [1, D] (on a GPU: computed on the hearing stream and
        complete when returned)."""
        if self.hear_stream is None:
            spec = clock.run("features", self.features, samples)
            return clock.run("encode", self.encode, spec)
        with torch.cuda.stream(self.hear_stream):
            spec = clock.run("features", self.features, samples)
            e = clock.run("encode", self.encode, spec)
        self.hear_stream.synchronize()
        return e

    def draw(self, e: torch.Tensor, block: np.ndarray, dt: float, strength: float, clock: StageClock) -> Drawn:
        """The embedding and the audio since the previous frame (``block``, for the onset envelope) -> a frame.

        The onset envelope sees every sample of ``block``, so a click between two frames is never missed."""
        if e.is_cuda:  # made on the hearing stream: its memory must outlive this stream's use of it
            e.record_stream(torch.cuda.current_stream(e.device))
        level, onset, _ = self.envelope.update(block, dt)
        self.reactivity.step(dt, self.hpss.pulse, self.hpss.motion)
        k = self.reactivity.boosted(self.envelope.boosted(strength))        # onset and pulse boosts
        try:
            e_s = clock.run("smooth", self.smooth, e, dt, onset)
        except Exception:
            self.smoother.reset()  # a NaN in its state would poison every later frame
            raise
        if self.glide is not None:
            self.ws_src = self.glide.step(dt)
            if self.glide.done:
                self.glide = None
        ws = clock.run("map", self.map, e_s, k)
        img = clock.run("synthesize", self.synthesize, ws)
        if self.upscaler is not None:
            img = clock.run("upscale", self.upscale, img)
        if self.resizer is not None:
            img = clock.run("resize", self.resize, img)
        rgb = clock.run("to_rgb8", self.to_rgb8, img)
        return Drawn(rgb, float(level), float(onset), k, e_s)

    def frame(self, index: int, drawn: Drawn, audio_sample: int, stage_ms: dict, fps: float) -> Frame:
        return Frame(index, drawn.rgb, audio_sample, time.perf_counter(), stage_ms, drawn.level, drawn.onset,
                     drawn.strength, self.seed, fps, self.labels_for(drawn.embedding),
                     pulse=self.hpss.pulse, motion=self.hpss.motion, bands=self.hpss.bands)

    def labels_for(self, e: torch.Tensor, k: int = 3) -> list[tuple[str, float]]:
        """The steering's own names for ``e`` (a bank's nearest anchors and their weights) when it has any, else
        the ``labels`` setting's top ``k`` by CLIP cosine."""
        named = self.steerer.labels_for(e)
        if named or self.label_embs is None:
            return named
        sims = (e @ self.label_embs.T)[0]
        top = torch.topk(sims, min(k, sims.numel()))
        return [(self.s.labels[i], float(v)) for v, i in zip(top.values, top.indices)]


def run_fixed_step(pipeline: Pipeline, audio: np.ndarray, frames: int, hop_samples: int,
                   before_frame: Callable[[], float] | None = None) -> Iterator[Frame]:
    """Render ``frames`` frames from ``audio``, advancing exactly ``hop_samples`` per frame (no threads).

    Past the end of the audio, silence follows. Deterministic: the same input gives the same frames.
    ``before_frame`` (the rig's controls, `livesound.rig`) runs before each frame and returns its strength.
    """
    pipeline.times = StageTimes()
    pipeline.steerer.fixed_step = True  # background work (live optimisation) runs inline: reproducible frames
    clock = StageClock(pipeline.times)
    dt = hop_samples / pipeline.sample_rate
    strength = pipeline.s.strength
    for i in range(frames):
        if before_frame is not None:
            strength = before_frame()
        block = audio[i * hop_samples:(i + 1) * hop_samples]
        if block.size < hop_samples:
            block = np.pad(block, (0, hop_samples - block.size))
        stage_ms = clock.new_frame()
        e = pipeline.hear(block, clock)
        drawn = pipeline.draw(e, block, dt, strength, clock)
        yield pipeline.frame(i, drawn, (i + 1) * hop_samples, stage_ms, 1.0 / dt)
