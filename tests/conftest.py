"""Suite-wide settings: one torch thread (on 2 shared cores small matmuls are much slower with
two threads competing with the other test processes), and shared fixtures."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def float64():
    """Default dtype float64 for the test, restored after it: window and per-step paths then
    agree to ~1e-14, so no threshold comparison flips from float32 rounding."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
