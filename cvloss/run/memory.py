"""Peak memory of one trial, measured where the platform allows and labelled how.

* CUDA: ``torch.cuda.max_memory_allocated`` of the trial's device, reset at the trial's
  start (the tensors PyTorch allocated; the caching allocator's reserve is not counted);
* CPU on Linux: the process's peak resident set (``VmHWM`` in ``/proc/self/status``),
  reset at the trial's start by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0);
* elsewhere, or where the reset is refused: ``ru_maxrss``, the process peak since it
  started -- an upper bound for every trial after the first, and labelled so.
"""
from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _vm_hwm_kib() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class PeakMemory:
    """``start()`` at the trial's start, ``read()`` at its end: ``(MiB, how)``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset_ok = False

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.reset_ok = True
            return
        try:
            _CLEAR.write_text("5")
            self.reset_ok = _vm_hwm_kib() is not None
        except OSError:
            self.reset_ok = False

    def read(self) -> tuple[float, str]:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20, "cuda max allocated"
        if self.reset_ok:
            kib = _vm_hwm_kib()
            if kib is not None:
                return kib / 1024, "process peak RSS, reset per trial"
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        mib = peak / 2**20 if sys.platform == "darwin" else peak / 1024
        return mib, "process peak RSS since start (not reset)"
