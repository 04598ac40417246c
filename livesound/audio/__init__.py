"""Audio input: decoding files (``io``), the capture ring buffer (``ring``) and live sources (``sources``).

Nothing here imports sounddevice at import time: PortAudio is loaded only when a microphone is opened or
devices are listed, so ``import livesound.audio`` works on machines without it.
"""
