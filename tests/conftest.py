"""Suite-wide settings. One intra-op thread: the tests use tiny tensors that gain nothing
from threads, and on a shared 2-core machine every parallel op of a multi-threaded
pool can stall for a scheduler time slice (seen: 8 ms per 6x6 max-pool)."""
import torch

torch.set_num_threads(1)
