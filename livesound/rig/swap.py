"""Checkpoint hot swap: a new generator or mapper loads on a side thread and takes over between two frames.

Threading: ``request`` (any thread) hands the path to the one loader thread, starting it if none runs; while
one load is in flight, newer requests replace each other (latest wins, ``superseded`` counts the replaced), so a
flood of swap messages costs one thread and one load at a time. The loader reads and checks the
checkpoint (`load_generator` / `load_mapper`, the safe single doors) and puts the built network into a
latest-wins slot. ``apply_pending`` runs on the renderer thread before a frame: it only swaps references and
recomputes the source latent with the new mapping network (well under a frame), so the picture goes on with the
old networks while the new ones load, and the audio threads never notice. A failed load is logged and leaves the
running networks as they were. A stage on ONNX Runtime or TensorRT stays there: the new network is exported
through the same cache the stage was built with (`livesound.live.backends.make_backend`) before it hands over,
so a swap never drops a stage back to the slower torch path. The takeover goes through the pipeline's one public
call for it, ``Pipeline.replace``. The export runs in a child process: ONNX export
holds the GIL for up to ~0.2 s at a time, which in a thread would stall the renderer for several frames; a
child costs a second of start-up and stalls nothing. A child that runs past ``export_timeout_s`` is killed and
the swap fails with one line.

Paths: with ``allowed_dirs`` (the rig passes the models folder and every ``--osc-allow-path``), only files inside
those folders (symbolic links resolved) are loaded: an OSC sender names a checkpoint, not any readable file.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from livesound.live.backends import make_backend
from livesound.live.build import steerer_for_mapper
from livesound.models.mapper import load_mapper
from livesound.models.stylegan2 import load_generator
from livesound.rig.control import RateLimitedLog

log = logging.getLogger("livesound")


EXPORT_TIMEOUT_S = 600.0  # a 1024 px generator exports in about a minute on a laptop CPU


class CheckpointSwap:
    def __init__(self, pipeline, allowed_dirs: list[str | Path] | None = None,
                 export_timeout_s: float = EXPORT_TIMEOUT_S):
        self.pipeline = pipeline
        self.allowed_dirs = None if allowed_dirs is None else [Path(d).expanduser().resolve() for d in allowed_dirs]
        self.export_timeout_s = export_timeout_s
        self._pending: tuple | None = None
        self._lock = threading.Lock()
        self._next: tuple[str, str] | None = None   # the newest request waiting for the loader
        self.loading: threading.Thread | None = None
        self.swaps = 0
        self.superseded = 0
        self.last_error: str | None = None
        self.last_apply_ms = 0.0
        self._paths: dict[str, str] = {}
        self.errors = RateLimitedLog(log)

    def check(self, kind: str, path: str) -> Path:
        """The checkpoint ``path`` resolved, or ValueError (a wrong kind, no such file, outside the allowed
        folders)."""
        if kind not in ("generator", "mapper"):
            raise ValueError(f"can swap a generator or a mapper, not {kind!r}")
        resolved = Path(path).expanduser().resolve()
        if self.allowed_dirs is not None and not any(resolved.is_relative_to(d) for d in self.allowed_dirs):
            raise ValueError(f"{path}: outside the folders checkpoints may be swapped from "
                             f"({', '.join(map(str, self.allowed_dirs))}; add one with --osc-allow-path DIR)")
        if not resolved.is_file():
            raise ValueError(f"{path}: no such {kind} checkpoint")
        return resolved

    def request(self, kind: str, path: str) -> threading.Thread:
        """Load ``path`` as the ``kind`` ("generator" or "mapper") on the loader thread (returned); a request
        made while one loads waits for it, replacing any request that was waiting."""
        self.check(kind, path)
        with self._lock:
            if self._next is not None:
                self.superseded += 1
            self._next = (kind, str(path))
            if self.loading is None or not self.loading.is_alive():
                self.loading = threading.Thread(target=self._loader, name="livesound-swap-loader", daemon=True)
                self.loading.start()
            return self.loading

    def _loader(self) -> None:
        while True:
            with self._lock:
                if self._next is None:
                    self.loading = None
                    return
                (kind, path), self._next = self._next, None
            self._paths[kind] = path
            self._load(kind, path)

    def _load(self, kind: str, path: str) -> None:
        try:
            net = self._build(kind, path)
            runner = self._accelerate(kind, net)
        except Exception as e:  # noqa: BLE001 - a bad checkpoint leaves the running networks alone; reported
            self.last_error = f"{path}: {e}"
            self.errors.log(logging.ERROR, "load", "livesound swap: %s %s not loaded: %s", kind, path, str(e)[:300])
            return
        with self._lock:
            self._pending = (kind, net, runner, path)
        log.info("livesound swap: %s %s loaded; taking over at the next frame", kind, path)

    def _build(self, kind: str, path: str):
        """The new generator, or a steerer around the new mapper, checked against the running networks."""
        pipe = self.pipeline
        with torch.inference_mode():
            if kind == "generator":
                G = load_generator(path)
                steer = pipe.steerer
                if (G.num_ws, G.w_dim) != (steer.num_ws, steer.w_dim):
                    raise ValueError(f"the generator has w+ [{G.num_ws}, {G.w_dim}]; the running {steer.kind} "
                                     f"takes [{steer.num_ws}, {steer.w_dim}]")
                steer.check_generator(G)
                # One frame here, on the side: a fresh module's first forward pays allocations and lazy setup
                # that would otherwise land on the renderer as a long frame.
                G.synthesis(G.mapping(G.z_from_seeds([0]), truncation_psi=pipe.s.truncation_psi),
                            noise_mode=pipe.s.noise_mode)
                return G
            mapper = load_mapper(path).eval()
            if (mapper.num_ws, mapper.w_dim) != tuple(pipe.ws_src.shape[1:]):
                raise ValueError(f"the mapper takes w+ [{mapper.num_ws}, {mapper.w_dim}]; the generator has "
                                 f"{list(pipe.ws_src.shape[1:])}")
            if mapper.clip_dim != pipe.steerer.clip_dim:
                raise ValueError(f"the mapper takes {mapper.clip_dim}-d embeddings; the encoder gives "
                                 f"{pipe.steerer.clip_dim}-d")
            steerer = steerer_for_mapper(mapper, trained=True)
            steerer(torch.zeros(1, mapper.num_ws, mapper.w_dim), torch.zeros(1, mapper.clip_dim),
                    torch.ones(1))  # warm up on the side, as for the generator
            return steerer

    def _accelerate(self, kind: str, net):
        """The stage's backend for ``net`` when the stage runs accelerated, else None (torch)."""
        stage = {"generator": "synthesize", "mapper": "map"}[kind]
        backend = self.pipeline.backends.get(stage, "torch")
        if backend == "torch":
            return None
        device = str(self.pipeline.device)
        # Fills the cache (in a child, with a timeout); the make_backend call below hits it.
        export_in_child(kind, self._paths[kind], stage, backend, device, self.export_timeout_s)
        module = (net if kind == "generator" else net.network).to(device)  # the pipeline's device, as replace() will
        runner = make_backend(stage, backend, module, self.pipeline.backend_threads, device)
        # A new session's first run allocates and initialises its kernels: pay it here, not on the renderer.
        if kind == "generator":
            runner(torch.zeros(1, net.num_ws, net.w_dim))
        else:
            runner(torch.zeros(1, net.num_ws, net.w_dim), torch.zeros(1, net.clip_dim), torch.ones(1))
        return runner

    def apply_pending(self) -> bool:
        """Renderer thread, between frames: install a loaded network; True if one took over."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return False
        t0 = time.perf_counter()
        kind, net, runner, path = pending
        stage = {"generator": "synthesize", "mapper": "map"}[kind]
        if kind == "generator":
            self.pipeline.replace(generator=net, runners={stage: runner})
        else:
            self.pipeline.replace(steerer=net, runners={stage: runner})
        self.swaps += 1
        self.last_apply_ms = (time.perf_counter() - t0) * 1e3
        log.info("livesound swap: now running %s %s (%.1f ms between frames)", kind, path, self.last_apply_ms)
        return True


def export_in_child(kind: str, path: str, stage: str, backend: str, device: str = "cpu",
                    timeout_s: float = EXPORT_TIMEOUT_S) -> None:
    """Build ``backend``'s cached graph (and engine) for the checkpoint in a child process (see the module)."""
    try:
        r = subprocess.run([sys.executable, "-m", "livesound.rig.swap", kind, path, stage, backend, device],
                           capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:  # run() has killed and reaped the child
        raise RuntimeError(f"exporting the new {kind} for {backend} took longer than {timeout_s:g} s; "
                           "stopped it") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exporting the new {kind} for {backend} failed: {last}")


def _export_main(kind: str, path: str, stage: str, backend: str, device: str = "cpu") -> None:
    import os

    os.nice(19)               # the live process keeps the CPU; the export takes what is left
    torch.set_num_threads(1)
    net = load_generator(path) if kind == "generator" else load_mapper(path).eval()
    make_backend(stage, backend, net.to(device), device=device)


if __name__ == "__main__":
    _export_main(*sys.argv[1:6])
