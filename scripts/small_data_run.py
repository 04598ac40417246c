"""The small-data run of docs/training.md: 80 ESC-50-layout clips of four synthetic texture classes (5 s each),
folds 1-4 trained with ``train-encoder`` (batch 16, 10 epochs: 40 steps), zero-shot accuracy on fold 5.

    python scripts/small_data_run.py OUT_DIR BACKBONE [train-encoder flags...]
    python scripts/small_data_run.py /tmp/small test_resnet                                   # the defaults
    python scripts/small_data_run.py /tmp/small test_resnet --optimizer sgd --cycle-steps 2000  # the old ones
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the synthetic dataset writer

from synthetic_datasets import FOUR_CLASSES, write_esc50  # noqa: E402

from livesound.cli import main  # noqa: E402
from livesound.eval.zero_shot import embed_clips, zero_shot  # noqa: E402
from livesound.models.audio_encoder import load_audio_encoder  # noqa: E402
from livesound.models.clip import ClipModel  # noqa: E402
from livesound.train.datasets import SpecCache, label_text, load_dataset  # noqa: E402


def run(root: Path, backbone: str, flags: list[str]) -> float:
    data = write_esc50(root / "esc", per_fold=4, classes=FOUR_CLASSES, seconds=5.0)
    out = root / f"run-{backbone}-{'-'.join(f.lstrip('-') for f in flags) or 'defaults'}"
    t0 = time.monotonic()
    if main(["train-encoder", "--preset", "demo", "--backbone", backbone, "--device", "cpu", "--threads", "2",
             "--quiet", "--data", str(data), "--folds", "1,2,3,4", "--batch", "16", "--epochs", "10",
             "--workers", "0", "--checkpoint-every", "0", "--run-dir", str(out),
             "--out", str(out / "enc.safetensors"), *flags]) != 0:
        raise SystemExit(1)
    held = load_dataset(data).select(folds=["5"])
    text = ClipModel.tiny(seed=20220614).encode_text([label_text(c) for c in held.classes]).numpy()  # the demo's
    emb = embed_clips(load_audio_encoder(out / "enc.safetensors"), [c.path for c in held.clips], SpecCache(None))
    accuracy = zero_shot(emb, held.targets(), text, held.classes, [None] * len(held.clips))["mean"]
    print(f"{backbone} {' '.join(flags) or '(defaults)'}: held-out zero-shot accuracy {accuracy:.3f} "
          f"(chance 0.25), trained in {time.monotonic() - t0:.0f} s")
    return accuracy


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    run(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
