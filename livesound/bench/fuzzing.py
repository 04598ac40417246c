"""Hostile-file drills: mutate valid weights and audio files and check every reader's answer.

Each case is a valid seed file changed by one mutation: random bit flips, byte overwrites with boundary values,
truncations, cut or doubled spans, and format-aware edits (absurd declared shapes, sizes and lengths, deep
nesting, code-running pickles, tensors with stride 0 or overlapping strides that describe a giant over a few
bytes). A seed may also bring whole hostile variants of itself (``Seed.variants``): generators whose config and
tensors agree but are far larger than the file (stride-0 or shared-storage tensors), compression bombs. A reader
must either load the case or raise its clear error (CheckpointError, AudioError), quickly, without large
allocations, and without ever running code from the file: the code-running payloads would create a marker file,
whose absence ``run`` checks at the end. Each mutation's cases are counted with their worst time and worst
peak-memory step (``Report.worst``). Scenario drills that are not files (swap floods, corrupt engine-cache
entries) live in `livesound.bench.drills`.

The test suite runs a few hundred cases with a fixed seed; ``benchmarks/bench_fuzz.py`` runs thousands.
"""

from __future__ import annotations

import io
import json
import random
import resource
import struct
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from livesound.audio.io import AudioError
from livesound.weights.checkpoint import CheckpointError

INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF)
HUGE = 10**12
EDGE_CONFIGS = (  # the largest values the config checks allow (livesound.weights.fields bounds)
    {"resolution": 8192, "channels": [], "channel_base": 2**26, "channel_max": 65536},
    {"mapping_layers": 64, "w_dim": 8192, "z_dim": 8192},
    {"num_ws": 64, "w_dim": 8192, "clip_dim": 8192, "num_layers": 64},
)


@dataclass
class Seed:
    name: str
    path: Path
    read: Callable[[Path], object]   # the reader under test (a loader's one door)
    kind: str                        # "safetensors", "torchzip", "pickle", "wav", "audio"
    variants: dict[str, list[Path]] = field(default_factory=dict)  # mutation name -> whole hostile files


@dataclass
class Report:
    cases: int = 0
    loaded: int = 0
    clear_errors: int = 0
    other_failures: int = 0
    max_case_s: float = 0.0
    slowest_case: str = ""
    max_rss_growth_mb: float = 0.0
    biggest_rss_step: str = ""               # the case that raised the peak RSS most, and by how much
    code_ran: bool = False
    by_mutation: Counter = field(default_factory=Counter)
    worst: dict = field(default_factory=dict)  # mutation -> {"cases", "failures", "worst_s", "worst_rss_step_mb"}
    failures: list[str] = field(default_factory=list)   # the first few "other" outcomes, one line each

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.__dict__.items()}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------- mutations

def bit_flips(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 2, 4, 16))):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def boundary_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    i = rng.randrange(len(b))
    for j in range(i, min(len(b), i + rng.choice((1, 4, 8)))):
        b[j] = rng.choice(INTERESTING)
    return bytes(b)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(len(data))]


def cut_or_double(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randrange(1, 256))
    return data[:i] + data[j:] if rng.random() < 0.5 else data[:j] + data[i:j] + data[j:]


GENERIC = {"bit_flips": bit_flips, "boundary_bytes": boundary_bytes, "truncate": truncate,
           "cut_or_double": cut_or_double}


def safetensors_header(data: bytes, rng: random.Random, marker: Path) -> bytes:
    """Absurd declarations in a safetensors header: shapes, offsets, header length, config, nesting."""
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    names = [k for k in header if k != "__metadata__"]
    t = header[rng.choice(names)]
    how = rng.randrange(7)
    if how == 0:
        t["shape"] = [10**6, 10**6]
    elif how == 1:
        t["data_offsets"] = [0, HUGE]
    elif how == 2:
        return struct.pack("<Q", rng.choice((2**63, HUGE, len(data) + 1))) + data[8:]
    elif how == 3:
        t["dtype"] = rng.choice(("F64", "I8", "BOGUS"))
    elif how == 4:
        meta = header.setdefault("__metadata__", {})
        cfg = json.loads(meta.get("livesound_config", "{}"))
        key = rng.choice(sorted(cfg) or ["x"])
        cfg[key] = rng.choice((2**20, -1, 0, 1e308, "x" * 10, [1] * 1000, None))
        meta["livesound_config"] = json.dumps(cfg)
    elif how == 5:
        header.setdefault("__metadata__", {})["livesound_config"] = "[" * 100_000 + "]" * 100_000
    else:  # a config at the edge of its bounds: valid on its own, far larger than the file's tensors
        meta = header.setdefault("__metadata__", {})
        cfg = json.loads(meta.get("livesound_config", "{}"))
        meta["livesound_config"] = json.dumps(cfg | rng.choice(EDGE_CONFIGS))
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def _zip_replace(data: bytes, suffix: str, new: bytes | None = None, keep: int | None = None) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name in src.namelist():
            d = src.read(name)
            if name.endswith(suffix):
                d = new if new is not None else d[:keep]
            z.writestr(name, d)
    return out.getvalue()


def _tensor_pickle(numel: int, shape: tuple, stride: tuple) -> bytes:
    """torch's data.pkl for {"g_ema": {"w": tensor}}, with the storage size and shape declared as given."""
    import pickle
    from collections import OrderedDict

    import torch

    class _Storage:
        pass

    class _Tensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (_Storage(), 0, shape, stride, False, OrderedDict())

    class _Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if isinstance(obj, _Storage) else None

    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump({"g_ema": {"w": _Tensor()}})
    return buf.getvalue()


def _code_pickle(marker: Path) -> bytes:
    """A pickle that would run ``os.system("touch MARKER")`` if unpickled without an allow-list."""
    cmd = f"touch {marker}".encode()
    return b"\x80\x02cos\nsystem\n" + b"X" + struct.pack("<I", len(cmd)) + cmd + b"\x85R."


def _record_floats(data: bytes) -> int:
    """Floats in the torch zip's storage record "0" (a declaration torch accepts only at its real size)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return next(i.file_size for i in z.infolist() if i.filename.endswith("/data/0")) // 4


def lying_strides(data: bytes, rng: random.Random, marker: Path) -> bytes:
    """A torch zip whose one tensor is a consistent-looking giant over a real storage record: stride 0
    ([10^6, 10^6] over one float), or overlapping strides (every row the same few floats)."""
    n = _record_floats(data)
    shape, stride = rng.choice((((10**6, 10**6), (0, 0)), ((4096, 4096, 3, 3), (0, 1, 0, 0)),
                                ((n // 2, n // 2), (1, 1)), ((10**5, n), (1, 1))))  # the last runs past n
    return _zip_replace(data, "data.pkl", _tensor_pickle(n, shape, stride))


def torch_zip(data: bytes, rng: random.Random, marker: Path) -> bytes:
    """A torch zip whose pickle declares huge storages or shapes, runs code, or whose records are cut."""
    pkl = next(n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.endswith("data.pkl"))
    how = rng.randrange(5)
    if how == 0:
        return _zip_replace(data, "data.pkl", _tensor_pickle(HUGE, (10**6, 10**6), (10**6, 1)))
    if how == 1:
        return _zip_replace(data, "data.pkl", _tensor_pickle(4, (10**6, 10**6), (10**6, 1)))
    if how == 2:
        return _zip_replace(data, pkl.rsplit("/", 1)[0] + "/data.pkl", _code_pickle(marker))
    if how == 3:
        return _zip_replace(data, "/data/0", keep=rng.randrange(8))
    return _declare_huge_record(data)


def _declare_huge_record(data: bytes) -> bytes:
    """Patch one record's sizes in the zip's local and central headers to claim ~4 GB."""
    b = bytearray(data)
    z = zipfile.ZipFile(io.BytesIO(data))
    info = next(i for i in z.infolist() if "/data/" in i.filename)
    struct.pack_into("<II", b, info.header_offset + 18, 0xFFFFFFF0, 0xFFFFFFF0)
    at = bytes(b).find(b"PK\x01\x02")
    while at != -1:
        name_len = struct.unpack_from("<H", b, at + 28)[0]
        if bytes(b[at + 46:at + 46 + name_len]).decode(errors="replace") == info.filename:
            struct.pack_into("<II", b, at + 20, 0xFFFFFFF0, 0xFFFFFFF0)
            break
        at = bytes(b).find(b"PK\x01\x02", at + 4)
    return bytes(b)


def network_pickle(data: bytes, rng: random.Random, marker: Path) -> bytes:
    """NVIDIA-style pickles made hostile: code-running globals, huge declared lengths, deep nesting."""
    how = rng.randrange(5)
    if how == 0:
        return _code_pickle(marker)
    if how == 1:  # builtins.eval of code that would write the marker
        src = f"open({str(marker)!r}, 'w').write('ran')".encode()
        return b"\x80\x02cbuiltins\neval\nX" + struct.pack("<I", len(src)) + src + b"\x85R."
    if how == 2:  # a bytes object declared 100 GB long
        return b"\x80\x04\x8e" + struct.pack("<Q", 10**11) + data[:64]
    if how == 3:
        return b"\x80\x04" + b"]" * rng.choice((10_000, 200_000)) + b"."
    i = rng.randrange(len(data))  # a huge tensor shape spliced into a real pickle's integer operand
    return data[:i] + b"J" + struct.pack("<i", 2**31 - 1) + data[i + 2:]


def wav_header(data: bytes, rng: random.Random, marker: Path) -> bytes:
    """Absurd WAV header fields: channels, rate, bits, chunk sizes."""
    b = bytearray(data)
    fmt, dat = data.find(b"fmt "), data.find(b"data")
    field_at, size, values = rng.choice([
        (fmt + 10, "<H", (0, 65535, 3)),            # channels
        (fmt + 12, "<I", (0, 1, 2**31 - 1)),        # sample rate
        (fmt + 22, "<H", (0, 7, 64, 65535)),        # bits per sample
        (dat + 4, "<I", (0, 0xFFFFFFFF, 1)),        # data chunk size
        (4, "<I", (0, 0xFFFFFFFF)),                 # RIFF size
        (fmt + 4, "<I", (0, 0xFFFFFFF0, 2)),        # fmt chunk size
    ])
    struct.pack_into(size, b, field_at, rng.choice(values))
    return bytes(b)


def pickled_views(data: bytes, rng: random.Random, marker: Path) -> bytes:
    """A network pickle whose G_ema is a tensor view with stride 0 or overlapping strides: four to a few
    thousand stored bytes describing up to 10^12 elements."""
    import pickle

    import torch

    view = rng.choice((lambda: torch.zeros(1).expand(10**6, 10**6),
                       lambda: torch.zeros(8192, dtype=torch.float16).as_strided((4096, 4096), (1, 1)),
                       lambda: torch.zeros(1).expand(512, 512, 3, 3)))()
    return pickle.dumps({"G_ema": view, "G": view}, protocol=rng.choice((2, 4)))


AWARE = {"safetensors": safetensors_header, "torchzip": torch_zip, "pickle": network_pickle, "wav": wav_header}
# Lying tensor layouts, for the formats that can express them (safetensors stores dense bytes only).
LAYOUTS = {"torchzip": lying_strides, "pickle": pickled_views}


# -------------------------------------------------------------------------------------------------- run

def run(seeds: list[Seed], cases: int, seed: int, workdir: Path, marker: Path, progress=None) -> Report:
    """``cases`` mutated files across ``seeds`` (round robin), each read once; the answers counted."""
    rng = random.Random(seed)
    report = Report()
    originals = [s.path.read_bytes() for s in seeds]
    for s in seeds:  # warm-up: imports and first-call caches are not what we measure
        s.read(s.path)
    rss0, biggest = peak_rss_mb(), 0.0
    for i in range(cases):
        k = i % len(seeds)
        s, data = seeds[k], originals[k]
        names = (list(GENERIC) + ([s.kind] * 2 if s.kind in AWARE else []) +
                 (["strides"] if s.kind in LAYOUTS else []) + sorted(s.variants))
        mutation = rng.choice(names)
        if mutation in s.variants:
            mutated = rng.choice(s.variants[mutation]).read_bytes()
        elif mutation == "strides":
            mutated = LAYOUTS[s.kind](data, rng, marker)
        else:
            mutated = AWARE[mutation](data, rng, marker) if mutation in AWARE else GENERIC[mutation](data, rng)
        case = workdir / f"case{s.path.suffix}"
        case.write_bytes(mutated)
        t0, peak0 = time.perf_counter(), peak_rss_mb()
        outcome = _outcome(s.read, case)
        dt, step = time.perf_counter() - t0, peak_rss_mb() - peak0
        report.cases += 1
        report.by_mutation[f"{s.name}/{mutation}"] += 1
        w = report.worst.setdefault(mutation, {"cases": 0, "failures": 0, "worst_s": 0.0, "worst_rss_step_mb": 0.0})
        w["cases"] += 1
        w["failures"] += outcome not in ("loaded", "clear")
        w["worst_s"], w["worst_rss_step_mb"] = max(w["worst_s"], dt), max(w["worst_rss_step_mb"], step)
        if dt > report.max_case_s:
            report.max_case_s, report.slowest_case = dt, f"#{i} {s.name}/{mutation}: {outcome[:120]}"
        if step > 1.0 and step >= biggest:
            biggest, report.biggest_rss_step = step, f"#{i} {s.name}/{mutation}: +{step:.0f} MB, {outcome[:120]}"
        if outcome == "loaded":
            report.loaded += 1
        elif outcome == "clear":
            report.clear_errors += 1
        else:
            report.other_failures += 1
            if len(report.failures) < 20:
                report.failures.append(f"{s.name}/{mutation}: {outcome}")
        if progress is not None:
            progress(i + 1)
    report.max_rss_growth_mb = peak_rss_mb() - rss0
    report.code_ran = marker.exists()
    return report


def _outcome(read: Callable[[Path], object], path: Path) -> str:
    try:
        read(path)
    except (CheckpointError, AudioError) as e:
        return "clear" if "\n" not in str(e) else f"multi-line message: {str(e)[:200]!r}"
    except Exception as e:  # noqa: BLE001 - the point: anything else is a finding, recorded in one line
        return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
    return "loaded"
