"""Windows of time steps at once: ``exponential_filter`` / ``decay_powers`` against explicit
loops, every reducer's ``run`` / ``recent`` / ``window`` against ``T`` calls of
``forward``, and ``Monitor.record_window`` / ``Monitor.recent``."""

from __future__ import annotations

import gc
import math

import pytest
import torch
from torch import nn

from celltrain.neural import LIF, Layer, Linear, WindowObserver
from celltrain.observe import EMA, Count, History, Latest, Mean, Monitor, Sum, TimeSince, Trace
from celltrain.utils.filters import decay_powers, exponential_filter


# ---- exponential_filter / decay_powers ---------------------------------------------------------
def loop_filter(x, decay, initial=None, reverse=False):
    """``y[t] = decay * y[t-1] + x[t]`` (or backwards) written out step by step."""
    steps = x.shape[0]
    y = torch.empty_like(x)
    previous = torch.zeros_like(x[0]) if initial is None else initial.clone()
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for t in order:
        previous = decay * previous + x[t]
        y[t] = previous
    return y


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_initial", [False, True])
@pytest.mark.parametrize(
    ("steps", "shape", "decay"),
    [
        (1, (3,), 0.5),
        (37, (), 1.0),
        (50, (2, 3, 4), math.exp(-1 / 5)),
        (64, (5,), 0.999),
        (41, (3, 2), 0.01),  # a chunk of 6 steps
        (23, (4,), 1e-6),  # a chunk of one step
        (3000, (3,), math.exp(-1 / 5)),  # 20 chunks of 150 steps
        (3000, (2,), 1.0),
    ],
)
def test_exponential_filter_equals_the_loop_float64(steps, shape, decay, with_initial, reverse):
    g = torch.Generator().manual_seed(steps + len(shape))
    x = torch.randn((steps, *shape), generator=g, dtype=torch.float64)
    initial = torch.randn(shape, generator=g, dtype=torch.float64) * 3 if with_initial else None
    got = exponential_filter(x, decay, initial, reverse=reverse)
    want = loop_filter(x, decay, initial, reverse=reverse)
    assert got.dtype == torch.float64 and got.shape == x.shape
    scale = float(want.abs().max()) + 1.0
    torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11 * scale)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("decay", [math.exp(-1 / 5), 0.9, 0.3])
def test_exponential_filter_float32_close_to_float64_loop(decay, reverse):
    g = torch.Generator().manual_seed(3)
    x = torch.rand((700, 4, 3), generator=g, dtype=torch.float64)
    x[x < 0.6] = 0.0  # spike-like sparse input
    initial = torch.rand((4, 3), generator=g, dtype=torch.float64)
    got = exponential_filter(x.float(), decay, initial.float(), reverse=reverse)
    want = loop_filter(x, decay, initial, reverse=reverse)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_exponential_filter_no_steps_and_initial_only():
    empty = torch.zeros((0, 3), dtype=torch.float64)
    assert exponential_filter(empty, 0.5).shape == (0, 3)
    initial = torch.tensor([1.0, -2.0], dtype=torch.float64)
    got = exponential_filter(torch.zeros((4, 2), dtype=torch.float64), 0.5, initial)
    want = initial * torch.tensor([0.5, 0.25, 0.125, 0.0625], dtype=torch.float64)[:, None]
    torch.testing.assert_close(got, want, rtol=1e-14, atol=0.0)
    back = exponential_filter(torch.zeros((3, 2), dtype=torch.float64), 0.5, initial, True)
    torch.testing.assert_close(back, initial * torch.tensor([[0.125], [0.25], [0.5]]).double())


@pytest.mark.parametrize(
    ("dtype", "decay"),
    [(torch.float32, math.exp(-100.0)), (torch.float64, math.exp(-720.0))],
    ids=["float32-exp(-100)", "float64-exp(-720)"],
)
def test_exponential_filter_with_a_tiny_decay_stays_finite(dtype, decay):
    """A decay in (0, 1] so small that even one step's scaling ``decay**-1`` overflows the
    dtype (e.g. ``exp(-dt / tau)`` with ``tau < dt / 88`` in float32): the filter must still
    give the loop's (finite) values."""
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=dtype)
    initial = torch.tensor([3.0, 0.0], dtype=dtype)
    got = exponential_filter(x, decay, initial)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, loop_filter(x, decay, initial), rtol=1e-6, atol=1e-30)


def test_exponential_filter_with_zero_decay_keeps_only_the_present():
    """decay 0 (``exp(-dt / tau)`` underflowing for ``tau << dt``) is the limit ``y = x``."""
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(exponential_filter(x, 0.0, torch.ones(3)), x)
    torch.testing.assert_close(exponential_filter(x, 0.0, reverse=True), x)


@pytest.mark.parametrize("decay", [-0.5, 1.0000001, 2.0, float("nan")])
def test_exponential_filter_rejects_decay_out_of_range(decay):
    with pytest.raises(ValueError, match="decay"):
        exponential_filter(torch.zeros(3, 2), decay)


def test_exponential_filter_rejects_bad_inputs():
    with pytest.raises(ValueError, match="floating point"):
        exponential_filter(torch.zeros((3, 2), dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match="floating point"):
        exponential_filter(torch.zeros((3, 2), dtype=torch.bool), 0.5)
    with pytest.raises(ValueError):
        exponential_filter(torch.tensor(1.0), 0.5)  # no time dimension
    with pytest.raises(ValueError, match=r"initial must have shape \(2,\)"):
        exponential_filter(torch.zeros(3, 2), 0.5, torch.zeros(3))
    with pytest.raises(ValueError, match="initial"):
        exponential_filter(torch.zeros(3, 2), 0.5, torch.zeros(3, 2), reverse=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("first", [0, 1, 5])
@pytest.mark.parametrize("decay", [0.8, 1.0, math.exp(-1 / 20)])
def test_decay_powers(decay, first, dtype):
    got = decay_powers(7, decay, dtype, first=first)
    want = torch.tensor([decay**k for k in range(first, first + 7)], dtype=torch.float64)
    assert got.dtype == dtype and got.shape == (7,)
    tol = 1e-14 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=0.0)
    assert decay_powers(0, decay, dtype).shape == (0,)
    # default first=1: how a carried value has decayed after each step of a window
    torch.testing.assert_close(
        decay_powers(3, 0.5, torch.float64), torch.tensor([0.5, 0.25, 0.125]).double()
    )


# ---- reducers: run against per-step forward ----------------------------------------------------
def _bools(g, shape):
    return torch.rand(shape, generator=g) < 0.3


def _ints(g, shape):
    return torch.randint(0, 4, shape, generator=g)


def _floats(g, shape):
    return torch.randn(shape, generator=g, dtype=torch.float64)


def _float_levels(g, shape):
    return torch.randint(0, 3, shape, generator=g).double()  # target 2.0 is hit often


# name -> (factory, observation maker, dt)
CASES = {
    "trace_cumulative": (lambda: Trace(7.0, amplitude=0.7), _bools, 0.5),
    "trace_cumulative_int_target": (lambda: Trace(4.0, amplitude=1.8, target=2), _ints, 1.0),
    "trace_nearest": (lambda: Trace(5.0, amplitude=1.5, mode="nearest"), _bools, 1.0),
    "trace_nearest_float_target": (
        lambda: Trace(3.0, amplitude=0.4, target=2.0, mode="nearest"),
        _float_levels,
        0.25,
    ),
    "count": (lambda: Count(), _bools, 1.0),
    "count_int_target": (lambda: Count(target=3), _ints, 1.0),
    "sum": (lambda: Sum(), _floats, 1.0),
    "sum_bool": (lambda: Sum(), _bools, 1.0),
    "mean": (lambda: Mean(), _floats, 1.0),
    "mean_bool": (lambda: Mean(), _bools, 1.0),
    "ema": (lambda: EMA(0.3), _floats, 1.0),
    "latest": (lambda: Latest(), _floats, 1.0),
    "latest_bool": (lambda: Latest(), _bools, 1.0),
    "time_since": (lambda: TimeSince(), _bools, 0.5),
    "time_since_int_target": (lambda: TimeSince(target=1), _ints, 2.0),
    "history_small": (lambda: History(5), _floats, 1.0),
    "history_large": (lambda: History(100), _bools, 1.0),
    "history_one": (lambda: History(1), _ints, 1.0),
}


def assert_same(got, want):
    """Equal values (close for floating point, exact otherwise), same shape and dtype."""
    assert got is not None and want is not None
    assert got.shape == want.shape and got.dtype == want.dtype
    if got.is_floating_point():
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    else:
        assert torch.equal(got, want)


def check_after_window(reducer, reference, before, per_step):
    """What a reducer that just folded a window must show (``before``: the reference's peek
    before the window, None if none; ``per_step``: its values after each step)."""
    assert reducer.steps == reference.steps
    assert_same(reducer.peek(), reference.peek())
    if isinstance(reducer, History):
        assert_same(reducer.view(), reference.view())
        assert reducer.available == reference.available
        return
    recent = reducer.recent()
    assert_same(recent, torch.stack(per_step))
    start = reducer.window().start
    assert start is not None
    if before is not None:
        assert_same(start, before)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", sorted(CASES))
def test_reducer_run_equals_per_step_forward(case, seed, float64):
    factory, make, dt = CASES[case]
    g = torch.Generator().manual_seed(seed)
    steps = int(torch.randint(1, 40, (1,), generator=g))
    dims = int(torch.randint(1, 4, (1,), generator=g))
    shape = tuple(int(s) for s in torch.randint(1, 5, (dims,), generator=g))
    observations = make(g, (steps, *shape))
    reducer, reference = factory(), factory()
    reducer.run(observations, dt)
    per_step = []
    for observation in observations:
        reference(observation, dt)
        per_step.append(reference.peek().clone())
    assert reducer.steps == steps
    check_after_window(reducer, reference, None, per_step)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_mixed_steps_and_windows_equal_per_step_forward(case, seed, float64):
    """Some single steps, a window, steps, a window, a window: after each part the reducer
    holds what a reducer fed every step one by one holds."""
    factory, make, dt = CASES[case]
    g = torch.Generator().manual_seed(100 + seed)
    shape = tuple(int(s) for s in torch.randint(1, 5, (2,), generator=g))
    lengths = [int(n) for n in torch.randint(1, 30, (5,), generator=g)]
    plan = list(zip(["step", "window", "step", "window", "window"], lengths))
    reducer, reference = factory(), factory()
    for kind, length in plan:
        observations = make(g, (length, *shape))
        before = None if reference.peek() is None else reference.peek().clone()
        per_step = []
        for observation in observations:
            reference(observation, dt)
            per_step.append(reference.peek().clone())
            if kind == "step":
                reducer(observation, dt)
        if kind == "window":
            reducer.run(observations, dt)
            check_after_window(reducer, reference, before, per_step)
        else:
            assert reducer.steps == reference.steps
            assert_same(reducer.peek(), reference.peek())
            if not isinstance(reducer, History):
                recent = reducer.recent()
                assert recent.shape == (1, *shape)
                assert_same(recent[0], reducer.peek())
                assert reducer.window() is None


@pytest.mark.parametrize(
    ("factory", "rest"),
    [
        (lambda: Trace(5.0), 0.0),
        (lambda: Count(), 0),
        (lambda: Sum(), 0.0),
        (lambda: Mean(), 0.0),
        (lambda: TimeSince(), math.inf),
    ],
)
def test_window_start_of_first_window_is_the_state_at_rest(factory, rest, float64):
    reducer = factory()
    assert reducer.window() is None and reducer.recent() is None
    spikes = torch.rand(6, 2, 3, generator=torch.Generator().manual_seed(0)) < 0.5
    reducer.run(spikes, 1.0)
    start = reducer.window().start
    assert start.shape == (2, 3)
    assert torch.all(start == rest)
    reducer(spikes[0], 1.0)  # a single step: no window
    assert reducer.window() is None
    assert reducer.recent().shape == (1, 2, 3)
    reducer.run(spikes, 1.0)
    assert reducer.recent().shape == (6, 2, 3)
    reducer.clear()
    assert reducer.window() is None and reducer.recent() is None and reducer.steps == 0


def test_trace_window_of_one_step_and_recent_is_stable(float64):
    """A window of one step is a window (window() set, recent (1, *S)); calling recent
    twice gives the same series, and a later forward replaces it."""
    trace, reference = Trace(4.0, amplitude=2.0), Trace(4.0, amplitude=2.0)
    spikes = torch.rand(10, 3, generator=torch.Generator().manual_seed(5)) < 0.4
    trace.run(spikes[:1], 1.0)
    reference(spikes[0], 1.0)
    assert trace.recent().shape == (1, 3)
    assert torch.equal(trace.window().start, torch.zeros(3))
    assert_same(trace.peek(), reference.peek())
    trace.run(spikes[1:], 1.0)
    first = trace.recent()
    assert first is trace.recent()
    trace(spikes[0], 1.0)
    assert trace.recent().shape == (1, 3)
    assert_same(trace.recent()[0], trace.peek())


@pytest.mark.parametrize("factory", [lambda: Trace(5.0), Count, Sum, Latest, lambda: History(3)])
def test_reducer_run_rejects_missing_time_and_empty_windows(factory):
    reducer = factory()
    with pytest.raises(ValueError, match="T >= 1"):
        reducer.run(torch.tensor(True), 1.0)
    with pytest.raises(ValueError, match="T >= 1"):
        reducer.run(torch.zeros((0, 3), dtype=torch.bool), 1.0)
    with pytest.raises(TypeError, match="Tensor"):
        reducer.run([[True, False]], 1.0)
    assert reducer.steps == 0 and reducer.peek() is None


@pytest.mark.parametrize("factory", [lambda: Trace(5.0), Count, Sum, Latest, lambda: History(3)])
def test_reducer_run_rejects_shape_mismatch_naming_the_shapes(factory):
    reducer = factory()
    reducer(torch.zeros((3, 4), dtype=torch.bool), 1.0)
    with pytest.raises(ValueError, match=r"\(5, 3, 5\).*\(T, 3, 4\)"):
        reducer.run(torch.zeros((5, 3, 5), dtype=torch.bool), 1.0)
    assert reducer.steps == 1
    reducer.run(torch.zeros((5, 3, 4), dtype=torch.bool), 1.0)
    assert reducer.steps == 6
    with pytest.raises(ValueError, match=r"\(4,\).*\(3, 4\)"):
        reducer(torch.zeros(4, dtype=torch.bool), 1.0)


@pytest.mark.parametrize("factory", [lambda: Trace(5.0), TimeSince])
def test_reducer_run_needs_dt(factory):
    reducer = factory()
    with pytest.raises(ValueError, match="dt"):
        reducer.run(torch.zeros((4, 2), dtype=torch.bool))
    with pytest.raises(ValueError, match="dt"):
        reducer.run(torch.zeros((4, 2), dtype=torch.bool), -1.0)
    assert reducer.steps == 0


def test_steps_counter_advances_by_window_length():
    for reducer in (Trace(3.0), Count(), Sum(), Mean(), EMA(0.5), Latest(), TimeSince()):
        reducer.run(torch.zeros((7, 2), dtype=torch.bool), 1.0)
        reducer(torch.zeros(2, dtype=torch.bool), 1.0)
        reducer.run(torch.zeros((4, 2), dtype=torch.bool), 1.0)
        assert reducer.steps == 12, type(reducer).__name__
    history = History(5)
    history.run(torch.arange(12).view(12, 1), None)
    assert history.steps == 12 and history.available == 5
    assert torch.equal(history.view().flatten(), torch.arange(7, 12))


# ---- Monitor.record_window / recent ------------------------------------------------------------
def test_monitor_record_window_folds_with_the_module_dt(float64):
    neuron = LIF(4)
    neuron.dt = 0.5
    trace = Monitor(Trace(3.0, amplitude=1.3), neuron, "spike")
    history = Monitor(History(4), neuron, "spike")
    spikes = torch.rand(9, 2, 4, generator=torch.Generator().manual_seed(0)) < 0.4
    trace.record_window(spikes)
    history.record_window(spikes)
    reference = Trace(3.0, amplitude=1.3)
    per_step = []
    for spike in spikes:
        reference(spike, 0.5)
        per_step.append(reference.peek().clone())
    assert_same(trace.peek(), reference.peek())
    assert_same(trace.recent(), torch.stack(per_step))
    assert trace.recent().shape == (9, 2, 4)
    assert torch.equal(history.view(), spikes[-4:])
    with pytest.raises(TypeError, match="no recent"):
        history.recent()
    with pytest.raises(TypeError, match="Tensor"):
        trace.record_window([spikes])
    # a per-step record after the window: recent is that single step
    neuron(torch.full((2, 4), 100.0))
    assert trace.recent().shape == (1, 2, 4)
    reference(neuron.spike, 0.5)
    assert_same(trace.peek(), reference.peek())


def test_monitor_record_window_without_dt_fails_for_a_trace():
    module = nn.Module()
    module.register_buffer("spike", torch.zeros(2, dtype=torch.bool))
    monitor = Monitor(Trace(3.0), module, "spike")
    with pytest.raises(ValueError, match="dt"):
        monitor.record_window(torch.zeros((3, 2), dtype=torch.bool))
    counter = Monitor(Count(), module, "spike")
    counter.record_window(torch.ones((3, 2), dtype=torch.bool))
    assert torch.equal(counter.peek(), torch.full((2,), 3))
    assert torch.equal(counter.recent(), torch.tensor([[1, 1], [2, 2], [3, 3]]))


def test_monitor_is_a_declared_window_observer_of_its_layer():
    layer = Layer({"n": LIF(3)}, {"in": ("input", "n", Linear(2, 3))})
    monitor = Monitor(Count(), layer, "neurons.n.spike")
    assert isinstance(monitor, WindowObserver)
    assert layer.observers() == [monitor] and not layer.has_hooks()
    assert monitor.path == "neurons.n.spike" and monitor.takes_windows
    monitor.record_window(torch.ones((2, 1, 3), dtype=torch.bool))
    assert torch.equal(monitor.peek(), torch.full((1, 3), 2))
    assert monitor.window().steps == 2 and torch.equal(monitor.window().start, torch.zeros(1, 3))

    class Custom(Monitor):
        def record(self, value=None):
            super().record(value)

    custom = Custom(Count(), layer, "neurons.n.spike")
    assert not custom.takes_windows and custom.registered
    custom.deregister()
    assert layer.observers() == [monitor] and not custom.registered
    del monitor
    gc.collect()
    assert layer.observers() == []  # the layer held the monitor weakly

    neuron = LIF(3)  # a monitor of a module that is not a layer records through a hook
    hooked = Monitor(Count(), neuron, "spike")
    assert neuron.has_hooks()
    neuron(torch.full((1, 3), 1000.0))
    assert torch.equal(hooked.peek(), torch.ones(1, 3, dtype=torch.int64))
    del hooked
    gc.collect()
    assert not neuron.has_hooks()  # the hook left with its monitor


def test_trace_run_with_a_decay_that_underflows_to_zero(float64):
    """``exp(-dt / tau)`` is 0.0 in floating point for ``tau < dt / 745``: ``forward`` folds
    such a trace fine (it keeps only the latest event), so ``run`` must too."""
    spikes = torch.tensor([[True, False], [False, False], [True, True]])
    for mode in ("cumulative", "nearest"):
        window, loop = (
            Trace(0.001, amplitude=2.0, mode=mode),
            Trace(0.001, amplitude=2.0, mode=mode),
        )
        for spike in spikes:
            loop(spike, 1.0)
        window.run(spikes, 1.0)
        assert_same(window.peek(), loop.peek())
        assert_same(window.recent(), spikes.double() * 2.0)


@pytest.mark.parametrize(
    ("factory", "make"),
    [
        (lambda: Trace(5.0), lambda x: x),
        (Count, lambda x: x),
        (Sum, lambda x: x.double()),
        (Latest, lambda x: x),
        (lambda: EMA(0.5), lambda x: x.double()),
    ],
    ids=["trace", "count", "sum", "latest", "ema"],
)
def test_recent_after_a_window_ignores_later_edits_of_the_observations(float64, factory, make):
    """Like ``T`` calls of ``forward``, a folded window is recorded: editing the observations
    tensor in place afterwards (e.g. a reused spike buffer) changes neither ``peek`` nor
    ``recent``."""
    spikes = torch.rand(6, 4, generator=torch.Generator().manual_seed(2)) < 0.5
    window, loop = factory(), factory()
    per_step = []
    for spike in make(spikes):
        loop(spike, 1.0)
        per_step.append(loop.peek().clone())
    observations = make(spikes.clone())
    window.run(observations, 1.0)
    observations.zero_()  # the caller reuses its buffer
    assert_same(window.peek(), loop.peek())
    assert_same(window.recent(), torch.stack(per_step))
