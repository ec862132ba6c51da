"""Monitor and MonitorConstructor of celltrain.observe."""

import copy
import gc
import math
import pickle
import weakref

import pytest
import torch
from torch import nn

from celltrain.observe import Count, History, Mean, Monitor, MonitorConstructor, Sum, Trace


class Population(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.spike = torch.zeros(size, dtype=torch.bool)
        self.config = {"size": size}

    def forward(self, spike):
        self.spike = spike
        return spike


class Tiny(nn.Module):
    """Smallest observed module: a dt and one population that copies its input."""

    def __init__(self, size=3, dt=1.0):
        super().__init__()
        self.dt = dt
        self.pop = Population(size)
        self.label = "tiny"

    def forward(self, spike):
        return self.pop(spike)


def test_records_the_attribute_after_each_forward():
    tiny = Tiny()
    monitor = Monitor(History(5), tiny, "pop.spike")
    assert monitor.registered and monitor.peek() is None
    train = torch.rand(4, 3) < 0.5
    for spike in train:
        tiny(spike)
    torch.testing.assert_close(monitor.view(), train)
    assert monitor.module is tiny and monitor.attr == "pop.spike"


def test_observed_module_is_not_a_submodule():
    tiny = Tiny()
    monitor = Monitor(Sum(), tiny, "pop.spike")
    assert [name for name, _ in monitor.named_children()] == ["reducer"]
    tiny(torch.ones(3, dtype=torch.bool))
    assert set(monitor.state_dict()) == {"reducer.value", "reducer._extra_state"}


def test_dt_change_changes_the_decay_from_that_step_on():
    tiny = Tiny(size=1, dt=1.0)
    monitor = Monitor(Trace(10.0), tiny, "pop.spike")
    spike, silent = torch.ones(1, dtype=torch.bool), torch.zeros(1, dtype=torch.bool)
    tiny(spike)
    tiny(silent)
    assert monitor.peek().item() == pytest.approx(math.exp(-1 / 10))
    tiny.dt = 4.0
    tiny(silent)
    assert monitor.peek().item() == pytest.approx(math.exp(-5 / 10))
    tiny(spike)
    assert monitor.peek().item() == pytest.approx(math.exp(-9 / 10) + 1.0)


def test_register_and_deregister_are_idempotent_and_keep_content():
    tiny = Tiny()
    monitor = Monitor(Count(), tiny, "pop.spike")
    monitor.register()
    assert len(tiny._forward_hooks) == 1
    tiny(torch.ones(3, dtype=torch.bool))
    monitor.deregister().deregister()
    assert not monitor.registered and not tiny._forward_hooks
    tiny(torch.ones(3, dtype=torch.bool))
    assert monitor.peek().tolist() == [1, 1, 1]  # kept, and the last step was not recorded
    monitor.register().register()
    assert monitor.registered and len(tiny._forward_hooks) == 1
    tiny(torch.ones(3, dtype=torch.bool))
    assert monitor.peek().tolist() == [2, 2, 2]
    monitor.clear()
    assert monitor.peek() is None and monitor.registered


def test_hook_disappears_with_the_last_reference_to_the_monitor():
    tiny = Tiny()
    monitor = Monitor(Trace(5.0), tiny, "pop.spike")
    other = Monitor(Trace(5.0), tiny, "pop.spike")
    assert len(tiny._forward_hooks) == 2
    alive = weakref.ref(monitor)
    del monitor
    gc.collect()
    assert alive() is None
    assert len(tiny._forward_hooks) == 1
    tiny(torch.ones(3, dtype=torch.bool))  # the remaining monitor still records
    assert other.peek() is not None
    del other
    gc.collect()
    assert not tiny._forward_hooks


def test_deregistered_monitor_leaves_no_finalizer_behind():
    tiny = Tiny()
    monitor = Monitor(Sum(), tiny, "pop.spike").deregister()
    del monitor
    gc.collect()
    assert not tiny._forward_hooks


def test_view_needs_a_reducer_that_keeps_steps():
    tiny = Tiny()
    monitor = Monitor(Mean(), tiny, "pop.spike")
    tiny(torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="Mean has no view"):
        monitor.view()


def test_unknown_attribute_path():
    with pytest.raises(AttributeError, match=r"'pop\.voltage'.*'pop' has no attribute 'voltage'"):
        Monitor(Sum(), Tiny(), "pop.voltage")
    with pytest.raises(AttributeError, match=r"'nothing'"):
        Monitor(Sum(), Tiny(), "nothing")
    with pytest.raises(AttributeError, match=r"'pop\.\.spike'"):
        Monitor(Sum(), Tiny(), "pop..spike")


def test_path_through_a_non_module_attribute():
    with pytest.raises(AttributeError, match=r"'label\.upper' goes through 'label', a str"):
        Monitor(Sum(), Tiny(), "label.upper")
    with pytest.raises(AttributeError, match=r"'pop\.config\.size' goes through 'pop\.config'"):
        Monitor(Sum(), Tiny(), "pop.config.size")


def test_non_tensor_attribute_at_record_time():
    tiny = Tiny()
    monitor = Monitor(Sum(), tiny, "dt")
    assert monitor.registered
    with pytest.raises(TypeError, match=r"monitored attribute 'dt' of Tiny holds a float"):
        tiny(torch.ones(3, dtype=torch.bool))


def test_reducer_must_see_one_shape_until_cleared():
    tiny = Tiny()
    monitor = Monitor(Sum(), tiny, "pop.spike")
    tiny(torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*expected shape \(3,\)"):
        tiny(torch.ones(2, 3, dtype=torch.bool))
    monitor.clear()
    tiny(torch.ones(2, 3, dtype=torch.bool))
    assert monitor.peek().shape == (2, 3)


def test_bad_reducer_and_module():
    with pytest.raises(TypeError, match="reducer must be a Reducer, got Tiny"):
        Monitor(Tiny(), Tiny(), "pop.spike")
    with pytest.raises(TypeError, match="module must be an nn.Module, got dict"):
        Monitor(Sum(), {"pop": 1}, "pop")


def state_bytes(monitor):
    return sum(b.numel() * b.element_size() for b in monitor.buffers())


def test_memory_does_not_grow_with_steps():
    # Trace and the History ring through monitors here (100k steps take a few seconds);
    # every reducer is checked over fewer steps in test_observe_reducers.py.
    tiny = Tiny(size=2)
    monitors = [Monitor(Trace(5.0), tiny, "pop.spike"), Monitor(History(8), tiny, "pop.spike")]
    spikes = torch.rand(16, 2) < 0.5
    for step in range(10):
        tiny(spikes[step % 16])
    after_10 = [state_bytes(m) for m in monitors]
    assert all(after_10)
    for step in range(100_000 - 10):
        tiny(spikes[step % 16])
    assert [state_bytes(m) for m in monitors] == after_10
    assert all(m.reducer.steps == 100_000 for m in monitors)


def test_partial_builds_a_fresh_reducer_each_call():
    constructor = Monitor.partial(Trace, tau=20.0)
    assert isinstance(constructor, MonitorConstructor)
    tiny = Tiny()
    first, second = constructor("pop.spike", tiny), constructor("pop.spike", tiny)
    assert isinstance(first, Monitor) and first is not second
    assert first.reducer is not second.reducer and first.reducer.tau == 20.0
    assert "Monitor.partial(Trace, tau=20.0)" == repr(constructor)


def test_partial_checks_the_reducer_arguments():
    with pytest.raises(ValueError, match="tau must be a finite number > 0, got -1"):
        Monitor.partial(Trace, tau=-1)


class OtherMonitor(Monitor):
    pass


def test_constructor_equality_and_hash():
    a = Monitor.partial(Trace, tau=20.0, mode="nearest")
    b = Monitor.partial(Trace, mode="nearest", tau=20)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Monitor.partial(Trace, tau=21.0, mode="nearest")
    assert a != Monitor.partial(Trace, tau=20.0)
    assert a != OtherMonitor.partial(Trace, tau=20.0, mode="nearest")
    assert Monitor.partial(Sum) != Monitor.partial(Mean)
    assert Monitor.partial(History, size=3) == Monitor.partial(History, size=3)


def test_constructor_equality_with_tensor_arguments():
    def make(scale):
        return Sum()

    a = Monitor.partial(make, scale=torch.ones(3))
    assert a == Monitor.partial(make, scale=torch.ones(3))
    assert a != Monitor.partial(make, scale=torch.zeros(3))
    assert hash(a) == hash(Monitor.partial(make, scale=torch.zeros(3)))


def test_a_copy_records_its_own_module_only():
    tiny = Tiny()
    monitor = Monitor(Sum(), tiny, "pop.spike")
    tiny(torch.ones(3, dtype=torch.bool))
    copied = copy.deepcopy(monitor)  # copies the observed module too
    assert copied.registered and copied.module is not tiny
    copied.module(torch.ones(3, dtype=torch.bool))
    assert monitor.peek().tolist() == [1.0] * 3 and copied.peek().tolist() == [2.0] * 3
    tiny(torch.ones(3, dtype=torch.bool))
    assert monitor.peek().tolist() == [2.0] * 3 and copied.peek().tolist() == [2.0] * 3


def test_a_pickled_monitor_records_after_loading():
    tiny = Tiny()
    monitor = Monitor(Count(), tiny, "pop.spike")
    tiny(torch.ones(3, dtype=torch.bool))
    loaded = pickle.loads(pickle.dumps(monitor))
    loaded.module(torch.ones(3, dtype=torch.bool))
    assert loaded.peek().tolist() == [2, 2, 2] and monitor.peek().tolist() == [1, 1, 1]
