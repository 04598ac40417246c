"""Evaluation measures: each module one measure, as library functions the CLI calls."""
