"""The bottom layer: argument checks, exponential filters, spike casts and the autograd-free
decorator, shared by every other layer. It imports nothing else of celltrain."""

from celltrain.utils.checks import (
    batched,
    finite,
    name_of,
    non_negative,
    positive,
    reduction_of,
    shape_of,
)
from celltrain.utils.filters import (
    SLOW_FRACTION,
    decay_fraction,
    decay_powers,
    decayed,
    exponential_filter,
    state_dtype,
)
from celltrain.utils.gradient import gradient_free
from celltrain.utils.spikes import spike_values, spikes_as

__all__ = [
    "SLOW_FRACTION",
    "batched",
    "decay_fraction",
    "decay_powers",
    "decayed",
    "exponential_filter",
    "finite",
    "gradient_free",
    "name_of",
    "non_negative",
    "positive",
    "reduction_of",
    "shape_of",
    "spike_values",
    "spikes_as",
    "state_dtype",
]
