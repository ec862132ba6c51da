"""Reducers of celltrain.observe against independent numpy computations."""

import math

import numpy as np
import pytest
import torch

from celltrain.observe import EMA, Count, History, Latest, Mean, Sum, TimeSince, Trace

T, SHAPE = 60, (3, 4)


@pytest.fixture
def spikes():
    """A random bool spike train, shape (T, *SHAPE), with some silent elements."""
    generator = torch.Generator().manual_seed(0)
    train = torch.rand((T, *SHAPE), generator=generator) < 0.2
    train[:, 0, 0] = False
    return train


@pytest.fixture
def values():
    generator = torch.Generator().manual_seed(1)
    return torch.randn((T, *SHAPE), generator=generator, dtype=torch.float64)


def fold(reducer, observations, dt=1.0):
    """Feed observations (time first) one step at a time; return the value after each step."""
    out = []
    for observation in observations:
        reducer(observation, dt)
        out.append(reducer.peek().clone())
    return torch.stack(out)


def event_times(spikes, dt):
    """Time (ms) of each step and, per step, the spike array as numpy."""
    times = np.cumsum(np.full(len(spikes), dt)) if np.isscalar(dt) else np.cumsum(dt)
    return times, spikes.numpy()


@pytest.mark.parametrize("amplitude", [1.0, 0.5])
def test_cumulative_trace_is_a_sum_over_past_events(spikes, amplitude):
    tau, dt = 7.0, 0.5
    times, events = event_times(spikes, dt)
    got = fold(Trace(tau, amplitude=amplitude), spikes, dt)
    for t in range(T):
        past = times[: t + 1, None, None]
        truth = (amplitude * events[: t + 1] * np.exp(-(times[t] - past) / tau)).sum(axis=0)
        np.testing.assert_allclose(got[t].numpy(), truth, rtol=1e-5, atol=1e-6)


def test_nearest_trace_depends_on_the_last_event_only(spikes):
    tau, dt, amplitude = 5.0, 1.0, 2.0
    times, events = event_times(spikes, dt)
    got = fold(Trace(tau, amplitude=amplitude, mode="nearest"), spikes, dt)
    for t in range(T):
        seen = events[: t + 1]
        last = np.where(seen.any(axis=0), t - np.argmax(seen[::-1], axis=0), -1)
        truth = np.where(
            last >= 0, amplitude * np.exp(-(times[t] - times[np.maximum(last, 0)]) / tau), 0.0
        )
        np.testing.assert_allclose(got[t].numpy(), truth, rtol=1e-5, atol=1e-7)
    assert got[:, 0, 0].eq(0).all()


def test_trace_target_selects_the_event_value():
    observations = torch.tensor([[0, 2, 1], [2, 2, 0]])
    trace = Trace(10.0, target=2)
    fold(trace, observations)
    decay = math.exp(-1 / 10)
    torch.testing.assert_close(trace.peek(), torch.tensor([1.0, decay + 1.0, 0.0]))


def test_trace_with_varying_dt_uses_the_dt_of_each_step(spikes):
    tau = 4.0
    dts = np.random.default_rng(2).uniform(0.2, 2.0, size=T)
    times, events = event_times(spikes, dts)
    trace = Trace(tau)
    for t in range(T):
        trace(spikes[t], float(dts[t]))
    # an event at step k decays over the dt of the steps after k
    truth = (events * np.exp(-(times[-1] - times[:, None, None]) / tau)).sum(axis=0)
    np.testing.assert_allclose(trace.peek().numpy(), truth, rtol=1e-5, atol=1e-6)


def test_history_order_wrap_around_and_latest():
    history = History(4)
    assert history.peek() is None and history.view() is None
    observations = torch.arange(10 * 2).reshape(10, 2)
    for t, observation in enumerate(observations):
        history(observation)
        n = min(4, t + 1)
        torch.testing.assert_close(history.view(), observations[t + 1 - n : t + 1])
        assert history.available == n
    torch.testing.assert_close(history.peek(), observations[6:])
    torch.testing.assert_close(history.latest(1), observations[9:])
    torch.testing.assert_close(history.latest(3), observations[7:])
    assert history.data.shape == (4, 2)  # preallocated, never grown
    for k in (0, 5, -1):
        with pytest.raises(ValueError, match=rf"k must be an int in \[1, 4\].*got {k}"):
            history.latest(k)


def test_history_view_is_a_snapshot_and_keeps_dtype(spikes):
    history = History(3)
    for observation in spikes[:2]:
        history(observation)
    view = history.view()
    for observation in spikes[2:8]:
        history(observation)
    torch.testing.assert_close(view, spikes[:2])
    assert history.view().dtype == torch.bool
    torch.testing.assert_close(history.view(), spikes[5:8])


def test_history_writes_in_place_at_an_index():
    history = History(5)
    history(torch.zeros(2))
    buffer = history.data
    for t in range(12):
        history(torch.full((2,), float(t)))
        assert history.data is buffer  # the same preallocated ring, no rebuild


def test_count_sum_mean_ema_latest_against_numpy(spikes, values):
    x = values.numpy()
    count, total, mean, latest = Count(), Sum(), Mean(), Latest()
    alpha = 0.3
    ema = EMA(alpha)
    for t in range(T):
        count(spikes[t])
        total(values[t])
        mean(values[t])
        ema(values[t])
        latest(values[t])
        seen = x[: t + 1]
        weights = alpha * (1 - alpha) ** (t - np.arange(t + 1))
        weights[0] = (1 - alpha) ** t  # the first observation initialises the average
        np.testing.assert_allclose(ema.peek().numpy(), np.tensordot(weights, seen, 1), rtol=1e-9)
        np.testing.assert_allclose(mean.peek().numpy(), seen.mean(axis=0), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(total.peek().numpy(), seen.sum(axis=0), rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(count.peek().numpy(), spikes[: t + 1].numpy().sum(axis=0))
        np.testing.assert_array_equal(latest.peek().numpy(), x[t])
    assert count.peek().dtype == torch.int64
    assert count.steps == T


def test_latest_is_a_copy():
    latest = Latest()
    observation = torch.zeros(3)
    latest(observation)
    observation += 1.0
    torch.testing.assert_close(latest.peek(), torch.zeros(3))


def test_time_since_the_last_event(spikes):
    dt = 0.5
    got = fold(TimeSince(), spikes, dt)
    events = spikes.numpy()
    for t in range(T):
        seen = events[: t + 1]
        since = np.argmax(seen[::-1], axis=0) * dt
        truth = np.where(seen.any(axis=0), since, np.inf)
        np.testing.assert_allclose(got[t].numpy(), truth, rtol=1e-6)
    assert math.isinf(got[-1, 0, 0])


def test_time_since_starts_at_zero_on_an_event_and_grows_by_dt():
    since = TimeSince()
    steps = [(True, 1.0, 0.0), (False, 1.0, 1.0), (False, 2.5, 3.5), (True, 1.0, 0.0)]
    for spike, dt, expected in steps:
        since(torch.tensor([spike, False]), dt)
        assert since.peek()[0].item() == expected
        assert math.isinf(since.peek()[1].item())


@pytest.mark.parametrize(
    ("reducer", "dtype"),
    [
        (Trace(5.0), torch.get_default_dtype()),
        (Sum(), torch.get_default_dtype()),
        (Mean(), torch.get_default_dtype()),
        (EMA(0.5), torch.get_default_dtype()),
        (TimeSince(), torch.get_default_dtype()),
        (Count(), torch.int64),
        (Latest(), torch.bool),
        (History(2), torch.bool),
    ],
)
def test_state_dtype_of_bool_spikes(reducer, dtype):
    reducer(torch.tensor([True, False]), 1.0)
    assert reducer.peek().dtype == dtype


@pytest.mark.parametrize("factory", [lambda: Trace(5.0), Sum, Mean, lambda: EMA(0.5), TimeSince])
def test_float_state_keeps_the_observation_dtype(factory):
    reducer = factory()
    reducer(torch.tensor([1.0, 0.0], dtype=torch.float64), 1.0)
    assert reducer.peek().dtype == torch.float64


ALL = [
    lambda: Trace(5.0),
    lambda: Trace(5.0, mode="nearest"),
    lambda: History(3),
    Count,
    Sum,
    Mean,
    lambda: EMA(0.2),
    Latest,
    TimeSince,
]


@pytest.mark.parametrize("factory", ALL)
def test_peek_clear_and_shape_change(factory):
    reducer = factory()
    assert reducer.peek() is None
    reducer(torch.ones(2, 3, dtype=torch.bool), 1.0)
    assert reducer.peek() is not None and reducer.steps == 1
    with pytest.raises(ValueError, match=r"shape \(2, 4\).*expected shape \(2, 3\)"):
        reducer(torch.ones(2, 4, dtype=torch.bool), 1.0)
    assert reducer.steps == 1  # the failed step changed nothing
    reducer.clear()
    assert reducer.peek() is None and reducer.steps == 0
    assert all(buffer.numel() == 0 for buffer in reducer.buffers())
    reducer(torch.ones(2, 4, dtype=torch.bool), 1.0)  # a new shape is fine after clear()
    assert reducer.peek().shape[-2:] == (2, 4)


@pytest.mark.parametrize("factory", ALL)
def test_memory_does_not_grow_with_steps(factory):
    reducer = factory()
    observation = torch.tensor([True, False])

    def state_bytes():
        return sum(b.numel() * b.element_size() for b in reducer.buffers())

    for _ in range(10):
        reducer(observation, 1.0)
    after_10 = state_bytes()
    for _ in range(3000):
        reducer(observation, 1.0)
    assert state_bytes() == after_10 > 0


@pytest.mark.parametrize("factory", ALL)
def test_state_dict_round_trip_into_an_empty_reducer(factory, spikes):
    reducer = factory()
    for observation in spikes[:7]:
        reducer(observation, 1.0)
    state = reducer.state_dict()
    fresh = factory()
    fresh.load_state_dict(state)  # the fresh reducer's buffers are empty placeholders
    assert fresh.steps == reducer.steps
    torch.testing.assert_close(fresh.peek(), reducer.peek())
    for observation in spikes[7:12]:
        reducer(observation, 1.0)
        fresh(observation, 1.0)
    torch.testing.assert_close(fresh.peek(), reducer.peek())
    reducer.load_state_dict(factory().state_dict())  # loading empty state empties it
    assert reducer.peek() is None and reducer.steps == 0


def test_history_refuses_a_ring_of_another_size():
    history = History(3)
    history(torch.zeros(2))
    with pytest.raises(RuntimeError, match=r"History of size 5 cannot load .*\(3, 2\)"):
        History(5).load_state_dict(history.state_dict())


@pytest.mark.parametrize("factory", ALL)
def test_state_created_under_inference_mode_can_be_updated_later(factory, spikes):
    reducer, reference = factory(), factory()
    with torch.inference_mode():
        reducer(spikes[0], 1.0)
    reference(spikes[0], 1.0)
    for observation in spikes[1:6]:
        reducer(observation, 1.0)
        reference(observation, 1.0)
    with torch.inference_mode():
        reducer(spikes[6], 1.0)
    reference(spikes[6], 1.0)
    reducer(spikes[7], 1.0)
    reference(spikes[7], 1.0)
    torch.testing.assert_close(reducer.peek(), reference.peek())


def test_no_autograd_graph():
    observation = torch.ones(3, requires_grad=True)
    for reducer in (Sum(), Mean(), History(2), Latest()):
        reducer(observation, 1.0)
        assert not reducer.peek().requires_grad


@pytest.mark.parametrize("reducer", [Trace(5.0), TimeSince()])
def test_reducers_that_need_dt_refuse_a_missing_or_bad_dt(reducer):
    with pytest.raises(ValueError, match="needs the step length dt.*dt=None"):
        reducer(torch.ones(2, dtype=torch.bool), None)
    with pytest.raises(ValueError, match="dt must be a finite number > 0, got -1.0"):
        reducer(torch.ones(2, dtype=torch.bool), -1.0)
    assert reducer.peek() is None


def test_observation_must_be_a_tensor():
    with pytest.raises(TypeError, match="observation must be a Tensor, got list"):
        Sum()([1.0, 2.0])


@pytest.mark.parametrize("tau", [0.0, -3.0, math.inf, math.nan])
def test_trace_refuses_a_non_positive_tau(tau):
    with pytest.raises(ValueError, match=rf"tau must be a finite number > 0, got {tau}"):
        Trace(tau)


def test_trace_refuses_bad_arguments():
    with pytest.raises(ValueError, match="mode must be 'cumulative' or 'nearest', got 'last'"):
        Trace(5.0, mode="last")
    with pytest.raises(TypeError, match="tau must be a real number, got 'a'"):
        Trace("a")
    with pytest.raises(ValueError, match="amplitude must be finite, got inf"):
        Trace(5.0, amplitude=math.inf)


@pytest.mark.parametrize("size", [0, -2])
def test_history_refuses_a_size_below_one(size):
    with pytest.raises(ValueError, match=rf"size must be >= 1, got {size}"):
        History(size)


def test_history_refuses_a_non_int_size():
    with pytest.raises(TypeError, match=r"size must be an int, got 2.5"):
        History(2.5)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_ema_refuses_alpha_outside_the_unit_interval(alpha):
    with pytest.raises(ValueError, match=rf"alpha must be in \(0, 1\], got {alpha}"):
        EMA(alpha)


def test_ema_with_alpha_one_keeps_the_latest():
    ema = EMA(1.0)
    for value in (1.0, 5.0, -2.0):
        ema(torch.tensor([value]))
    assert ema.peek().item() == -2.0
