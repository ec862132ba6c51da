"""Data modules: IDX files, the digits, and the training order across processes."""

import gzip
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning_helpers import QUIET, quiet_trainer, tiny_model

from celltrain.lightning import DigitsDataModule, IDXDataModule, read_idx
from celltrain.lightning.data import EpochShuffleSampler, ShardedSampler

pytestmark = QUIET
TRAIN, TEST, SIDE = 12, 5, 4


def write_idx(path: Path, array: np.ndarray, magic_type: int = 0x08) -> None:
    """MNIST-format IDX: 0x0000 | type | ndim, big-endian dims, then the data."""
    header = struct.pack(">HBB", 0, magic_type, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(">u1").tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture(params=["plain", "gz"])
def idx_root(tmp_path, request):
    rng = np.random.default_rng(0)
    suffix = ".gz" if request.param == "gz" else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (TRAIN, SIDE, SIDE), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, TRAIN, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (TEST, SIDE, SIDE), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, TEST, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(tmp_path / (name + suffix), array)
    return tmp_path, arrays


def test_idx_header_magic_numbers(idx_root):
    root, arrays = idx_root
    (path,) = root.glob("train-images-idx3-ubyte*")
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    assert struct.unpack(">I", raw[:4])[0] == 0x00000803
    (path,) = root.glob("train-labels-idx1-ubyte*")
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    assert struct.unpack(">I", raw[:4])[0] == 0x00000801
    np.testing.assert_array_equal(read_idx(path), arrays["train-labels-idx1-ubyte"])


def test_idx_splits_shapes_and_values(idx_root):
    root, arrays = idx_root
    data = IDXDataModule(str(root), batch_size=4, val_size=3, shuffle=False)
    data.setup("fit")
    images = arrays["train-images-idx3-ubyte"].reshape(TRAIN, -1) / 255.0
    labels = arrays["train-labels-idx1-ubyte"].astype(np.int64)
    expected = {
        "train": (images[:9], labels[:9]),
        "val": (images[9:], labels[9:]),
        "test": (
            arrays["t10k-images-idx3-ubyte"].reshape(TEST, -1) / 255.0,
            arrays["t10k-labels-idx1-ubyte"].astype(np.int64),
        ),
    }
    for split, (x, y) in expected.items():
        got = data.splits[split]
        assert got.x.shape == (len(y), SIDE * SIDE) and got.x.dtype == torch.get_default_dtype()
        assert got.y.dtype == torch.long
        np.testing.assert_allclose(got.x.numpy(), x, rtol=1e-6)
        np.testing.assert_array_equal(got.y.numpy(), y)
    assert data.input_shape == (SIDE * SIDE,)
    x, y, index = next(iter(data.train_dataloader()))
    assert x.shape == (4, SIDE * SIDE) and index.tolist() == [0, 1, 2, 3]
    assert [len(b[0]) for b in data.val_dataloader()] == [3]
    assert sum(len(b[0]) for b in data.test_dataloader()) == TEST


def test_fit_on_idx_files(idx_root, tmp_path):
    root, _ = idx_root
    data = IDXDataModule(str(root), batch_size=3, val_size=3)
    trainer = quiet_trainer(tmp_path / "run", max_epochs=1, limit_val_batches=1)
    trainer.fit(tiny_model(inputs=SIDE * SIDE, neurons=4, steps=10), data)
    assert trainer.global_step == 3  # 9 training samples, batches of 3


def test_missing_file_is_named(idx_root):
    root, _ = idx_root
    for path in root.glob("t10k-labels-idx1-ubyte*"):
        path.unlink()
    data = IDXDataModule(str(root), val_size=3)
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        data.setup()


def test_corrupt_files_raise_value_error(tmp_path):
    good = np.zeros((2, 3), dtype=np.uint8)
    write_idx(tmp_path / "ok", good)
    raw = bytearray((tmp_path / "ok").read_bytes())
    raw[0] = 0x12  # corrupt magic
    (tmp_path / "magic").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="bad magic"):
        read_idx(tmp_path / "magic")
    write_idx(tmp_path / "type", good, magic_type=0x07)
    with pytest.raises(ValueError, match="unknown IDX data type"):
        read_idx(tmp_path / "type")
    (tmp_path / "short").write_bytes(bytes((tmp_path / "ok").read_bytes()[:-1]))
    with pytest.raises(ValueError, match=r"header says \(2, 3\)"):
        read_idx(tmp_path / "short")
    # a corrupt training image file makes the data module fail the same way
    root = tmp_path / "root"
    root.mkdir()
    (root / "train-images-idx3-ubyte").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="bad magic"):
        IDXDataModule(str(root)).setup()


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        DigitsDataModule(batch_size=0)
    with pytest.raises(ValueError, match="val_size and test_size"):
        DigitsDataModule(val_size=0).setup()


def test_digits_split_is_fixed_and_complete():
    data = DigitsDataModule(val_size=100, test_size=200)
    data.setup()
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes == {"train": 1797 - 300, "val": 100, "test": 200}
    x = torch.cat([data.splits[k].x for k in ("train", "val", "test")])
    assert x.shape == (1797, 64) and float(x.min()) == 0.0 and float(x.max()) == 1.0
    again = DigitsDataModule(val_size=100, test_size=200)
    again.setup()
    assert torch.equal(again.splits["test"].x, data.splits["test"].x)


# the training order across processes -------------------------------------------------------
@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_interleave_the_single_process_order(shuffle):
    size, world, batch = 23, 2, 3
    for epoch in (0, 1):
        order = EpochShuffleSampler(size, seed=5)
        order.set_epoch(epoch)
        single = list(order) if shuffle else list(range(size))
        shards = []
        for rank in range(world):
            sampler = ShardedSampler(size, world, rank, shuffle, seed=5)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
        assert [len(s) for s in shards] == [12, 12]  # padded to a multiple of world
        padded = single + single[:1]
        for i in range(len(shards[0]) // batch):
            union = sorted(s for shard in shards for s in shard[i * batch : (i + 1) * batch])
            assert union == sorted(padded[i * world * batch : (i + 1) * world * batch])
    if shuffle:  # epochs differ
        a, b = ShardedSampler(size, world, 0, True, 5), ShardedSampler(size, world, 0, True, 5)
        b.set_epoch(1)
        assert list(a) != list(b)


def fake_trainer(world_size, rank, use_distributed_sampler=True):
    return SimpleNamespace(
        world_size=world_size,
        global_rank=rank,
        _accelerator_connector=SimpleNamespace(use_distributed_sampler=use_distributed_sampler),
    )


def test_train_loader_shards_only_with_several_processes():
    data = DigitsDataModule(batch_size=4, shuffle=False)
    data.trainer = fake_trainer(2, 1)
    loader = data.train_dataloader()
    assert isinstance(loader.sampler, ShardedSampler)
    assert next(iter(loader))[2].tolist() == [1, 3, 5, 7]
    data.trainer = fake_trainer(2, 1, use_distributed_sampler=False)
    assert not isinstance(data.train_dataloader().sampler, ShardedSampler)
    data.trainer = fake_trainer(1, 0)
    assert next(iter(data.train_dataloader()))[2].tolist() == [0, 1, 2, 3]
    shuffled = DigitsDataModule(batch_size=4, shuffle=True, seed=2)
    loader = shuffled.train_dataloader()
    assert isinstance(loader.sampler, EpochShuffleSampler)
    assert next(iter(loader))[2].tolist() == list(EpochShuffleSampler(len(loader.dataset), 2))[:4]
