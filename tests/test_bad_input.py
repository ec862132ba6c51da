"""Bad input gets a clear error at the call that received it (issue 15, items 2 and 3): IDX files
cut short, without dimensions, with dimensions that overflow, plain files named ``.gz``, float or
signed images; labels outside the classes in validation and test; intensities outside [0, 1];
a zero time step. Each case names the argument or the file, the expectation and the value."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
from lightning_helpers import QUIET, quiet_trainer, tiny_model
from test_lightning_data import write_idx
from torch.utils.data import DataLoader

from celltrain.lightning import DiehlCook, IDXDataModule, IndexedDataset, read_idx
from celltrain.neural import voltage_resistance

pytestmark = QUIET


def idx_bytes(type_code: int, dims: tuple[int, ...], body: bytes) -> bytes:
    return (
        struct.pack(">HBB", 0, type_code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + body
    )


FILE_CASES = {
    "header cut short": (
        struct.pack(">HBB", 0, 0x08, 3) + b"\x00\x00\x00\x02",
        r"header is cut short: 3 dimensions need 16 bytes, the file has 8",
    ),
    "no dimension": (struct.pack(">HBB", 0, 0x08, 0), r"needs at least 1 dimension"),
    "dimensions that overflow": (
        idx_bytes(0x08, (2**32 - 1, 2**32 - 1, 2**32 - 1), b"\x00" * 8),
        r"header says \(4294967295, 4294967295, 4294967295\) but holds 8 values",
    ),
    "a body of half a value": (
        idx_bytes(0x0B, (2,), b"\x00\x01\x02"),
        r"header says \(2,\) but holds 1 values",
    ),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_broken_idx_files_name_the_file_and_the_problem(tmp_path, case):
    raw, message = FILE_CASES[case]
    path = tmp_path / "broken-idx"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_a_plain_file_named_gz_is_a_clear_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(idx_bytes(0x08, (1, 2, 2), b"\x00" * 4))  # not gzip data
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: not a readable gzip"):
        read_idx(path)
    path.write_bytes(gzip.compress(idx_bytes(0x08, (1, 2, 2), b"\x00" * 4))[:-6])  # truncated
    with pytest.raises(ValueError, match="not a readable gzip"):
        read_idx(path)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")


def write_split(root, images: np.ndarray, type_code: int) -> None:
    """Train and test files with ``images`` of an IDX type (and digit labels)."""
    for split in ("train", "t10k"):
        n = images.shape[0]
        raw = idx_bytes(
            type_code, images.shape, images.astype(images.dtype.newbyteorder(">")).tobytes()
        )
        (root / f"{split}-images-idx3-ubyte").write_bytes(raw)
        write_idx(root / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)


def test_float_idx_images_are_intensities_used_as_they_are(tmp_path):
    images = np.linspace(0.0, 1.0, 6 * 4, dtype=np.float32).reshape(6, 2, 2)
    write_split(tmp_path, images, 0x0D)
    x, _ = IDXDataModule(str(tmp_path), val_size=2).load()["train"]
    torch.testing.assert_close(x, torch.tensor(images[:4].reshape(4, -1)))


@pytest.mark.parametrize(
    ("images", "type_code", "message"),
    [
        (
            np.full((6, 2, 2), 255.0, dtype=np.float32),
            0x0D,
            r"float images must be intensities "
            r"in \[0, 1\], got values in \[255.0, 255.0\]",
        ),
        (np.full((6, 2, 2), np.nan, dtype=np.float64), 0x0E, r"float images must be intensities"),
        (np.full((6, 2, 2), -3, dtype=np.int16), 0x0B, r"unsigned bytes .* got int16"),
    ],
)
def test_idx_images_of_an_unknown_scale_are_refused(tmp_path, images, type_code, message):
    write_split(tmp_path, images, type_code)
    with pytest.raises(ValueError, match=message) as error:
        IDXDataModule(str(tmp_path), val_size=2).load()
    assert "train-images-idx3-ubyte" in str(error.value)


def loader(x, y):
    return DataLoader(IndexedDataset(x, y), batch_size=4)


@pytest.mark.parametrize("stage", ["validate", "test"])
@pytest.mark.parametrize("label", [-1, 10, 99])
def test_evaluation_labels_outside_the_classes_are_refused(tmp_path, stage, label):
    model = tiny_model()
    x = torch.rand(4, model.network.connections["input_exc"].in_shape[0])
    y = torch.tensor([0, 1, label, 2])
    trainer = quiet_trainer(tmp_path)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\), got values from"):
        getattr(trainer, stage)(model, loader(x, y))


@pytest.mark.parametrize(
    ("value", "shown"), [(1.5, "1.5"), (-0.25, "-0.25"), (float("nan"), "nan")]
)
def test_intensities_outside_zero_one_are_refused(value, shown):
    model = tiny_model()
    inputs = model.network.connections["input_exc"].in_shape[0]
    x = torch.rand(2, inputs)
    x[1, 0] = value
    with pytest.raises(ValueError, match=rf"intensities in \[0, 1\].*{shown}"):
        model.simulate(x, torch.arange(2), 0, learn=False)


@pytest.mark.parametrize("dt", [0, -1.0, float("inf")])
def test_a_zero_or_bad_time_step_names_dt(dt):
    with pytest.raises(ValueError, match=rf"dt must be a finite number > 0, got {dt}"):
        DiehlCook(dt=dt)
    with pytest.raises(ValueError, match="dt must be a finite number > 0"):
        voltage_resistance(100.0, dt)
