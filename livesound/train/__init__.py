"""Training: datasets and spectrogram cache, what a run reads (``inputs``), the shared loop (torchrun,
checkpoints, resume), and the two trainers with their entry points ``encoder.train_encoder`` and
``mapper.train_mapper``."""
