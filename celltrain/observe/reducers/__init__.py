"""Reducers: fold one observation per time step into state of bounded size.

A reducer is an :class:`~torch.nn.Module` whose ``forward(observation, dt)`` folds the
observation of ONE time step (any shape ``(*S)``, typically ``(B, *shape)``) into its state;
``peek()`` returns the current value (``None`` before the first observation) and ``clear()``
goes back to "no observation". Memory never grows with the number of steps observed.

State conventions shared by every reducer:

- State lives in ordinary (persistent) buffers, so ``.to()``, ``state_dict()`` and checkpoints
  keep it, together with the number of folded steps (stored as the module's extra state). The
  buffers are lazily sized by the first observation; a state dict holding state of any shape
  can be loaded into a reducer whatever it holds (even nothing).
- After the first observation every observation must have the same shape until ``clear()``;
  otherwise ``forward`` raises ``ValueError`` naming the expected and the given shape.
- State is replaced out of place (``self.value = new``), so state created under
  ``torch.inference_mode()`` (Lightning's validation) never needs an in-place update later. The
  ring buffer of :class:`History` is the one in-place writer (O(1) per step); it copies its
  buffer once when it was created under inference mode and is written outside of it.
- Floating point state takes the observation's dtype; non floating point observations (bool
  spikes, integers) give state in ``torch.get_default_dtype()``. :class:`Count` counts in
  ``torch.int64``; :class:`Latest` and :class:`History` keep the observation's dtype. A
  :class:`Trace` or :class:`EMA` that decays by less than
  :data:`~celltrain.utils.filters.SLOW_FRACTION` per step holds float32 (or lower) state in
  float64, where a per-step decay keeps its rate.
- Time is in milliseconds: ``dt`` is the length of the step being folded. Reducers that need it
  (:class:`Trace`, :class:`TimeSince`) raise ``ValueError`` when it is ``None``.
- ``run(observations, dt)`` folds ``T`` consecutive steps ``(T, *S)`` at once, with the
  same result as ``T`` calls of ``forward`` (up to float rounding); :class:`Trace`,
  :class:`Count`, :class:`Sum`, :class:`Latest` and :class:`History` do it without a loop per
  step. This is how monitors record a multi-step :meth:`~celltrain.neural.Layer.run`; the
  reducer then keeps the window (:meth:`FoldReducer.window`) for rules that learn from it.

A new reducer subclasses :class:`FoldReducer` (one state tensor, one :meth:`FoldReducer.fold`
method) or :class:`Reducer` (state declared with :meth:`Reducer.add_state`).
"""

from celltrain.observe.reducers.base import EventFold, FoldReducer, Reducer, Window, float_dtype
from celltrain.observe.reducers.events import Count, TimeSince, Trace
from celltrain.observe.reducers.history import History
from celltrain.observe.reducers.stats import EMA, Latest, LerpFold, Mean, Sum

__all__ = [
    "EMA",
    "Count",
    "EventFold",
    "FoldReducer",
    "History",
    "Latest",
    "LerpFold",
    "Mean",
    "Reducer",
    "Sum",
    "TimeSince",
    "Trace",
    "Window",
    "float_dtype",
]
