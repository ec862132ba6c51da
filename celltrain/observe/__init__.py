"""Observation of a running network: reducers, monitors and the monitor pool.

- Reducers (:mod:`celltrain.observe.reducers`) fold one observation per time step into state
  of bounded size: :class:`Trace`, :class:`History`, :class:`Count`, :class:`Sum`,
  :class:`Mean`, :class:`EMA`, :class:`Latest`, :class:`TimeSince`.
- A :class:`Monitor` records one dotted attribute of a module after each of its forward calls
  into a reducer; :meth:`Monitor.partial` makes a :class:`MonitorConstructor`.
- A :class:`MonitorPool` holds the monitors of named observed objects (cells) and shares one
  monitor between requests that agree on layer, attribute, name, constructor and tags.

Nothing here depends on Lightning; a plain loop can drive it.
"""

from celltrain.observe.monitor import Monitor, MonitorConstructor
from celltrain.observe.pool import MonitorPool, resolve_target
from celltrain.observe.reducers import (
    EMA,
    Count,
    EventFold,
    FoldReducer,
    History,
    Latest,
    Mean,
    Reducer,
    Sum,
    TimeSince,
    Trace,
    Window,
)

__all__ = [
    "EMA",
    "Count",
    "EventFold",
    "FoldReducer",
    "History",
    "Latest",
    "Mean",
    "Monitor",
    "MonitorConstructor",
    "MonitorPool",
    "Reducer",
    "Sum",
    "TimeSince",
    "Trace",
    "Window",
    "resolve_target",
]
