"""Connections and synapses against brute-force references.

The reference of every connection kind is its explicit connectivity: for each (post, pre) pair
of flat indices, the flat index of the weight entry that links them (or -1), built with plain
loops (for Conv2d: over output positions and kernel offsets, with stride and padding). From it
``correlate`` is a sum over ALL (b, post, pre) pairs and ``forward`` a dense matrix product.
"""

from __future__ import annotations

import copy
import io
import itertools
import math

import pytest
import torch

from celltrain.neural import (
    Conv2d,
    DeltaCurrent,
    Direct,
    ExponentialCurrent,
    Lateral,
    Linear,
    Normalize,
    SoftBound,
)


def linear_links(connection):
    n_out, n_in = math.prod(connection.out_shape), math.prod(connection.in_shape)
    links = torch.full((n_out, n_in), -1, dtype=torch.long)
    for o in range(n_out):
        for i in range(n_in):
            if isinstance(connection, Lateral) and o == i:
                continue
            links[o, i] = o * n_in + i
    return links


def direct_links(connection):
    n = math.prod(connection.in_shape)
    links = torch.full((n, n), -1, dtype=torch.long)
    for j in range(n):
        links[j, j] = j
    return links


def conv_links(connection):
    C, H, W = connection.in_shape
    n_out, Ho, Wo = connection.out_shape
    kh, kw = connection.kernel_size
    sh, sw = connection.stride
    ph, pw = connection.padding
    links = torch.full((n_out * Ho * Wo, C * H * W), -1, dtype=torch.long)
    for oc, oy, ox in itertools.product(range(n_out), range(Ho), range(Wo)):
        for c, ky, kx in itertools.product(range(C), range(kh), range(kw)):
            iy, ix = oy * sh - ph + ky, ox * sw - pw + kx
            if 0 <= iy < H and 0 <= ix < W:
                post = (oc * Ho + oy) * Wo + ox
                pre = (c * H + iy) * W + ix
                links[post, pre] = ((oc * C + c) * kh + ky) * kw + kx
    return links


def links_of(connection):
    if isinstance(connection, Conv2d):
        return conv_links(connection)
    if isinstance(connection, Direct):
        return direct_links(connection)
    return linear_links(connection)


def brute_correlate(connection, post, pre, reduction):
    """Per-sample sums over all (post, pre) pairs, scattered into the linked weight entries."""
    links = links_of(connection)
    batch = post.shape[0]
    outer = torch.einsum(
        "bo,bi->boi", post.reshape(batch, -1).double(), pre.reshape(batch, -1).double()
    )
    linked = links >= 0
    result = torch.zeros(batch, connection.weight.numel(), dtype=torch.float64)
    result.index_add_(1, links[linked], outer[:, linked])
    result = result.reshape(batch, *connection.weight.shape)
    if reduction == "none":
        return result
    return result.sum(0) / (batch if reduction == "mean" else 1)


def brute_forward(connection, pre):
    links = links_of(connection)
    weight = connection.weight.detach().double().flatten()
    zero = torch.zeros((), dtype=torch.float64)
    dense = torch.where(links >= 0, weight[links.clamp_min(0)], zero)
    batch = pre.shape[0]
    current = pre.reshape(batch, -1).double() @ dense.t()
    return current.reshape(batch, *connection.out_shape)


def random_shape(g, max_dims=3, max_size=4):
    dims = int(torch.randint(1, max_dims + 1, (1,), generator=g))
    return tuple(int(s) for s in torch.randint(1, max_size + 1, (dims,), generator=g))


CONV_CONFIGS = [
    # (kernel, stride, padding)
    (3, 1, 0),
    (3, 2, 1),
    (2, 2, 0),
    (3, 1, 1),
    (1, 1, 0),
    (5, 2, 2),
    ((2, 3), (1, 2), (1, 0)),
    ((3, 2), (2, 1), (0, 1)),
]


def make_connection(kind, g):
    if kind == "linear":
        return Linear(random_shape(g), random_shape(g))
    if kind == "direct":
        return Direct(random_shape(g))
    if kind == "lateral":
        return Lateral(random_shape(g, max_dims=2))
    kernel, stride, padding = CONV_CONFIGS[kind]
    C = int(torch.randint(1, 4, (1,), generator=g))
    H, W = (int(s) for s in torch.randint(5, 9, (2,), generator=g))
    out = int(torch.randint(1, 4, (1,), generator=g))
    return Conv2d((C, H, W), out, kernel, stride=stride, padding=padding)


KINDS = ["linear", "direct", "lateral", *range(len(CONV_CONFIGS))]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_correlate_matches_brute_force(kind, seed):
    g = torch.Generator().manual_seed(seed * 100 + KINDS.index(kind))
    connection = make_connection(kind, g)
    batch = int(torch.randint(1, 5, (1,), generator=g))
    post = torch.rand(batch, *connection.out_shape, generator=g)
    pre = torch.rand(batch, *connection.in_shape, generator=g) < 0.5  # spikes as pre
    for reduction in ("mean", "sum"):
        got = connection.correlate(post, pre, reduction)
        assert got.shape == connection.weight.shape and got.dtype == connection.weight.dtype
        expected = brute_correlate(connection, post, pre.double(), reduction)
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)
    # default reduction is the mean
    torch.testing.assert_close(
        connection.correlate(post, pre), connection.correlate(post, pre, "mean")
    )


@pytest.mark.parametrize("kind", KINDS)
def test_correlate_without_reduction_matches_brute_force(kind):
    g = torch.Generator().manual_seed(11)
    connection = make_connection(kind, g)
    post = torch.rand(3, *connection.out_shape, generator=g)
    pre = torch.rand(3, *connection.in_shape, generator=g)
    got = connection.correlate(post, pre, "none")
    assert got.shape == (3, *connection.weight.shape)
    torch.testing.assert_close(
        got.double(), brute_correlate(connection, post, pre, "none"), rtol=1e-5, atol=1e-5
    )


def test_conv2d_correlate_by_explicit_loops():
    """Independent of the link table: the textbook loop over output positions and offsets."""
    g = torch.Generator().manual_seed(3)
    conn = Conv2d((2, 6, 7), 3, (3, 2), stride=2, padding=1)
    post = torch.rand(2, *conn.out_shape, generator=g, dtype=torch.float64)
    pre = torch.rand(2, *conn.in_shape, generator=g, dtype=torch.float64)
    expected = torch.zeros(conn.weight.shape, dtype=torch.float64)
    _, H, W = conn.in_shape
    for b, oc, oy, ox in itertools.product(range(2), *(range(s) for s in conn.out_shape)):
        for c, ky, kx in itertools.product(range(2), range(3), range(2)):
            iy, ix = oy * 2 - 1 + ky, ox * 2 - 1 + kx
            if 0 <= iy < H and 0 <= ix < W:
                expected[oc, c, ky, kx] += post[b, oc, oy, ox] * pre[b, c, iy, ix]
    torch.testing.assert_close(
        conn.correlate(post, pre, "sum").double(), expected, rtol=1e-5, atol=1e-5
    )
    assert conn.out_shape == (3, 3, 4)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_matches_brute_force(kind):
    g = torch.Generator().manual_seed(50 + KINDS.index(kind))
    connection = make_connection(kind, g)
    batch = 3
    spikes = torch.rand(batch, *connection.in_shape, generator=g) < 0.4
    current = connection(spikes)
    assert current.shape == (batch, *connection.out_shape)
    assert current.dtype == connection.weight.dtype
    torch.testing.assert_close(
        current.double(), brute_forward(connection, spikes), rtol=1e-5, atol=1e-5
    )
    # the synapse keeps the last presynaptic spikes
    assert torch.equal(connection.synapse.spike, spikes)


@pytest.mark.parametrize("config", CONV_CONFIGS)
def test_conv2d_forward_matches_functional_conv2d(config):
    kernel, stride, padding = config
    conn = Conv2d((2, 7, 6), 4, kernel, stride=stride, padding=padding)
    spikes = torch.rand(2, 2, 7, 6) < 0.5
    expected = torch.nn.functional.conv2d(
        spikes.float(), conn.weight, stride=stride, padding=padding
    )
    torch.testing.assert_close(conn(spikes), expected)


def test_bias_is_added_to_the_current():
    conn = Linear(3, (2, 2), bias=True)
    assert conn.bias.shape == (2, 2) and not conn.bias.requires_grad
    with torch.no_grad():
        conn.bias.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
    spikes = torch.tensor([[True, False, True]])
    expected = brute_forward(conn, spikes).float() + conn.bias
    torch.testing.assert_close(conn(spikes), expected)
    assert conn.updater.names == ["weight", "bias"]


def test_lateral_has_no_self_connections():
    conn = Lateral((2, 3), weight_range=(0.5, 1.0))
    assert conn.weight.shape == (6, 6)
    assert torch.equal(conn.weight.diagonal(), torch.zeros(6))
    assert (conn.weight + torch.eye(6) > 0).all()
    # a neuron's own spike does not reach itself
    one = torch.zeros(1, 2, 3, dtype=torch.bool)
    one[0, 1, 2] = True
    current = conn(one)
    assert current[0, 1, 2] == 0 and (current.flatten().count_nonzero() == 5)
    # updates never make the diagonal non-zero, whatever the terms
    conn.updater.weight.add(torch.full((6, 6), 3.0), None)
    conn.updater.step()
    assert torch.equal(conn.weight.diagonal(), torch.zeros(6))


def test_lateral_normalize_sees_no_self_weight():
    """Normalize runs on a zero diagonal, so each row sums to total afterwards."""
    conn = Lateral(5, bound=SoftBound(0.0, 1.0), constraints=[Normalize(2.0)])
    conn.updater.weight.add(torch.ones(5, 5), None)  # includes the diagonal
    conn.updater.step()
    assert torch.equal(conn.weight.diagonal(), torch.zeros(5))
    torch.testing.assert_close(conn.weight.sum(1), torch.full((5,), 2.0))


def test_lateral_rejects_weight_with_diagonal():
    with pytest.raises(ValueError, match="weight of a Lateral connection must have a zero diag"):
        Lateral(3, weight=torch.ones(3, 3))


def test_weight_given_is_copied_and_shapes():
    w = torch.rand(4, 6)
    conn = Linear((2, 3), 4, weight=w)
    assert torch.equal(conn.weight, w) and conn.weight.data_ptr() != w.data_ptr()
    assert isinstance(conn.weight, torch.nn.Parameter) and not conn.weight.requires_grad
    assert Direct((2, 3)).weight.shape == (2, 3)
    assert Conv2d((1, 5, 5), 2, 3).weight.shape == (2, 1, 3, 3)
    low_high = Linear(50, 50, weight_range=(0.2, 0.3)).weight
    assert low_high.min() >= 0.2 and low_high.max() <= 0.3


def test_connection_survives_deepcopy_and_pickle():
    conn = Linear(3, 2, bound=SoftBound(0.0, 1.0))
    clone = copy.deepcopy(conn)
    before = conn.weight.detach().clone()
    clone.updater.weight.add(torch.ones(2, 3), None)
    clone.updater.step()
    assert torch.equal(conn.weight, before), "the copy's updater changed the original"
    assert not torch.equal(clone.weight, before)
    buffer = io.BytesIO()
    torch.save(conn, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    loaded.updater.weight.add(torch.ones(2, 3), None)
    loaded.updater.step()
    assert torch.equal(conn.weight, before) and not torch.equal(loaded.weight, before)


# ------------------------------------------------------------------------------------- synapses


def test_delta_current_is_one_step_pulse_times_amplitude():
    syn = DeltaCurrent(amplitude=2.5)
    spikes = torch.tensor([[True, False, True]])
    assert torch.equal(syn(spikes), torch.tensor([[2.5, 0.0, 2.5]]))
    assert torch.equal(syn(torch.zeros(1, 3, dtype=torch.bool)), torch.zeros(1, 3))


@pytest.mark.parametrize("dt", [0.1, 0.5, 1.0])
def test_exponential_current_closed_form(dt):
    tau, amplitude = 4.0, 1.5
    syn = ExponentialCurrent(tau=tau, amplitude=amplitude).double()
    syn.dt = dt
    spike_steps = {0, 3, 17}
    for n in range(40):
        current = syn(torch.full((1, 1), n in spike_steps))
        expected = sum(amplitude * math.exp(-(n - k) * dt / tau) for k in spike_steps if k <= n)
        assert current.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_connection_with_exponential_synapse():
    conn = Linear(2, 1, weight=torch.tensor([[2.0, 3.0]]), synapse=ExponentialCurrent(tau=2.0))
    conn(torch.tensor([[True, True]]))
    current = conn(torch.tensor([[False, False]]))
    assert current.item() == pytest.approx(5.0 * math.exp(-0.5), rel=1e-6)


# --------------------------------------------------------------------------------------- errors


def test_spikes_of_wrong_shape_raise():
    conn = Linear((2, 3), 4)
    with pytest.raises(ValueError, match=r"spike must have shape \(batch, 2, 3\), got \(5, 6\)"):
        conn(torch.zeros(5, 6, dtype=torch.bool))
    conv = Conv2d((1, 5, 5), 2, 3)
    with pytest.raises(ValueError, match=r"spike must have shape \(batch, 1, 5, 5\), got \(5, 5\)"):
        conv(torch.zeros(5, 5, dtype=torch.bool))


def test_non_bool_spikes_raise():
    conn = Linear(3, 2)
    with pytest.raises(TypeError, match="spike must be a bool tensor, got dtype torch.float32"):
        conn(torch.zeros(1, 3))


def test_weight_of_wrong_shape_raises():
    with pytest.raises(ValueError, match=r"weight must have shape \(2, 3\), got \(3, 2\)"):
        Linear(3, 2, weight=torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\), got \(5,\)"):
        Direct(4, weight=torch.zeros(5))
    with pytest.raises(ValueError, match=r"weight must have shape \(2, 1, 3, 3\), got \(2, 3, 3\)"):
        Conv2d((1, 5, 5), 2, 3, weight=torch.zeros(2, 3, 3))


def test_correlate_bad_input_raises():
    conn = Linear(3, 2)
    with pytest.raises(ValueError, match=r"post must have shape \(batch, 2\), got \(1, 3\)"):
        conn.correlate(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"pre must have shape \(batch, 3\), got \(1, 2\)"):
        conn.correlate(torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="same batch size, got 2 and 3"):
        conn.correlate(torch.zeros(2, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'max'"):
        conn.correlate(torch.zeros(1, 2), torch.zeros(1, 3), "max")


def test_synapse_batch_change_without_reset_raises():
    conn = Linear(3, 2)
    conn(torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch of 2 samples but got a batch of 4.*reset"):
        conn(torch.zeros(4, 3, dtype=torch.bool))
    conn.synapse.reset()
    conn(torch.zeros(4, 3, dtype=torch.bool))


@pytest.mark.parametrize("value", [0.0, -2.0, float("nan")])
def test_bad_synapse_constants_raise(value):
    with pytest.raises(ValueError, match=rf"tau must be a finite number > 0, got {value}"):
        ExponentialCurrent(tau=value)
    with pytest.raises(ValueError, match=rf"amplitude must be a finite number > 0, got {value}"):
        DeltaCurrent(amplitude=value)
    with pytest.raises(ValueError, match=rf"dt must be a finite number > 0, got {value}"):
        ExponentialCurrent().dt = value


def test_bad_conv_and_direct_arguments_raise():
    with pytest.raises(ValueError, match=r"in_shape must be \(channels, height, width\)"):
        Conv2d((5, 5), 2, 3)
    with pytest.raises(ValueError, match="kernel_size=.*does not fit in_shape"):
        Conv2d((1, 3, 3), 2, 5)
    with pytest.raises(ValueError, match="stride must be an int >= 1.*got 0"):
        Conv2d((1, 5, 5), 2, 3, stride=0)
    with pytest.raises(ValueError, match="Direct does not take bias=True"):
        Direct(3, bias=True)
    with pytest.raises(ValueError, match=r"weight_range must be \(low, high\).*\(1.0, 0.0\)"):
        Linear(3, 2, weight_range=(1.0, 0.0))
