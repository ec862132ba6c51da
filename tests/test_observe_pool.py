"""MonitorPool of celltrain.observe: aliasing rules, modes, ownership; with fake and real
layers."""

import copy
import gc
import math

import pytest
import torch
from torch import nn

from celltrain.neural import LIF, Layer, Linear
from celltrain.observe import History, Mean, Monitor, MonitorPool, Sum, Trace


class FakeNeuron(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = size
        self.spike = torch.zeros(0, dtype=torch.bool)
        self.voltage = torch.zeros(0)

    def forward(self, current):
        self.voltage = current
        self.spike = current > 0.5
        return self.spike


class FakeSynapse(nn.Module):
    def __init__(self):
        super().__init__()
        self.spike = torch.zeros(0, dtype=torch.bool)


class FakeConnection(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(n_out, n_in), requires_grad=False)
        self.synapse = FakeSynapse()

    def forward(self, spike):
        self.synapse.spike = spike
        return spike.float() @ self.weight.t()


class FakeLayer(nn.Module):
    """Neurons and connections by name, like celltrain.neural.Layer (inputs are 'input')."""

    def __init__(self, dt=1.0):
        super().__init__()
        self.dt = dt
        self.neurons = nn.ModuleDict({"exc": FakeNeuron(3)})
        self.connections = nn.ModuleDict(
            {"inp_exc": FakeConnection(4, 3), "inp_exc2": FakeConnection(4, 3)}
        )
        self.wiring = {"inp_exc": ("input", "exc"), "inp_exc2": ("input", "exc")}

    def forward(self, input):
        currents = {}
        for name, connection in self.connections.items():
            target = self.wiring[name][1]
            currents[target] = currents.get(target, 0) + connection(input)
        return {name: neuron(currents[name]) for name, neuron in self.neurons.items()}

    def cell(self, name):
        return FakeCell(self, name)


class FakeCell:
    def __init__(self, layer, name):
        self.layer = layer
        self.name = name
        self.target = layer.wiring[name][1]

    def resolve(self, attr):
        head, _, rest = attr.partition(".")
        prefixes = {"neuron": f"neurons.{self.target}", "connection": f"connections.{self.name}"}
        if head not in prefixes:
            raise AttributeError(f"attr must start with 'neuron' or 'connection', got {attr!r}")
        path = prefixes[head] + (f".{rest}" if rest else "")
        obj = self.layer
        for part in path.split("."):
            if not hasattr(obj, part):
                raise AttributeError(f"cell {self.name!r}: {attr!r} does not exist ({path!r})")
            obj = getattr(obj, part)
        return path


TRACE = Monitor.partial(Trace, tau=20.0)


def layer_pool(*names, layer=None):
    """A pool observing cells of one (fake) layer: names 'a', 'b' -> connections."""
    layer = FakeLayer() if layer is None else layer
    pool = MonitorPool()
    connections = {"a": "inp_exc", "b": "inp_exc2"}
    for name in names:
        pool.add_observed(name, layer.cell(connections[name]))
    return layer, pool


def step(layer, steps=3):
    for _ in range(steps):
        layer(input=torch.rand(2, 4) < 0.5)


def test_cells_of_one_layer_share_postsynaptic_monitors_only():
    layer, pool = layer_pool("a", "b")
    post_a = pool.add_monitor("a", "post", "neuron.spike", TRACE)
    post_b = pool.add_monitor("b", "post", "neuron.spike", Monitor.partial(Trace, tau=20.0))
    pre_a = pool.add_monitor("a", "pre", "connection.synapse.spike", TRACE)
    pre_b = pool.add_monitor("b", "pre", "connection.synapse.spike", TRACE)
    assert post_a is post_b and post_a.module is layer and post_a.attr == "neurons.exc.spike"
    assert pre_a is not pre_b and pre_b.attr == "connections.inp_exc2.synapse.spike"
    assert len(list(pool.monitors)) == 3 and len(list(pool.named_monitors)) == 4
    assert len(layer._forward_hooks) == 3
    step(layer)
    assert post_a.peek().shape == (2, 3) and pre_a.peek().shape == (2, 4)


def test_monitors_of_different_layers_never_alias():
    # identical names and paths, but two layer objects
    _, pool = layer_pool("a")
    other = FakeLayer()
    pool.add_observed("b", other.cell("inp_exc"))
    first = pool.add_monitor("a", "post", "neuron.spike", TRACE)
    second = pool.add_monitor("b", "post", "neuron.spike", TRACE)
    assert first is not second and second.module is other


@pytest.mark.parametrize(
    ("request_b", "shared"),
    [
        (("post", "neuron.spike", TRACE, {}), True),
        (("post", "neuron.voltage", TRACE, {}), False),  # another attribute
        (("other", "neuron.spike", TRACE, {}), False),  # another monitor name
        (("post", "neuron.spike", Monitor.partial(Trace, tau=25.0), {}), False),  # settings
        (("post", "neuron.spike", Monitor.partial(Trace, tau=20.0, mode="nearest"), {}), False),
        (("post", "neuron.spike", Monitor.partial(Mean), {}), False),  # another reducer
        (("post", "neuron.spike", TRACE, {"amp": 1.0}), False),  # another tag
    ],
)
def test_aliasing_rules(request_b, shared):
    _, pool = layer_pool("a", "b")
    first = pool.add_monitor("a", "post", "neuron.spike", TRACE, False, amp=None)
    name, attr, constructor, tags = request_b
    second = pool.add_monitor("b", name, attr, constructor, False, **({"amp": None} | tags))
    assert (first is second) is shared


def test_equal_tags_share_and_different_tags_do_not():
    _, pool = layer_pool("a", "b")
    first = pool.add_monitor("a", "post", "neuron.spike", TRACE, False, kind="x", w=torch.ones(2))
    same = pool.add_monitor("b", "post", "neuron.spike", TRACE, False, kind="x", w=torch.ones(2))
    assert first is same
    pool.del_monitor("b", "post")
    other = pool.add_monitor("b", "post", "neuron.spike", TRACE, False, kind="x", w=torch.zeros(2))
    assert other is not first


def test_a_plain_callable_constructor_is_equal_only_to_itself():
    _, pool = layer_pool("a", "b")

    def build(attr, module):
        return Monitor(Sum(), module, attr)

    def build_too(attr, module):
        return Monitor(Sum(), module, attr)

    first = pool.add_monitor("a", "post", "neuron.spike", build)
    assert pool.add_monitor("b", "post", "neuron.spike", build) is first
    pool.del_monitor("b", "post")
    assert pool.add_monitor("b", "post", "neuron.spike", build_too) is not first


def test_unique_bypasses_sharing_and_replaces():
    layer, pool = layer_pool("a", "b")
    first = pool.add_monitor("a", "post", "neuron.spike", TRACE)
    unique = pool.add_monitor("b", "post", "neuron.spike", TRACE, True)
    assert unique is not first
    # a unique monitor is never handed out to later requests
    pool.del_monitor("a", "post")
    assert not first.registered
    again = pool.add_monitor("a", "post", "neuron.spike", TRACE)
    assert again is not unique
    # unique=True replaces the monitor of the same (observed, name), deregistering it
    replaced = pool.add_monitor("b", "post", "neuron.spike", TRACE, True)
    assert replaced is not unique and pool.get_monitor("b", "post") is replaced
    assert not unique.registered and replaced.registered
    assert len(layer._forward_hooks) == 2


def test_unique_replacement_keeps_a_monitor_still_used_elsewhere():
    _, pool = layer_pool("a", "b")
    shared = pool.add_monitor("a", "post", "neuron.spike", TRACE)
    assert pool.add_monitor("b", "post", "neuron.spike", TRACE) is shared
    fresh = pool.add_monitor("a", "post", "neuron.spike", TRACE, True)
    assert fresh is not shared and shared.registered
    assert pool.get_monitor("b", "post") is shared
    assert {id(m) for m in pool.monitors} == {id(shared), id(fresh)}


def test_same_request_again_returns_the_monitor_and_a_different_one_raises():
    _, pool = layer_pool("a")
    first = pool.add_monitor("a", "post", "neuron.spike", TRACE, False, kind="x")
    equal = Monitor.partial(Trace, tau=20.0)
    assert pool.add_monitor("a", "post", "neuron.spike", equal, False, kind="x") is first
    with pytest.raises(ValueError, match="'a' already has a monitor 'post'"):
        pool.add_monitor("a", "post", "neuron.voltage", TRACE, False, kind="x")
    with pytest.raises(ValueError, match="'a' already has a monitor 'post'"):
        pool.add_monitor("a", "post", "neuron.spike", TRACE, False, kind="y")
    assert pool.get_monitor("a", "post") is first


def test_eval_mode_pool_adds_deregistered_monitors():
    layer, pool = layer_pool("a")
    assert pool.eval() is pool
    monitor = pool.add_monitor("a", "post", "neuron.spike", TRACE)
    assert not monitor.registered and not layer._forward_hooks
    step(layer)
    assert monitor.peek() is None
    assert pool.train() is pool and monitor.registered
    step(layer)
    content = monitor.peek()
    pool.train(False)
    assert not monitor.registered
    step(layer)
    assert monitor.peek() is content  # kept, not cleared, not updated
    pool.train(True)
    train_added = pool.add_monitor("a", "pre", "connection.synapse.spike", TRACE)
    assert train_added.registered


def test_del_observed_keeps_a_monitor_still_used_by_another():
    layer, pool = layer_pool("a", "b")
    shared = pool.add_monitor("a", "post", "neuron.spike", TRACE)
    assert pool.add_monitor("b", "post", "neuron.spike", TRACE) is shared
    own = pool.add_monitor("a", "pre", "connection.synapse.spike", TRACE)
    pool.del_observed("a")
    assert shared.registered and not own.registered
    assert list(pool.monitors) == [shared]
    assert list(pool.named_monitors) == [(("b", "post"), shared)]
    assert len(layer._forward_hooks) == 1
    with pytest.raises(AttributeError, match="no observed object named 'a'"):
        pool.get_monitor("a", "post")
    pool.del_observed("b")
    assert not shared.registered and not list(pool.monitors) and not layer._forward_hooks
    del shared, own
    gc.collect()


def test_del_monitor_drops_only_unused_monitors():
    layer, pool = layer_pool("a", "b")
    shared = pool.add_monitor("a", "post", "neuron.spike", TRACE)
    pool.add_monitor("b", "post", "neuron.spike", TRACE)
    pool.del_monitor("a", "post")
    assert shared.registered and pool.get_monitor("a", "post") is None
    pool.del_monitor("b", "post")
    assert not shared.registered and not list(pool.monitors)
    with pytest.raises(AttributeError, match="'b' has no monitor named 'post'"):
        pool.del_monitor("b", "post")
    with pytest.raises(AttributeError, match="no observed object named 'c'"):
        pool.del_monitor("c", "post")


def test_unknown_names():
    _, pool = layer_pool("a")
    assert pool.get_monitor("a", "nothing") is None
    for call in (
        lambda: pool.get_monitor("x", "post"),
        lambda: pool.add_monitor("x", "post", "neuron.spike", TRACE),
        lambda: list(pool.named_monitors_of("x")),
        lambda: pool.del_observed("x"),
    ):
        with pytest.raises(AttributeError, match="no observed object named 'x'"):
            call()
    with pytest.raises(ValueError, match="observed object named 'a' already exists"):
        pool.add_observed("a", FakeLayer())
    with pytest.raises(ValueError, match="observed name must be a non-empty string"):
        pool.add_observed("a.b", FakeLayer())
    with pytest.raises(TypeError, match="cell .* or an nn.Module, got int"):
        pool.add_observed("c", 3)


def test_bad_attribute_paths():
    _, pool = layer_pool("a")
    pool.add_observed("module", FakeLayer())
    with pytest.raises(AttributeError, match="'neuron.threshold' does not exist"):
        pool.add_monitor("a", "post", "neuron.threshold", TRACE)
    with pytest.raises(AttributeError, match="must start with 'neuron' or 'connection'"):
        pool.add_monitor("a", "post", "layer.dt", TRACE)
    with pytest.raises(AttributeError, match=r"'neurons\.exc\.threshold'"):
        pool.add_monitor("module", "post", "neurons.exc.threshold", TRACE)
    with pytest.raises(AttributeError, match=r"goes through 'wiring', a dict"):
        pool.add_monitor("module", "post", "wiring.inp_exc", TRACE)
    assert not list(pool.monitors)


def test_a_module_is_observed_as_itself():
    layer, pool = layer_pool()
    pool.add_observed("layer", layer)
    pool.add_observed("cell", layer.cell("inp_exc"))
    direct = pool.add_monitor("layer", "post", "neurons.exc.spike", TRACE)
    assert pool.add_monitor("cell", "post", "neuron.spike", TRACE) is direct


def test_named_monitors_and_ownership():
    _, pool = layer_pool("a", "b")
    post = pool.add_monitor("a", "post", "neuron.spike", TRACE)
    pool.add_monitor("b", "post", "neuron.spike", TRACE)
    keys = pool.add_monitor("b", "keys", "connection.synapse.spike", TRACE)
    assert dict(pool.named_monitors_of("b")) == {"post": post, "keys": keys}
    assert [key for key, _ in pool.named_monitors] == [("a", "post"), ("b", "post"), ("b", "keys")]
    # each distinct monitor is a submodule once, under the key of one of its requests
    assert [name for name, m in pool.named_modules() if isinstance(m, Monitor)] == [
        "_owned.a.post",
        "_owned.b.keys",
    ]
    pool.del_observed("a")
    assert [name for name, m in pool.named_modules() if isinstance(m, Monitor)] == [
        "_owned.b.keys",
        "_owned.b.post",
    ]


def test_state_dict_saves_each_monitor_once_and_loads_into_a_fresh_pool():
    layer, pool = layer_pool("a", "b")
    pool.add_monitor("a", "post", "neuron.spike", TRACE)
    pool.add_monitor("b", "post", "neuron.spike", TRACE)
    pool.add_monitor("b", "history", "neuron.voltage", Monitor.partial(History, size=2))
    step(layer)
    state = pool.state_dict()
    assert sorted(state) == [
        "_owned.a.post.reducer._extra_state",
        "_owned.a.post.reducer.value",
        "_owned.b.history.reducer._extra_state",
        "_owned.b.history.reducer.data",
    ]
    _, fresh = layer_pool("a", "b", layer=layer)
    fresh.add_monitor("a", "post", "neuron.spike", TRACE)
    fresh.add_monitor("b", "post", "neuron.spike", TRACE)
    fresh.add_monitor("b", "history", "neuron.voltage", Monitor.partial(History, size=2))
    fresh.load_state_dict(state)
    for (key, loaded), (_, saved) in zip(fresh.named_monitors, pool.named_monitors):
        torch.testing.assert_close(loaded.peek(), saved.peek(), msg=str(key))


def test_clear_empties_every_monitor_and_keeps_registration():
    layer, pool = layer_pool("a", "b")
    monitors = [
        pool.add_monitor("a", "post", "neuron.spike", TRACE),
        pool.add_monitor("b", "pre", "connection.synapse.spike", TRACE),
    ]
    step(layer)
    pool.clear()
    assert all(m.peek() is None and m.registered for m in monitors)


def test_pool_moves_monitor_state_but_not_the_layer():
    layer, pool = layer_pool("a")
    monitor = pool.add_monitor("a", "post", "neuron.voltage", Monitor.partial(Sum))
    step(layer)
    pool.to(torch.float64)
    assert monitor.peek().dtype == torch.float64
    assert layer.connections["inp_exc"].weight.dtype == torch.float32


def test_dropped_pool_leaves_no_hooks():
    layer, pool = layer_pool("a", "b")
    pool.add_monitor("a", "post", "neuron.spike", TRACE)
    pool.add_monitor("b", "pre", "connection.synapse.spike", TRACE)
    assert len(layer._forward_hooks) == 2
    del pool
    gc.collect()
    assert not layer._forward_hooks


# ---- the real celltrain.neural Layer and Cell -------------------------------------------


def real_layer():
    torch.manual_seed(0)
    return Layer(
        neurons={"exc": LIF(5, threshold_voltage=-64.0)},
        connections={
            "inp": ("input", "exc", Linear(8, 5, weight_range=(0.5, 1.0))),
            "inp2": ("input", "exc", Linear(8, 5, weight_range=(0.0, 0.5))),
        },
        inputs=("input",),
        dt=1.0,
    )


def test_plain_loop_records_spikes_and_traces_of_a_real_layer():
    layer = real_layer()
    pool = MonitorPool()
    pool.add_observed("inp", layer.cell("inp"))
    pool.add_observed("inp2", layer.cell("inp2"))
    tau, steps = 5.0, 30
    post = pool.add_monitor("inp", "post", "neuron.spike", Monitor.partial(Trace, tau=tau))
    assert pool.add_monitor("inp2", "post", "neuron.spike", Monitor.partial(Trace, tau=tau)) is post
    pre = pool.add_monitor(
        "inp", "pre", "connection.synapse.spike", Monitor.partial(Trace, tau=tau)
    )
    pre2 = pool.add_monitor(
        "inp2", "pre", "connection.synapse.spike", Monitor.partial(Trace, tau=tau)
    )
    raster = pool.add_monitor("inp", "raster", "neuron.spike", Monitor.partial(History, size=steps))
    assert pre is not pre2 and post.attr == "neurons.exc.spike"
    assert pre.attr == "connections.inp.synapse.spike"

    inputs = torch.rand(steps, 2, 8) < 0.3
    outputs = []
    for spikes in inputs:
        outputs.append(layer(input=spikes)["exc"])
    outputs = torch.stack(outputs)
    assert outputs.any(), "the layer should spike for this test to mean anything"
    torch.testing.assert_close(raster.view(), outputs)
    ages = torch.arange(steps - 1, -1, -1, dtype=torch.float32).reshape(-1, 1, 1)
    decay = torch.exp(-ages * layer.dt / tau)
    torch.testing.assert_close(post.peek(), (outputs * decay).sum(0))
    torch.testing.assert_close(pre.peek(), (inputs * decay).sum(0))
    torch.testing.assert_close(pre2.peek(), pre.peek())

    # a new dt reaches the reducers from the next step on
    before = post.peek()
    layer.dt = 2.0
    silent = layer(input=torch.zeros(2, 8, dtype=torch.bool))["exc"]
    expected = before * math.exp(-2.0 / tau) + silent
    torch.testing.assert_close(post.peek(), expected)

    pool.eval()
    layer(input=inputs[0])
    torch.testing.assert_close(post.peek(), expected)


def test_a_copied_layer_and_pool_record_independently():
    layer, pool = layer_pool("a")
    monitor = pool.add_monitor("a", "pre", "connection.synapse.spike", Monitor.partial(Sum))
    step(layer, 2)
    layer_copy, pool_copy = copy.deepcopy((layer, pool))
    copied = pool_copy.get_monitor("a", "pre")
    assert copied.module is layer_copy and copied.registered
    same = pool_copy.add_monitor("a", "pre", "connection.synapse.spike", Monitor.partial(Sum))
    assert same is copied  # the copied request still aliases
    before = monitor.peek()
    torch.testing.assert_close(copied.peek(), before)
    layer_copy(input=torch.ones(2, 4, dtype=torch.bool))
    assert monitor.peek() is before and monitor.reducer.steps == 2
    torch.testing.assert_close(copied.peek(), before + 1)
    assert copied.reducer.steps == 3
