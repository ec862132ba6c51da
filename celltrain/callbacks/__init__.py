"""Lightning callbacks for local learning, each with one job:

- :class:`MonitorMode`: monitors record in training batches only.
- :class:`ApplyUpdates`: combine pending updates across ranks and apply them after batches.
- :class:`LogMonitors`: rates, weight / threshold / trace histograms, rasters and receptive
  fields to the logger.
"""

from celltrain.callbacks.apply_updates import ApplyUpdates
from celltrain.callbacks.log_monitors import LogMonitors
from celltrain.callbacks.monitor_mode import MonitorMode

__all__ = ["ApplyUpdates", "LogMonitors", "MonitorMode"]
