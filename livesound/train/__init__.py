"""Training: datasets and spectrogram cache, the shared loop (torchrun, checkpoints, resume), the encoder and
mapper trainers."""
