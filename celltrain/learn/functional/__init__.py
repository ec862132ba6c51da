"""Learning rules' arithmetic as pure functions (tensors and numbers in, terms out)."""

from celltrain.learn.functional.stdp import window_pairs

__all__ = ["window_pairs"]
