"""Two processes on CPU with ``strategy="ddp_local"`` (gloo): identical learned state on both
ranks after every batch, and the same learned state as one process with twice the batch."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning_helpers import QUIET, assert_states_close

SCRIPTS = Path(__file__).parent / "scripts"

pytestmark = QUIET
BATCH_SIZE = 4  # per process
BATCHES = 3
LEARNED = ("weight", "theta", "class_counts", "class_samples")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def learned(state: dict) -> dict:
    return {key: state[key] for key in LEARNED}


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "WORLD_SIZE", "RANK")}
    env.update(
        CUDA_VISIBLE_DEVICES="",
        OMP_NUM_THREADS="1",  # two processes on two cores
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
    )
    env.pop("PL_GLOBAL_SEED", None)
    command = [
        sys.executable,
        str(SCRIPTS / "ddp_fit.py"),
        str(out),
        "--devices=2",
        "--strategy=ddp_local",
        f"--batch-size={BATCH_SIZE}",
        f"--batches={BATCHES}",
    ]
    # its own session, so that on a timeout rank 0 and the rank 1 it launched both go
    process = subprocess.Popen(
        command,
        env=env,
        cwd=out,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    import ddp_fit

    out = tmp_path_factory.mktemp("single")
    ddp_fit.run(out, devices=1, strategy="auto", batch_size=2 * BATCH_SIZE, batches=BATCHES)
    return out


def load(path: Path) -> dict:
    return torch.load(path, weights_only=False)


def test_ranks_see_interleaved_halves_of_the_single_process_batches(two_process_run):
    for batch in range(BATCHES):
        start = 2 * BATCH_SIZE * batch
        rank0 = load(two_process_run / f"rank0_batch{batch}.pt")
        rank1 = load(two_process_run / f"rank1_batch{batch}.pt")
        assert int(rank0["world_size"]) == int(rank1["world_size"]) == 2
        assert rank0["index"].tolist() == list(range(start, start + 2 * BATCH_SIZE, 2))
        assert rank1["index"].tolist() == list(range(start + 1, start + 2 * BATCH_SIZE, 2))


def test_learned_state_identical_on_both_ranks_after_every_batch(two_process_run):
    previous = None
    for batch in range(BATCHES):
        rank0 = learned(load(two_process_run / f"rank0_batch{batch}.pt"))
        rank1 = learned(load(two_process_run / f"rank1_batch{batch}.pt"))
        assert_states_close(rank0, rank1, atol=0, what=f"batch {batch}")
        if previous is not None:  # something was learned (else equality proves little)
            for key in LEARNED:
                assert not torch.equal(previous[key], rank0[key]), (batch, key)
        previous = rank0


def test_two_processes_learn_what_one_process_learns_from_the_union(
    two_process_run, one_process_run
):
    for batch in range(BATCHES):
        single = load(one_process_run / f"rank0_batch{batch}.pt")
        start = 2 * BATCH_SIZE * batch
        assert single["index"].tolist() == list(range(start, start + 2 * BATCH_SIZE))
        two = load(two_process_run / f"rank0_batch{batch}.pt")
        assert_states_close(learned(two), learned(single), atol=1e-5, what=f"batch {batch}")


def test_the_checkpoint_holds_what_all_ranks_learned(two_process_run, one_process_run):
    two = load(two_process_run / "final.ckpt")["state_dict"]
    single = load(one_process_run / "final.ckpt")["state_dict"]
    keys = [
        "network.connections.input_exc.weight",
        "network.neurons.exc.theta",
        "readout.class_counts",
        "readout.class_samples",
    ]
    for key in keys:
        torch.testing.assert_close(two[key], single[key], atol=1e-5, rtol=0, msg=key)
    assert float(two["readout.class_samples"].sum()) == 2 * BATCH_SIZE * BATCHES


def test_every_rank_logs_the_epoch_rate_of_the_union(two_process_run, one_process_run):
    single = load(one_process_run / "rank0_rates.pt")
    assert set(single) == {"rate/exc", "rate/inh"}
    assert float(single["rate/exc"]) > 0
    for rank in (0, 1):
        rates = load(two_process_run / f"rank{rank}_rates.pt")
        assert set(rates) == set(single)
        for key, value in single.items():
            assert float(rates[key]) == pytest.approx(float(value), rel=1e-6), (rank, key)
