"""``--steer optimize``: the paper's latent optimisation, run continuously toward the sound playing now.

The loss is the offline one (`livesound.offline.optimize`): for an offset ``d`` on the source latent,
``1 - cos(CLIP_image(G(w_src + d)), e) * exp(0.07) + l2 * ||d||^2``, the image reaching CLIP the paper's way
(x7 nearest upsampling, average pooling). Adam runs at a constant learning rate: the paper's schedule ramps down
toward a last step, and a performance has none. The frame shows ``w_src + strength x d``: at strength 1 the
picture the optimisation reached.

Threading contract
- Renderer thread (the steerer's call, once per frame): puts the newest (source latent, embedding) into the
  worker's latest-wins job slot and returns the source latent plus strength x the newest offset the worker has
  finished (zero until its first). It never waits for the worker.
- Optimiser worker (thread "livesound-optimizer", started on the first call): takes the newest job, runs
  ``steps_per_round`` Adam steps toward it, warm-started (its offset and Adam's moments carry over from one sound
  to the next), and puts a copy of the offset into a latest-wins slot. It alone touches the offset, the optimiser
  and the learning state.
- ``close()`` (end of the show, any thread): stops and joins the worker, then saves what was learned.
A worker that raises stops; the renderer's next call raises its error once (a counted fault of the ``map``
stage, that frame dropped) and the call after starts a fresh worker from the last offset.
Fixed-step mode (``fixed_step``, set by the fixed-step loop for headless files): there is no worker; each call
first runs ``fixed_steps`` steps inline, so the same file gives the same frames (each frame then pays for them).

Learning (``--learn FILE``): while one sound plays (its embedding within ``same_sound_cos`` of where it started),
the loss is watched; when it fell less than ``plateau_drop`` over the last ``plateau_steps`` steps the offset has
converged, and unless an anchor already lies within ``novel_cos`` of the sound it becomes a new anchor of the
bank (embedding, offset, "learned-<n>", `livesound.live.learn`), written atomically when the show ends.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from livesound.live.engine import LatestSlot
from livesound.live.learn import AnchorSink, LearnedAnchors
from livesound.live.steering import Steerer
from livesound.models.mapper import MapperConfig
from livesound.offline.optimize import AUDIO_SCALE, clip_image_embedding

log = logging.getLogger("livesound")


@dataclass
class OptimizeSettings:
    lr: float = 0.05                  # the paper's peak learning rate, held
    l2_lambda: float = 0.008          # the paper's
    steps_per_round: int = 2          # worker: steps between two published offsets
    fixed_steps: int = 1              # fixed-step mode: steps per frame, inline
    plateau_steps: int = 20           # --learn: converged when the loss fell less than plateau_drop over these
    plateau_drop: float = 0.002
    same_sound_cos: float = 0.995     # the target counts as one sound while within this cosine of its start
    novel_cos: float = 0.995          # ... and becomes an anchor only if no anchor is this close to it

    def __post_init__(self) -> None:
        if not self.lr > 0 or self.l2_lambda < 0 or min(self.steps_per_round, self.fixed_steps, self.plateau_steps) < 1:
            raise ValueError("lr must be positive, l2_lambda >= 0, steps_per_round, fixed_steps and plateau_steps >= 1")


class OptimizeSteer(Steerer):
    """w+ = w_src + strength x the offset the paper's loss is finding for the current sound (module docstring)."""

    kind = "optimize"

    def __init__(self, G, clip, settings: OptimizeSettings | None = None, sink: AnchorSink | None = None,
                 learn_path: str | Path | None = None, meaningful: bool = True):
        super().__init__(trained=meaningful)
        self._nets = (G, clip)         # a tuple, not submodules: the renderer owns G; here they are only called
        self.s = settings or OptimizeSettings()
        self.num_ws, self.w_dim, self.clip_dim = G.num_ws, G.w_dim, clip.embed_dim
        self.sink, self.learn_path = sink, learn_path
        self._groups = MapperConfig(num_ws=self.num_ws).group_slices
        self._offset: torch.Tensor | None = None      # [1, num_ws, w_dim], the worker's (or inline) variable
        self._opt: torch.optim.Adam | None = None
        self._jobs, self._results = LatestSlot(), LatestSlot()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._job_id = 0               # stamps the jobs (newest wins; the worker never queues)
        self.steps = 0                                 # steps run so far
        self.loss: float | None = None                 # of the newest step
        self.learned = 0
        self._target: torch.Tensor | None = None       # learning: the sound being followed, and its losses
        self._losses: list[float] = []
        self._settled = False
        self.error: BaseException | None = None

    def describe(self) -> str:
        learn = f"; learning into {Path(self.learn_path).name}" if self.learn_path else ""
        meaning = "" if self.trained else "; untrained CLIP: moves the picture, not by meaning"
        return f"optimize (the paper's loss, warm-started, lr {self.s.lr}{learn}{meaning})"

    def _apply(self, fn, *args, **kwargs):
        self._nets[1]._apply(fn, *args, **kwargs)  # CLIP follows the steerer to the pipeline's device (G goes itself)
        return super()._apply(fn, *args, **kwargs)

    # -- the renderer's call ----------------------------------------------------------------------------------
    def forward(self, ws: torch.Tensor, e: torch.Tensor | dict[str, torch.Tensor],
                strength: torch.Tensor) -> torch.Tensor:
        k = strength.to(ws.dtype).reshape(-1, 1, 1)
        if self.fixed_step:
            with torch.inference_mode(False), torch.enable_grad():
                self._run(ws[:1].clone(), self._targets(e), self.s.fixed_steps)
            return ws + k * self._offset.detach()
        if self.error is not None:  # counted as this frame's fault; the next frame starts a fresh worker
            error, self.error, self._worker = self.error, None, None
            raise RuntimeError(f"the optimiser worker failed and restarts: {error}") from error
        self._job_id += 1
        self._jobs.put((self._job_id, ws[:1].detach().clone(), self._detached(e)))
        self._start()
        offset = self._results.get()
        return ws if offset is None else ws + k * offset                   # [B, num_ws, w_dim]

    # -- the optimisation -------------------------------------------------------------------------------------
    def _targets(self, e) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """(unit embedding [1, D], layer mask [num_ws, 1] or None for all) per distinct embedding."""
        if not isinstance(e, dict):
            return [(F.normalize(e[:1].detach().clone().float(), dim=-1), None)]
        parts: list[tuple[torch.Tensor, torch.Tensor]] = []
        for group, emb in e.items():
            a, b = self._groups[group]
            emb = F.normalize(emb[:1].detach().clone().float(), dim=-1)
            mask = torch.zeros(self.num_ws, 1)
            mask[a:b] = 1
            for i, (other, m) in enumerate(parts):
                if torch.equal(other, emb):
                    parts[i] = (other, m + mask)
                    break
            else:
                parts.append((emb, mask))
        return parts

    @staticmethod
    def _detached(e):
        return {g: v.detach().clone() for g, v in e.items()} if isinstance(e, dict) else e.detach().clone()

    def _run(self, ws_src: torch.Tensor, targets, steps: int) -> None:
        """``steps`` Adam steps of the loss toward ``targets`` from ``ws_src``, warm-started (needs autograd)."""
        if self._offset is None:
            self._offset = torch.zeros_like(ws_src, requires_grad=True)
            self._opt = torch.optim.Adam([self._offset], lr=self.s.lr)
        d = self._offset
        G, clip = self._nets
        for _ in range(steps):
            img = G.synthesis(ws_src + d, noise_mode="const")                       # [1, 3, H, W]
            f = clip_image_embedding(clip, img)                                      # [1, D]
            terms = [1 - AUDIO_SCALE * (f * emb).sum() for emb, _ in targets]
            reg = self.s.l2_lambda * d.square().sum()
            if len(targets) == 1 and targets[0][1] is None:
                (grad,) = torch.autograd.grad(terms[0] + reg, d)
            else:  # each embedding's gradient only on its own layers (a text on some groups, sound on the rest)
                grad = torch.autograd.grad(reg, d, retain_graph=True)[0]
                for term, (_, mask) in zip(terms, targets):
                    grad = grad + torch.autograd.grad(term, d, retain_graph=True)[0] * mask
            self._opt.zero_grad(set_to_none=True)
            d.grad = grad
            self._opt.step()
            self.steps += 1
            self.loss = float(sum(t.detach() for t in terms)) / len(terms)
            self._track(targets[0][0][0], self.loss)

    def _track(self, e: torch.Tensor, loss: float) -> None:
        """Watch the loss while one sound plays; once it has converged, learn the offset (with a sink)."""
        if self._target is None or float(e @ self._target) < self.s.same_sound_cos:
            self._target, self._losses, self._settled = e, [], False
        self._losses.append(loss)
        if self._settled or not self._converged():
            return
        self._settled = True
        if self.sink is not None and self.sink.nearest(e) < self.s.novel_cos:
            label = self.sink.next_label()
            self.sink.add_anchor(e, self._offset.detach()[0], label)
            self.learned += 1
            log.info("livesound: learned anchor %s (loss %.4f after %d steps on this sound)", label, loss,
                     len(self._losses))

    # -- the worker -------------------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="livesound-optimizer", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                job = self._jobs.get()
                if job is None:
                    self._stop.wait(0.002)
                    continue
                _, ws, e = job
                self._run(ws.clone(), self._targets(e), self.s.steps_per_round)
                self._results.put(self._offset.detach().clone())
                if self._settled:  # converged on a steady sound: follow it at a walk, leave the CPU to the renderer
                    self._stop.wait(0.05)
        except Exception as e:  # noqa: BLE001 - handed to the renderer, which raises it as a stage fault
            log.exception("livesound: the optimiser worker failed: %s", e)
            self.error = e

    def _converged(self) -> bool:
        n = self.s.plateau_steps
        return len(self._losses) > n and self._losses[-n - 1] - self._losses[-1] < self.s.plateau_drop

    def close(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
        if self.sink is not None and self.learn_path is not None and self.learned:
            self.sink.save(self.learn_path)
            print(f"livesound live: learned {self.learned} new anchor(s); saved {self.learn_path}", file=sys.stderr)


def optimize_steerer(ctx) -> OptimizeSteer:
    """``--steer optimize`` for a ``livesound.live.steer_choice.SteerContext``; ``--learn FILE`` grows that bank."""
    if ctx.clip is None:
        raise ValueError("--steer optimize needs a CLIP model (the preset's, or --clip WEIGHTS)")
    G, opts = ctx.G, ctx.opts
    sink, learn_path = None, getattr(opts, "learn", None)
    if learn_path:
        from livesound.live.backends import fingerprint

        sink = LearnedAnchors.open(learn_path, fingerprint(G), G.num_ws, G.w_dim, ctx.encoder.embed_dim)
    return OptimizeSteer(G, ctx.clip, sink=sink, learn_path=learn_path, meaningful=ctx.clip.weights is not None)
