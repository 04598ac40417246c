"""Checkpoint hot swap: a new generator or mapper loads on a side thread and takes over between two frames.

Threading: ``request`` starts a loader thread (any thread may call it); the loader reads and checks the
checkpoint (`load_generator` / `load_mapper`, the safe single doors) and puts the built network into a
latest-wins slot. ``apply_pending`` runs on the renderer thread before a frame: it only swaps references and
recomputes the source latent with the new mapping network (well under a frame), so the picture goes on with the
old networks while the new ones load, and the audio threads never notice. A failed load is logged and leaves the
running networks as they were. A swapped stage runs on torch from then on, whatever its backend was (an
exported graph is built from one network and cannot take another's weights; export the new one to accelerate it).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

log = logging.getLogger("livesound")


class CheckpointSwap:
    def __init__(self, stages):
        self.stages = stages
        self._pending: tuple[str, object, str] | None = None
        self._lock = threading.Lock()
        self.loading: threading.Thread | None = None
        self.swaps = 0
        self.last_error: str | None = None
        self.last_apply_ms = 0.0

    def request(self, kind: str, path: str) -> threading.Thread:
        """Start loading ``path`` as the ``kind`` ("generator" or "mapper") on a side thread."""
        if kind not in ("generator", "mapper"):
            raise ValueError(f"can swap a generator or a mapper, not {kind!r}")
        if not Path(path).is_file():
            raise ValueError(f"{path}: no such {kind} checkpoint")
        t = threading.Thread(target=self._load, args=(kind, path), name=f"livesound-load-{kind}", daemon=True)
        self.loading = t
        t.start()
        return t

    def _load(self, kind: str, path: str) -> None:
        try:
            net = self._build(kind, path)
        except Exception as e:  # noqa: BLE001 - a bad checkpoint leaves the running networks alone; reported
            self.last_error = f"{path}: {e}"
            log.error("livesound swap: %s %s not loaded: %s", kind, path, e)
            return
        with self._lock:
            self._pending = (kind, net, path)
        log.info("livesound swap: %s %s loaded; taking over at the next frame", kind, path)

    def _build(self, kind: str, path: str):
        import torch

        st = self.stages
        with torch.inference_mode():
            if kind == "generator":
                from livesound.models.stylegan2 import load_generator

                G = load_generator(path)
                mapper = st.mapper_module
                if (G.num_ws, G.w_dim) != (mapper.num_ws, mapper.w_dim):
                    raise ValueError(f"the generator has w+ [{G.num_ws}, {G.w_dim}]; the running mapper takes "
                                     f"[{mapper.num_ws}, {mapper.w_dim}]")
                return G
            from livesound.models.mapper import load_mapper

            mapper = load_mapper(path).eval()
            if (mapper.num_ws, mapper.w_dim) != tuple(st.ws_src.shape[1:]):
                raise ValueError(f"the mapper takes w+ [{mapper.num_ws}, {mapper.w_dim}]; the generator has "
                                 f"{list(st.ws_src.shape[1:])}")
            if mapper.clip_dim != st.mapper_module.clip_dim:
                raise ValueError(f"the mapper takes {mapper.clip_dim}-d embeddings; the encoder gives "
                                 f"{st.mapper_module.clip_dim}-d")
            return mapper

    def apply_pending(self) -> bool:
        """Renderer thread, between frames: install a loaded network; True if one took over."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return False
        t0 = time.perf_counter()
        kind, net, path = pending
        use_networks(self.stages, **{kind: net})
        self.swaps += 1
        self.last_apply_ms = (time.perf_counter() - t0) * 1e3
        log.info("livesound swap: now running %s %s (%.1f ms between frames)", kind, path, self.last_apply_ms)
        return True


def use_networks(stages, generator=None, mapper=None) -> None:
    """Point the stages at a new generator and/or mapper (renderer thread, torch backends)."""
    from livesound.live.engine import TorchBackend

    if mapper is not None:
        stages.backends["map"] = "torch"
        stages.mapper_module = mapper
        stages.mapper_torch = stages.mapper = TorchBackend(lambda ws, e, k: mapper.edit(ws, e, k))
    if generator is not None:
        stages.backends["synthesize"] = "torch"
        stages.G = generator
        stages.synthesis = TorchBackend(lambda ws: generator.synthesis(ws, noise_mode=stages.s.noise_mode))
        stages.reactivity.use_generator(generator, stages.s.truncation_psi)
        stages.set_seed(stages.seed)
