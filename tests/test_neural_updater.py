"""Updater, ParameterUpdate, bounds and post-update hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from celltrain.neural import (
    ALIF,
    LIF,
    Clamp,
    Conv2d,
    Direct,
    HardBound,
    Layer,
    Linear,
    Normalize,
    ParameterUpdate,
    PowerBound,
    SoftBound,
    Unbounded,
    Updater,
)


def buffer_bytes(module: nn.Module) -> int:
    return sum(b.numel() * b.element_size() for b in module.buffers())


# ---------------------------------------------------------------------------------- bounds


SCALES = [1e-12, 1e-3, 1.0, 1e3, 1e6]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("kind", "scale"),
    # w + inf - inf is undefined for the hard bound; the soft bound is exact even at infinity
    [(SoftBound, s) for s in [*SCALES, float("inf")]] + [(HardBound, s) for s in SCALES],
)
def test_bounds_keep_weights_inside_for_any_update_size(kind, seed, scale):
    """Through the Updater (``w += delta`` rounds): never outside [minimum, maximum]."""
    g = torch.Generator().manual_seed(seed)
    low, high = sorted(float(x) for x in (torch.rand(2, generator=g) * 200 - 100))
    n = 3000
    w = low + (high - low) * torch.rand(n, generator=g)
    w[:3] = torch.tensor([low, high, (low + high) / 2])
    pos = torch.rand(n, generator=g) * scale
    neg = torch.rand(n, generator=g) * scale
    pos[::7] = 0.0
    neg[::5] = 0.0
    for p, q in ((pos, neg), (pos, torch.zeros_like(neg)), (torch.zeros_like(pos), neg)):
        conn = Direct(n, weight=w, bound=kind(low, high))
        for _ in range(3):
            conn.updater.weight.add(p, q)
            conn.updater.step()
            new = conn.weight.detach()
            assert torch.isfinite(new).all()
            assert new.min() >= low and new.max() <= high, (new.min(), new.max(), low, high)


def test_soft_bound_formula_and_small_update_limit():
    bound = SoftBound(-1.0, 2.0)
    w = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=torch.float64)
    pos = torch.tensor([0.3, 0.0, 2.0, 0.1], dtype=torch.float64)
    neg = torch.tensor([0.0, 0.7, 1.0, 0.4], dtype=torch.float64)
    expected = (2.0 - w) * (1 - torch.exp(-pos)) - (w + 1.0) * (1 - torch.exp(-neg))
    torch.testing.assert_close(bound(w, pos, neg), expected)
    # small updates: the classic multiplicative rule
    tiny_p, tiny_n = pos * 1e-6, neg * 1e-6
    torch.testing.assert_close(
        bound(w, tiny_p, tiny_n), (2.0 - w) * tiny_p - (w + 1.0) * tiny_n, rtol=1e-5, atol=0
    )


def test_hard_bound_clamps():
    bound = HardBound(0.0, 1.0)
    w = torch.tensor([0.2, 0.9, 0.5, 0.1])
    pos = torch.tensor([0.1, 0.5, 0.0, 1e6])
    neg = torch.tensor([0.0, 0.0, 0.8, 0.0])
    torch.testing.assert_close(w + bound(w, pos, neg), torch.tensor([0.3, 1.0, 0.0, 1.0]))


@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0])
def test_power_bound_formula(mu):
    bound = PowerBound(-0.5, 1.5, mu=mu)
    g = torch.Generator().manual_seed(1)
    w = torch.rand(50, generator=g, dtype=torch.float64) * 2 - 0.5
    pos, neg = (torch.rand(50, generator=g, dtype=torch.float64) for _ in range(2))
    expected = torch.tensor(
        [
            (1.5 - wi) ** mu * p - (wi + 0.5) ** mu * n
            for wi, p, n in zip(w.tolist(), pos.tolist(), neg.tolist())
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(bound(w, pos, neg), expected)


def test_unbounded_is_pos_minus_neg():
    pos, neg = torch.rand(5), torch.rand(5)
    assert torch.equal(Unbounded()(torch.rand(5), pos, neg), pos - neg)


def test_bad_bound_arguments_raise():
    with pytest.raises(ValueError, match="maximum must be above minimum=1.0, got 0.0"):
        SoftBound(1.0, 0.0)
    with pytest.raises(ValueError, match="minimum must be finite, got nan"):
        HardBound(float("nan"), 1.0)
    with pytest.raises(ValueError, match="mu must be a finite number > 0, got 0"):
        PowerBound(0.0, 1.0, mu=0)


# ----------------------------------------------------------------------------------- hooks


def test_clamp_hook():
    param = torch.tensor([-1.0, 0.5, 2.0])
    Clamp(0.0, 1.0)(param)
    assert torch.equal(param, torch.tensor([0.0, 0.5, 1.0]))
    param = torch.tensor([-1.0, 0.5, 2.0])
    Clamp(maximum=1.0)(param)
    assert torch.equal(param, torch.tensor([-1.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="Clamp needs minimum or maximum"):
        Clamp()
    with pytest.raises(ValueError, match="maximum must be >= minimum=1.0, got 0.0"):
        Clamp(1.0, 0.0)


@pytest.mark.parametrize("seed", range(3))
def test_normalize_each_target_row_sums_to_total(seed):
    g = torch.Generator().manual_seed(seed)
    conn = Linear((3, 4), 5, constraints=[Normalize(78.0)], bound=SoftBound(0.0, 1.0))
    conn.updater.weight.add(torch.rand(5, 12, generator=g), torch.rand(5, 12, generator=g))
    conn.updater.step()
    torch.testing.assert_close(conn.weight.sum(1), torch.full((5,), 78.0))
    conv = Conv2d((2, 6, 6), 3, 3, constraints=[Normalize(4.0)])
    conv.updater.step()
    torch.testing.assert_close(conv.weight.sum((1, 2, 3)), torch.full((3,), 4.0))
    # another target dimension
    param = torch.rand(4, 6, generator=g)
    Normalize(2.0, target_dim=1)(param)
    torch.testing.assert_close(param.sum(0), torch.full((6,), 2.0))


def test_normalize_leaves_zero_rows_and_rejects_vectors():
    param = torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    Normalize(2.0)(param)
    assert torch.equal(param, torch.tensor([[0.0, 0.0], [0.5, 1.5]]))
    with pytest.raises(ValueError, match=r"Normalize needs a weight.*got shape \(3,\)"):
        Normalize(1.0)(torch.ones(3))


def test_hooks_run_in_order_after_bound():
    seen = []
    conn = Linear(
        2,
        2,
        weight=torch.full((2, 2), 0.5),
        bound=HardBound(0.0, 1.0),
        constraints=[lambda p: seen.append(p.clone()), Clamp(maximum=0.8)],
    )
    conn.updater.weight.add(torch.full((2, 2), 10.0))
    conn.updater.step()
    assert torch.equal(seen[0], torch.ones(2, 2))  # after the bound, before the clamp
    assert torch.equal(conn.weight, torch.full((2, 2), 0.8))


# ---------------------------------------------------------------------------------- Updater


def test_apply_adds_bounded_sum_and_clears():
    w0 = torch.rand(3, 4)
    conn = Linear(4, 3, weight=w0, bound=SoftBound(0.0, 1.0))
    g = torch.Generator().manual_seed(0)
    terms = [(torch.rand(3, 4, generator=g), torch.rand(3, 4, generator=g)) for _ in range(5)]
    for pos, neg in terms:
        conn.updater.weight.add(pos, neg)
    conn.updater.weight.add(pos=terms[0][0])  # only potentiation
    conn.updater.weight.add(neg=terms[0][1])  # only depression
    total_pos = sum(p for p, _ in terms) + terms[0][0]
    total_neg = sum(n for _, n in terms) + terms[0][1]
    assert conn.updater.pending and conn.updater.weight.pending
    torch.testing.assert_close(conn.updater.weight.pos, total_pos)
    assert torch.equal(conn.weight, w0)  # nothing changes before apply()
    assert conn.updater.step() is conn.updater
    torch.testing.assert_close(
        conn.weight.detach(), w0 + SoftBound(0.0, 1.0)(w0, total_pos, total_neg)
    )
    assert not conn.updater.pending
    assert not conn.updater.weight.pos.any() and not conn.updater.weight.neg.any()
    # applying again changes nothing
    w1 = conn.weight.detach().clone()
    conn.updater.step()
    assert torch.equal(conn.weight, w1)


def test_clear_drops_without_applying():
    conn = Linear(3, 2)
    w0 = conn.weight.detach().clone()
    conn.updater.weight.add(torch.ones(2, 3), torch.zeros(2, 3))
    conn.updater.clear()
    assert not conn.updater.pending
    conn.updater.step()
    assert torch.equal(conn.weight, w0)


def test_memory_does_not_grow_with_terms():
    conn = Linear(20, 10)
    before = buffer_bytes(conn.updater)
    assert before == 2 * 10 * 20 * 4  # pos and neg
    pos = torch.full((10, 20), 1e-4)
    for _ in range(10_000):
        conn.updater.weight.add(pos, pos)
    assert buffer_bytes(conn.updater) == before
    assert len(list(conn.updater.buffers())) == 2
    torch.testing.assert_close(
        conn.updater.weight.pos, torch.full((10, 20), 1.0), rtol=1e-3, atol=0
    )


def test_add_with_wrong_shape_raises():
    conn = Linear(3, 2)
    with pytest.raises(
        ValueError, match=r"pos must have the parameter's shape \(2, 3\), got \(3, 2\)"
    ):
        conn.updater.weight.add(torch.zeros(3, 2))
    with pytest.raises(
        ValueError, match=r"neg must have the parameter's shape \(2, 3\), got \(6,\)"
    ):
        conn.updater.weight.add(None, torch.zeros(6))
    assert not conn.updater.pending


def test_updater_of_unknown_parameter_raises():
    with pytest.raises(AttributeError, match="Linear has no tensor parameter 'gain'"):
        Updater(Linear(2, 2), ["gain"])


def test_pending_sums_are_buffers_in_state_dict():
    conn = Linear(3, 2)
    conn.updater.weight.add(torch.ones(2, 3))
    state = conn.state_dict()
    assert torch.equal(state["updater.weight.pos"], torch.ones(2, 3))
    other = Linear(3, 2)
    other.load_state_dict(state)
    assert other.updater.pending
    assert isinstance(conn.updater["weight"], ParameterUpdate)


def test_module_apply_fn_still_works_on_layer():
    layer = Layer(
        {"exc": ALIF(4), "inh": LIF(4)},
        {"in_exc": ("input", "exc", Linear(3, 4)), "exc_inh": ("exc", "inh", Linear(4, 4))},
    )
    w = layer.connections["in_exc"].weight.detach().clone()
    layer.connections["in_exc"].updater.weight.add(torch.ones(4, 3))
    seen = []
    assert layer.apply(lambda m: seen.append(type(m).__name__)) is layer
    assert seen.count("Updater") == 3 and seen.count("ParameterUpdate") == 3
    assert seen[-1] == "Layer"
    # nn.Module.apply(fn) must not have applied pending updates
    assert torch.equal(layer.connections["in_exc"].weight, w)
    assert layer.connections["in_exc"].updater.pending
    # the classic use: re-initialise every Linear weight
    layer.apply(lambda m: nn.init.constant_(m.weight, 0.25) if isinstance(m, Linear) else None)
    assert (layer.connections["exc_inh"].weight == 0.25).all()
    # and .double() (which goes through _apply) converts pending sums too
    layer.double()
    assert layer.connections["in_exc"].updater.weight.pos.dtype == torch.float64
