"""Valid seed files for the hostile-file drills (tests/test_fuzz.py, benchmarks/bench_fuzz.py): tiny checkpoints in
every format livesound reads, written by the format writers of conftest, and short audio files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from conftest import nvidia_state, rosinality_state, write_nvidia, write_rosinality

from livesound.audio.io import load_audio
from livesound.bench.fuzzing import Seed
from livesound.models.mapper import MapperConfig, build_mapper, load_mapper, save_mapper
from livesound.models.stylegan2 import convert_generator, load_generator

NV_KW = dict(z_dim=12, w_dim=16, c_dim=0, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 2},
             synthesis_kwargs={"channel_base": 64, "channel_max": 8, "conv_clamp": 256, "architecture": "skip"})


def stride0(*shape, dtype=torch.float32) -> torch.Tensor:
    """One stored value viewed as ``shape`` (stride 0 on every dimension): a giant in a few bytes."""
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
    if not shape:
        return torch.tensor(0.01, dtype=dtype)
    return torch.full((1,) * len(shape), 0.01, dtype=dtype).expand(*shape)


def consistent_giants(folder: Path, marker: Path) -> dict[str, list[Path]]:
    """Generators whose config and tensors agree, but whose tensors describe far more than the file holds."""
    out: dict[str, list[Path]] = {"rosinality": [], "nvidia": []}
    for w in (256, 4096):
        sd = rosinality_state(16, 8, 2, {4: w, 8: w, 16: w}, fill=stride0)
        out["rosinality"].append(write_rosinality(folder / f"rosi_giant_{w}.pt", sd))
    sd = rosinality_state(16, 8, 2, {4: 128, 8: 128, 16: 128}, seed=1)  # honest views, all over one storage
    pool = torch.randn(max(v.numel() for v in sd.values()))
    shared = {k: v if "kernel" in k or v.ndim == 0 else pool[:v.numel()].view(v.shape) for k, v in sd.items()}
    out["rosinality"].append(write_rosinality(folder / "rosi_shared.pt", shared))
    for w, dtype in ((256, torch.float32), (4096, torch.float16)):
        sd = nvidia_state(16, 12, 16, 2, 16 * w, w, fill=lambda *s, d=dtype: stride0(*s, dtype=d))
        out["nvidia"].append(write_nvidia(folder / f"nv_giant_{w}.pkl", sd, NV_KW | {
            "synthesis_kwargs": NV_KW["synthesis_kwargs"] | {"channel_base": 16 * w, "channel_max": w}}, marker))
    return out


def audio_bombs(folder: Path) -> list[Path]:
    """Silence that FLAC stores in a few bytes per block: 8 channels of a minute (a few kilobytes, 21 MB of
    float32 decoded), and 20 minutes at 8 kHz (past the default duration bound)."""
    paths = []
    for name, seconds, channels, sr in (("bomb8ch.flac", 60, 8, 44100), ("bomb_long.flac", 1200, 1, 8000)):
        block = np.zeros((sr * 10, channels), np.float32)
        with sf.SoundFile(str(folder / name), "w", sr, channels, format="FLAC") as f:
            for _ in range(seconds // 10):
                f.write(block)
        paths.append(folder / name)
    return paths


def make_seeds(folder: Path, marker: Path) -> list[Seed]:
    folder.mkdir(parents=True, exist_ok=True)
    rosi = write_rosinality(folder / "rosi.pt", rosinality_state(16, 8, 2, {4: 8, 8: 8, 16: 4}, seed=1))
    nv = write_nvidia(folder / "nv.pkl", nvidia_state(16, 12, 16, 2, 64, 8, seed=2), NV_KW, marker)
    own = convert_generator(rosi, folder / "gen.safetensors")
    mapper = save_mapper(build_mapper(MapperConfig(num_ws=6, w_dim=8, clip_dim=8, num_layers=2), seed=0),
                         folder / "mapper.safetensors")
    t = np.arange(4096) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(folder / "tone16.wav", tone, 44100, subtype="PCM_16")
    sf.write(folder / "tone24.wav", np.stack([tone, tone], 1), 48000, subtype="PCM_24")
    sf.write(folder / "tone.flac", tone, 44100)
    sf.write(folder / "tone.ogg", tone, 44100)
    read_audio = load_audio
    giants = consistent_giants(folder, marker)
    return [Seed("rosinality.pt", rosi, load_generator, "torchzip", {"giant": giants["rosinality"]}),
            Seed("nvidia.pkl", nv, load_generator, "pickle", {"giant": giants["nvidia"]}),
            Seed("generator.safetensors", own, load_generator, "safetensors"),
            Seed("mapper.safetensors", mapper, load_mapper, "safetensors"),
            Seed("pcm16.wav", folder / "tone16.wav", read_audio, "wav"),
            Seed("pcm24.wav", folder / "tone24.wav", read_audio, "wav"),
            Seed("flac", folder / "tone.flac", read_audio, "audio", {"bomb": audio_bombs(folder)}),
            Seed("ogg", folder / "tone.ogg", read_audio, "audio")]
