"""Suite-wide settings.

- One intra-op thread: the tests use tiny tensors that gain nothing from threads, and on
  a shared 2-core machine every parallel op of a multi-threaded pool can stall for a
  scheduler time slice (seen: 8 ms per 6x6 max-pool).
- ``$CVLOSS_CACHE`` in a temporary folder (below).
- Comparison plots as PNG only (``$CVLOSS_PLOT_FORMATS``): drawing each plot again as PDF
  and SVG costs about a minute over the suite. The tests of the vector formats
  (tests/report/test_latex_and_runs.py, tests/run/test_concurrent.py) ask for them.
"""
import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("CVLOSS_PLOT_FORMATS", "png")


@pytest.fixture(autouse=True, scope="session")
def _cvloss_cache_home(tmp_path_factory):
    """``$CVLOSS_CACHE`` in a temporary folder for the whole run: adoption records and the
    caches of data cvloss does not write into (dataset folders of the tests' own) never
    land in the user's cache. Tests that look at it set their own."""
    before = os.environ.get("CVLOSS_CACHE")
    os.environ["CVLOSS_CACHE"] = str(tmp_path_factory.mktemp("cvloss-cache"))
    yield
    if before is None:
        os.environ.pop("CVLOSS_CACHE", None)
    else:
        os.environ["CVLOSS_CACHE"] = before
