"""Which device a command runs its networks on: ``--device auto|cpu|cuda|cuda:N``, one reading for every command.

``auto`` is the first CUDA GPU where torch sees one, else the CPU (as ``train``, ``eval`` and ``optimize`` read
it). Asking for a GPU that is not there is ``DeviceUnavailable``: the command line prints its one line and exits
with status 2, before any network is built. Importing this module loads no torch (``livesound --help`` stays
instant); ``check_device_name`` validates the spelling without it, for argparse.
"""

from __future__ import annotations

import re

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


class DeviceUnavailable(RuntimeError):
    """The device asked for does not exist on this machine (no CUDA GPU, or no GPU with that index)."""


def is_device_name(text: str | None) -> bool:
    """True for ``auto``, ``cpu``, ``cuda`` and ``cuda:N``: a compute device, not (say) an audio input's name."""
    return text is not None and _DEVICE.fullmatch(text.strip().lower()) is not None


def check_device_name(text: str) -> str:
    """argparse ``type=``: the spelling normalised, or ValueError (argparse turns it into a usage error)."""
    if not is_device_name(text):
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, not {text!r}")
    return text.strip().lower()


def resolve_device(text: str | None = "auto"):
    """``torch.device`` for ``text`` (None means ``auto``); ``DeviceUnavailable`` where the GPU asked for is
    missing, ValueError for a spelling that is no device."""
    import torch

    name = check_device_name(text or "auto")
    cuda = torch.cuda.is_available()
    if name == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not cuda:
        raise DeviceUnavailable(f"--device {name}: no CUDA GPU here (torch {torch.__version__} sees none); "
                                "use --device cpu or auto")
    index = int(name.partition(":")[2] or torch.cuda.current_device())
    if index >= torch.cuda.device_count():
        raise DeviceUnavailable(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                                f"numbered from 0")
    return torch.device("cuda", index)


def device_label(device) -> str:
    """A short name for result files and logs: ``cpu`` or the GPU's name (``NVIDIA H100 80GB HBM3``)."""
    import torch

    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
