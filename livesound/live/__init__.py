"""The live side: per-frame smoothing of the embedding, onset envelopes, and (later) the pipeline and window.

Importing this package loads neither Qt nor PortAudio; the Qt window lives in its own module.
"""
