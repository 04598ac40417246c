"""Audio input: decoding files (``io``), the capture ring buffer (``ring``), file and synthetic sources
(``sources``) and the microphone (``mic``, capturing in a child process: ``capture_child``).

Nothing here imports sounddevice at import time: PortAudio is loaded only when devices are listed or in the
capture child, so ``import livesound.audio`` works on machines without it.
"""
