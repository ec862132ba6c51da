"""Suite-wide settings: one torch thread (on 2 shared cores small matmuls are much slower with
two threads competing with the other test processes)."""

import torch

torch.set_num_threads(1)
