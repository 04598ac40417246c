"""Valid seed files for the hostile-file drills (tests/test_fuzz.py, benchmarks/bench_fuzz.py): tiny checkpoints in
every format livesound reads, written by the format writers of conftest, and short audio files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from conftest import nvidia_state, rosinality_state, write_nvidia, write_rosinality

from livesound.audio.io import load_audio
from livesound.bench.fuzzing import Seed
from livesound.models.mapper import MapperConfig, build_mapper, load_mapper, save_mapper
from livesound.models.stylegan2 import convert_generator, load_generator

NV_KW = dict(z_dim=12, w_dim=16, c_dim=0, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 2},
             synthesis_kwargs={"channel_base": 64, "channel_max": 8, "conv_clamp": 256, "architecture": "skip"})


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
    return [Seed("rosinality.pt", rosi, load_generator, "torchzip"),
            Seed("nvidia.pkl", nv, load_generator, "pickle"),
            Seed("generator.safetensors", own, load_generator, "safetensors"),
            Seed("mapper.safetensors", mapper, load_mapper, "safetensors"),
            Seed("pcm16.wav", folder / "tone16.wav", read_audio, "wav"),
            Seed("pcm24.wav", folder / "tone24.wav", read_audio, "wav"),
            Seed("flac", folder / "tone.flac", read_audio, "audio"),
            Seed("ogg", folder / "tone.ogg", read_audio, "audio")]
