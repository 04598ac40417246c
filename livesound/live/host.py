"""The one copy a frame makes from the compute device to host memory.

A frame stays on the pipeline's device from the encoder to the 8-bit image; ``HostFrames`` then copies the
[R, R, 3] uint8 image to the host once, and that host memory *is* the frame the window paints, the recorder
encodes and video out sends (the NumPy array keeps the tensor behind it alive). On a GPU the copy lands in
pinned (page-locked) memory, which the GPU writes by DMA at full bus speed; torch's caching host allocator
hands a frame's pinned block back for a later frame once every reference to the frame is gone, so there is no
page-locking per frame and no frame is overwritten while the window still paints it. On the CPU the copy is the
one that lays the channels-last image out contiguously.

``copies`` counts them, so tests (and the curious) can check there is exactly one a frame.
"""

from __future__ import annotations

import numpy as np
import torch


class HostFrames:
    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.copies = 0

    def __call__(self, rgb: torch.Tensor) -> np.ndarray:
        """``rgb`` [R, R, 3] uint8 on the device (a view is fine) -> a host array of its own memory."""
        if rgb.device.type == "cuda":
            host = torch.empty(rgb.shape, dtype=rgb.dtype, pin_memory=True)
            host.copy_(rgb, non_blocking=True)
            torch.cuda.current_stream(rgb.device).synchronize()  # the frame is complete before anyone reads it
        else:
            host = rgb.clone(memory_format=torch.contiguous_format)
        self.copies += 1
        return host.numpy()
