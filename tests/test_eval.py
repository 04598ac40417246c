"""Evaluations on planted cases whose accuracy is known exactly, and the dataset layouts they read."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO
from synthetic_datasets import (
    CLASSES,
    write_csv,
    write_esc50,
    write_folder,
    write_us8k,
    write_vggsound,
)

from livesound.eval.linear_probe import fit_logistic, linear_probe
from livesound.eval.zero_shot import zero_shot
from livesound.train.datasets import Dataset, DatasetError, assign_folds, load_dataset


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "livesound", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=300)


# ------------------------------------------------------------------------------------------ planted cases

def test_zero_shot_accuracy_on_a_planted_case():
    rng = np.random.default_rng(0)
    text = np.linalg.qr(rng.standard_normal((16, 3)))[0].T        # 3 orthonormal class directions [3, 16]
    targets = [0, 1, 2, 0, 0, 1, 2, 2, 1, 0]
    folds = ["1"] * 4 + ["2"] * 6
    predicted = list(targets)
    predicted[5] = 2                                             # fold 2: two of six clips misclassified
    predicted[9] = 1
    emb = np.stack([3 * text[p] + 0.1 * rng.standard_normal(16) for p in predicted])  # scaled: cosines count
    report = zero_shot(emb, targets, text, list(CLASSES), folds)
    assert report["folds"] == {"1": {"n": 4, "accuracy": 1.0}, "2": {"n": 6, "accuracy": 4 / 6}}
    assert report["mean"] == pytest.approx((1 + 4 / 6) / 2) and report["pooled"] == pytest.approx(0.8)
    assert report["per_class"]["high_beep"] == {"n": 3, "accuracy": pytest.approx(2 / 3)}
    assert report["per_class"]["drone"] == {"n": 4, "accuracy": pytest.approx(3 / 4)}
    assert report["per_class"]["white_noise"] == {"n": 3, "accuracy": 1.0}


def test_linear_probe_accuracy_on_a_planted_case():
    """Five folds of separable clusters; in each fold one clip of class 0 sits on class 1's centre, so the
    probe trained on the other folds must get exactly that one wrong: 11/12 per fold (the planted points in
    the training folds are outvoted by the class-1 cloud around them)."""
    rng = np.random.default_rng(1)
    centres = 3 * np.eye(3, 8)
    emb, targets, folds = [], [], []
    for fold in range(1, 6):
        for c in range(3):
            for i in range(4):
                planted = c == 0 and i == 0      # exactly at class 1's centre, where any linear fit of the
                noise = 0.2 * rng.standard_normal(8)  # class-1 cloud around it says "class 1"
                emb.append(centres[1] if planted else centres[c] + noise)
                targets.append(c)
                folds.append(str(fold))
    report = linear_probe(np.stack(emb), targets, list(CLASSES), folds, l2=0.1)
    assert [f["accuracy"] for f in report["folds"].values()] == pytest.approx([11 / 12] * 5)
    assert report["per_class"]["drone"]["accuracy"] == pytest.approx(15 / 20)
    assert report["per_class"]["high_beep"]["accuracy"] == 1.0 and report["mean"] == pytest.approx(11 / 12)


def test_logistic_regression_reaches_its_optimum():
    """The fitted weights make the penalised loss's gradient vanish (what L-BFGS promises)."""
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((60, 5)), rng.integers(0, 3, 60)
    probe = fit_logistic(x, y, 3, l2=0.1)
    w, b = probe.weight.clone().requires_grad_(True), probe.bias.clone().requires_grad_(True)
    xt = torch.as_tensor(x)
    loss = torch.nn.functional.cross_entropy(xt @ w + b, torch.as_tensor(y)) + 0.05 * w.square().sum()
    loss.backward()
    assert w.grad.abs().max() < 1e-6 and b.grad.abs().max() < 1e-6


def test_probe_needs_held_out_folds():
    with pytest.raises(ValueError, match="at least two folds"):
        linear_probe(np.eye(3), [0, 1, 2], list(CLASSES), [None] * 3)


# ------------------------------------------------------------------------------------------------ layouts

def test_every_layout_loads_with_its_labels_and_folds(tmp_path):
    folder = load_dataset(write_folder(tmp_path / "folder", per_class=2))
    assert folder.layout == "folder" and len(folder.clips) == 6 and folder.classes == sorted(CLASSES)
    esc = load_dataset(write_esc50(tmp_path / "esc"))
    assert esc.layout == "esc50" and esc.folds == ["1", "2", "3", "4", "5"] and len(esc.clips) == 15
    us = load_dataset(write_us8k(tmp_path / "us8k"))
    assert us.layout == "us8k" and us.folds == [str(i) for i in range(1, 11)]
    assert all(c.path.parent.name == f"fold{c.fold}" for c in us.clips)
    with_frames = load_dataset(tmp_path, csv_path=write_csv(tmp_path / "csv", per_class=2, frames=True))
    assert with_frames.layout == "csv" and all(c.frame is not None and c.frame.is_file() for c in with_frames.clips)
    with_folds = load_dataset(tmp_path, csv_path=write_csv(tmp_path / "csvf", per_class=2, folds=2))
    assert with_folds.folds == ["1", "2"]
    vgg_csv = write_vggsound(tmp_path / "vgg")
    with pytest.raises(DatasetError, match=r"gone0000000_000010\.flac: listed in .* not found"):
        load_dataset(tmp_path / "vgg", csv_path=vgg_csv)
    vgg = load_dataset(tmp_path / "vgg", csv_path=vgg_csv, skip_missing=True)
    assert vgg.layout == "vggsound" and len(vgg.clips) == 6 and vgg.folds == ["test", "train"]
    assert "high beep" in vgg.classes
    made = assign_folds(folder, 2)
    assert made.folds == ["1", "2"] and all(sum(c.label == lab and c.fold == "1" for c in made.clips) == 1
                                            for lab in CLASSES)


def test_bad_datasets_fail_with_one_clear_error(tmp_path):
    root = write_esc50(tmp_path / "esc")
    (root / "audio" / "3-3010-A-1.wav").unlink()
    with pytest.raises(DatasetError, match=r"3-3010-A-1\.wav: listed in .*esc.* but not found"):
        load_dataset(root)
    ds = load_dataset(write_us8k(tmp_path / "us8k"))
    with pytest.raises(DatasetError, match="unknown label.*siren"):
        ds.select(labels=["siren"])
    with pytest.raises(DatasetError, match="no fold 11"):
        ds.select(folds=["11"])
    holes = Dataset([c for c in ds.clips if not (c.fold == "1" and c.label == "drone")], "us8k", ds.source)
    with pytest.raises(DatasetError, match=r"no clips in folds \['1'\] with labels \['drone'\]"):
        holes.select(folds=["1"], labels=["drone"])
    bad = tmp_path / "bad.csv"
    bad.write_text("a.wav,\n")
    with pytest.raises(DatasetError, match=r"bad\.csv: line 1: rows must be file,label"):
        load_dataset(tmp_path, csv_path=bad)
    r = run("eval", "zero-shot", "--data", str(root), "--preset", "demo")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "3-3010-A-1.wav: listed in" in r.stderr and "not found" in r.stderr


# -------------------------------------------------------------------------------------------- the commands

@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    from livesound.models.audio_encoder import (
        AudioEncoderConfig,
        build_audio_encoder,
        save_audio_encoder,
    )

    path = tmp_path_factory.mktemp("enc") / "tiny.safetensors"
    save_audio_encoder(build_audio_encoder(AudioEncoderConfig(backbone="test_convnext"), seed=3), path)
    return path


def evaluate(*args) -> int:
    from livesound.cli import main

    return main(["eval", *map(str, args)])


def test_eval_commands_on_esc50_and_us8k_layouts(tmp_path, tiny_encoder):
    """Fold-wise reports with the published figures beside them; the zero-shot numbers are the ones the
    library gives on `livesound embed`'s embeddings of the same files (the same stated preprocessing)."""
    from livesound.models.audio_encoder import load_audio_encoder
    from livesound.models.clip import ClipModel
    from livesound.offline.embed import EmbedOptions, embed_files

    esc = write_esc50(tmp_path / "esc")
    assert evaluate("zero-shot", "--data", esc, "--encoder", tiny_encoder, "--preset", "demo",
                    "--out", tmp_path / "zs.json") == 0
    report = json.loads((tmp_path / "zs.json").read_text())
    assert list(report["folds"]) == ["1", "2", "3", "4", "5"] and report["n"] == 15
    md = (tmp_path / "zs.md").read_text()
    assert "0.578" in md and "centre 864 frames" in md and "| 3 | 3 |" in md
    assert "| paper Table 3: CLIP-based audio encoder, zero-shot | 0.622 |" in md  # Table 3 is zero-shot
    assert "| paper Table 3: ResNet50 classifier, supervised (reference) | 0.668 |" in md
    assert "- resampler: soundfile decoding" in md and "Kaiser-windowed sinc" in md
    assert "- spectrograms: computed for this run in float32 (no cache)" in md

    ds = load_dataset(esc)
    emb = embed_files(load_audio_encoder(tiny_encoder), EmbedOptions(files=[str(c.path) for c in ds.clips]))
    text = ClipModel.tiny(seed=20220614).encode_text([c.replace("_", " ") for c in ds.classes]).numpy()
    expected = zero_shot(emb, ds.targets(), text, ds.classes, [c.fold for c in ds.clips])
    assert report["folds"] == expected["folds"] and report["mean"] == pytest.approx(expected["mean"])

    us = write_us8k(tmp_path / "us8k")
    assert evaluate("linear-probe", "--data", us, "--encoder", tiny_encoder, "--l2", 0.1,
                    "--out", tmp_path / "lp.json") == 0
    report = json.loads((tmp_path / "lp.json").read_text())
    assert len(report["folds"]) == 10 and set(report["per_class"]) == set(CLASSES)
    assert report["published"] == {"paper repository's table: released encoder, logistic regression": 0.668}
    md = (tmp_path / "lp.md").read_text()
    assert "0.731" not in md and "Table 3" not in md  # zero-shot figures stay with zero-shot
    assert evaluate("zero-shot", "--data", us, "--encoder", tiny_encoder, "--preset", "demo", "--cache",
                    tmp_path / "cache", "--out", tmp_path / "zs_us.json") == 0
    md = (tmp_path / "zs_us.md").read_text()
    assert "| paper Table 3: CLIP-based audio encoder, zero-shot | 0.731 |" in md and "0.457" in md
    assert f"- spectrograms: the float16 cache in {tmp_path / 'cache'}" in md


def test_linear_probe_of_a_label_subset_prints_the_paper_table1_shape(tmp_path, tiny_encoder):
    """``--labels`` probes only those labels, and the Markdown adds Table 1's shape: the labels across, this
    run's per-label accuracy (the report's own numbers) and the paper's row, empty and said to be so."""
    root = write_folder(tmp_path / "data", per_class=4)
    assert evaluate("linear-probe", "--data", root, "--encoder", tiny_encoder, "--labels", "white_noise,drone",
                    "--kfold", 2, "--out", tmp_path / "lp.json") == 0
    report = json.loads((tmp_path / "lp.json").read_text())
    assert list(report["per_class"]) == ["white_noise", "drone"] and report["n"] == 8
    assert report["labels"] == ["white_noise", "drone"] and report["published"] == {}
    md = (tmp_path / "lp.md").read_text()
    table = md[md.index("### In the shape of the paper's Table 1"):]
    acc = [report["per_class"][c]["accuracy"] for c in ("white_noise", "drone")]
    assert "| | white noise | drone | mean |" in table
    assert f"| **this run** | {acc[0]:.3f} | {acc[1]:.3f} | {sum(acc) / 2:.3f} |" in table
    assert "| paper Table 1 | n/a | n/a | n/a |" in table and "giggling, sobbing, nose blowing" in table
    assert "not found in the copies of the paper" in table
    assert evaluate("linear-probe", "--data", root, "--encoder", tiny_encoder, "--labels", "siren",
                    "--out", tmp_path / "bad.json") == 1


def test_mapper_eval_reports_similarity_and_time(tmp_path):
    assert evaluate("mapper", "--preset", "demo", "--prompts", "rain", "--seeds", 0, "--steps", 3, "--repeats", 2,
                    "--out", tmp_path / "m.json") == 0
    report = json.loads((tmp_path / "m.json").read_text())
    (row,) = report["rows"]
    assert row["target"] == "text:rain" and row["mapper_ms_per_frame"] > 0 and row["optimisation_s"] > 0
    assert all(-1 <= row[k] <= 1 for k in ("sim_source", "sim_mapper", "sim_optimisation"))
    assert row["sim_mapper"] != row["sim_source"]  # the mapper moved the picture
    assert "| mapper |" in (tmp_path / "m.md").read_text()


def test_zero_shot_from_the_library_writes_what_it_returns(tmp_path, tiny_encoder):
    """``run_zero_shot`` without the CLI: the files hold exactly the report and Markdown it returns, and its
    notes (the dataset, the untrained CLIP) come back through ``report``; a rerun replaces both files whole."""
    from livesound.eval.reports import ZeroShotOptions, run_zero_shot

    esc = write_esc50(tmp_path / "esc")
    lines: list[str] = []
    opts = ZeroShotOptions(data=esc, encoder=tiny_encoder, preset="demo", templates="sound",
                           out=tmp_path / "out" / "zs.json")
    written = run_zero_shot(opts, report=lines.append)
    assert written.json_path == tmp_path / "out" / "zs.json" and written.markdown_path == tmp_path / "out" / "zs.md"
    assert json.loads(written.json_path.read_text()) == written.report
    assert written.markdown_path.read_text() == written.markdown
    assert written.report["encoder"] == str(tiny_encoder) and len(written.report["templates"]) > 1
    assert lines == [load_dataset(esc).summary(), "note: preset 'demo' has an untrained CLIP; pass --clip "
                                                  "WEIGHTS for real results"]
    again = run_zero_shot(opts)
    assert again.report == written.report and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["zs.json",
                                                                                                      "zs.md"]
    with pytest.raises(ValueError, match="templates must be one of paper, sound"):
        run_zero_shot(ZeroShotOptions(data=esc, encoder=tiny_encoder, preset="demo", templates="poem",
                                      out=tmp_path / "bad.json"))


# --------------------------------------------------------------------------- Table 2: the latent agreement

def test_code_and_offset_cosines_on_known_answers():
    """Edits at right angles from a source 10 units long: the offsets' cosine is 0, the codes' 100/101 --
    near the paper's 0.99 although the edits share nothing. Parallel and opposite edits: 1 and -1."""
    from livesound.eval.latent_agreement import code_cosine, offset_cosine

    src = torch.zeros(2, 3, dtype=torch.float64)
    src[:, 0] = 10.0 / 2 ** 0.5                                   # |src| = 10 over both layers
    right, up = src.clone(), src.clone()
    right[0, 1] += 1.0
    up[1, 2] += 1.0
    assert offset_cosine(right, up, src) == pytest.approx(0.0, abs=1e-12)
    assert code_cosine(right, up) == pytest.approx(100 / 101, abs=1e-12)
    twice = src.clone()
    twice[0, 1] += 2.0
    assert offset_cosine(right, twice, src) == pytest.approx(1.0)
    assert code_cosine(right, twice) == pytest.approx(102 / (101 * 104) ** 0.5)
    back = src.clone()
    back[0, 1] -= 1.0
    assert offset_cosine(right, back, src) == pytest.approx(-1.0)
    assert offset_cosine(src, up, src) is None and code_cosine(torch.zeros(2, 3), up) is None


def test_table2_says_which_measure_the_paper_figures_match():
    from livesound.eval.latent_agreement import format_table
    from livesound.eval.paper_tables import table2

    def stats(codes, offsets):
        return {m: {"n": 1, "undefined": 0, "mean": v, "std": 0.0} for m, v in (("codes", codes), ("offsets", offsets))}

    labels = {"people giggling": stats(0.98, 0.40), "people sobbing": stats(0.99, 0.30),
              "wind": stats(0.95, 0.70), "dog barking": stats(0.5, 0.5)}
    rows = table2(labels)
    assert rows == [{"group": "vocal", "labels": 2, "paper": 0.99, "codes": pytest.approx(0.985),
                     "offsets": pytest.approx(0.35), "nearer": "codes"},
                    {"group": "environmental", "labels": 1, "paper": 0.76, "codes": 0.95, "offsets": 0.70,
                     "nearer": "offsets"}]
    text = format_table({"labels": labels, "overall": stats(0.9, 0.5), "paper_table2": rows})
    assert "paper Table 2, vocal attributes: 0.99; this run over 2 label(s): codes 0.9850, offsets 0.3500; " \
           "nearer: codes" in text
    assert "names the cosine between the latent codes" in text


@pytest.mark.parametrize("what", ["zero-shot", "linear-probe", "mapper"])
def test_every_eval_flag_reaches_the_options_with_the_library_defaults(what):
    """Each flag of an evaluation is a field of its options; a command line of defaults gives the library's."""
    from dataclasses import fields

    from test_train_encoder import subparser

    from livesound.cli import build_parser
    from livesound.cli import train as cli_train
    from livesound.eval.reports import (
        LinearProbeOptions,
        MapperEvalOptions,
        ZeroShotOptions,
    )

    cls, build, given = {"zero-shot": (ZeroShotOptions, cli_train.zero_shot_options, {"data": "d"}),
                         "linear-probe": (LinearProbeOptions, cli_train.linear_probe_options, {"data": "d"}),
                         "mapper": (MapperEvalOptions, cli_train.mapper_eval_options, {})}[what]
    flags = {a.dest for a in subparser("eval", what)._actions if a.dest != "help"}
    assert flags <= {f.name for f in fields(cls)}, flags - {f.name for f in fields(cls)}
    argv = ["eval", what, *(x for k, v in given.items() for x in (f"--{k}", v))]
    assert build(build_parser().parse_args(argv)) == cls(**given)
