"""Evaluation: each measure its own module working on plain arrays and networks; ``reports`` runs them from
options (``run_zero_shot``, ``run_linear_probe``, ``run_mapper_eval``) and writes JSON + Markdown reports."""
