"""Hostile files: a few hundred mutated checkpoints and audio files (fixed seed); each loads or gives the clear
error, quickly, with no large allocation, and never runs code from the file."""

from __future__ import annotations

import pytest
from fuzz_seeds import make_seeds

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
