"""Suite-wide settings.

- One intra-op thread: the tests use tiny tensors that gain nothing from threads, and on
  a shared 2-core machine every parallel op of a multi-threaded pool can stall for a
  scheduler time slice (seen: 8 ms per 6x6 max-pool).
- Comparison plots as PNG only (``$CVLOSS_PLOT_FORMATS``): drawing each plot again as PDF
  and SVG costs about a minute over the suite. The tests of the vector formats
  (tests/report/test_latex_and_runs.py, tests/run/test_concurrent.py) ask for them.
"""
import os

import torch

torch.set_num_threads(1)
os.environ.setdefault("CVLOSS_PLOT_FORMATS", "png")
