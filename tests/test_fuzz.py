"""Hostile files: a few hundred mutated checkpoints and audio files (fixed seed); each loads or gives the clear
error, quickly, with no large allocation, and never runs code from the file. Hostile networks and broken caches:
swap floods and corrupt engine-cache entries (`livesound.bench.drills`), a few cases each."""

from __future__ import annotations

import logging

import pytest
from fuzz_seeds import make_seeds

from livesound.bench.drills import run_drills
from livesound.bench.fuzzing import run


@pytest.mark.filterwarnings("ignore")
def test_mutated_files_load_or_give_the_clear_error(tmp_path, marker):
    seeds = make_seeds(tmp_path / "seeds", marker)
    report = run(seeds, cases=300, seed=11, workdir=tmp_path, marker=marker)
    assert report.cases == 300
    assert report.other_failures == 0, "\n".join(report.failures)
    assert not report.code_ran and not marker.exists()
    assert report.clear_errors > 100 and report.loaded > 10  # both answers were exercised
    assert report.max_case_s < 5.0, report.max_case_s      # bounded time (generous: a shared CI machine)
    assert report.max_rss_growth_mb < 300, report.max_rss_growth_mb
    for family in ("strides", "giant", "bomb"):              # lying tensors, consistent giants, compression bombs
        w = report.worst[family]
        assert w["cases"] >= 3 and w["worst_s"] < 3.0 and w["worst_rss_step_mb"] < 100, (family, w)


@pytest.mark.filterwarnings("ignore")
def test_swap_floods_and_corrupt_cache_entries(tmp_path, caplog):
    caplog.set_level(logging.CRITICAL, logger="livesound")
    drills = run_drills(cases=3, seed=5, workdir=tmp_path)
    flood, cache = drills["swap_flood"], drills["corrupt_cache"]
    assert flood["cases"] == cache["cases"] == 3
    assert flood["failures"] == [] and cache["failures"] == [], drills
    assert flood["max_extra_threads"] <= 1                   # one loader thread per 50-message burst
    assert flood["worst_s"] < 60 and cache["worst_s"] < 120
