"""Data modules: the scikit-learn digits (built in) and MNIST-format IDX files from a local
directory. Both yield batches ``(x, y, index)``: intensities ``(B, *shape)`` in ``[0, 1]``,
labels ``(B,)`` (long) and each sample's index in its split ``(B,)`` (long), which the
encoder uses so a sample's spike train never depends on its batch or process."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler


class IndexedDataset(Dataset):
    """Tensors ``x`` ``(N, *shape)`` and labels ``y`` ``(N,)``; item ``i`` is
    ``(x[i], y[i], i)``.

    Example::

        >>> dataset = IndexedDataset(torch.rand(3, 4), torch.tensor([0, 1, 2]))
        >>> x, y, index = dataset[2]
        >>> x.shape, int(y), int(index)
        (torch.Size([4]), 2, 2)
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}"
            )
        self.x, self.y = x, y

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.x[i], self.y[i], i


class EpochShuffleSampler(Sampler[int]):
    """A permutation drawn from ``(seed, epoch)`` alone, so a resumed run sees the same order.

    Lightning calls :meth:`set_epoch` at the start of each epoch.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seed, self.epoch = size, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = int(epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


class ShardedSampler(DistributedSampler):
    """The single-process training order, dealt out to ``num_replicas`` processes.

    The order is :class:`EpochShuffleSampler`'s permutation of ``(seed, epoch)`` when
    ``shuffle`` (else ``0, 1, 2, ...``), padded by repetition to a multiple of
    ``num_replicas``; process ``rank`` takes every ``num_replicas``-th index from ``rank`` on.
    So with batch size ``b`` per process, the union of the processes' ``i``-th batches is the
    ``i``-th batch of size ``num_replicas * b`` of one process. (Lightning's own distributed
    sampler would reshuffle the training data with its own seed, ignoring ``shuffle=False`` and
    the data module's order.)
    """

    def __init__(self, size: int, num_replicas: int, rank: int, shuffle: bool, seed: int) -> None:
        super().__init__(
            range(size), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed
        )
        self.size = size

    def __iter__(self):
        if self.shuffle:
            order = EpochShuffleSampler(self.size, self.seed)
            order.set_epoch(self.epoch)
            indices = list(order)
        else:
            indices = list(range(self.size))
        padding = self.total_size - len(indices)
        indices += (indices * math.ceil(padding / max(len(indices), 1)))[:padding]
        return iter(indices[self.rank : self.total_size : self.num_replicas])


class SplitDataModule(L.LightningDataModule):
    """Base of the data modules: fixed train / validation / test splits of tensors.

    Args:
        batch_size: samples per batch (>= 1).
        shuffle: shuffle the training split each epoch (reproducibly from ``seed`` and epoch).
            With several processes the training order is the same, dealt out by
            :class:`ShardedSampler`.
        seed: seed of the shuffling.
        num_workers: DataLoader workers.
    """

    num_classes = 10

    def __init__(
        self, batch_size: int = 16, shuffle: bool = True, seed: int = 0, num_workers: int = 0
    ) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.num_workers = num_workers
        self.splits: dict[str, IndexedDataset] = {}

    def load(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Return ``{"train"|"val"|"test": (x, y)}``; subclasses implement it."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = {k: IndexedDataset(x, y) for k, (x, y) in self.load().items()}

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample (without batch)."""
        self.setup()
        return tuple(self.splits["train"].x.shape[1:])

    def _loader(self, split: str, sampler: Sampler[int] | None = None) -> DataLoader:
        self.setup()
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup()
        size = len(self.splits["train"])
        trainer = getattr(self, "trainer", None)
        connector = getattr(trainer, "_accelerator_connector", None)
        if (
            trainer is None
            or trainer.world_size == 1
            or not getattr(connector, "use_distributed_sampler", True)
        ):
            sampler = EpochShuffleSampler(size, self.seed) if self.shuffle else None
        else:
            # several processes: shard the single-process order (Lightning keeps our sampler)
            sampler = ShardedSampler(
                size, trainer.world_size, trainer.global_rank, self.shuffle, self.seed
            )
        return self._loader("train", sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")


class DigitsDataModule(SplitDataModule):
    """The 8x8 digits that ship with scikit-learn (1797 samples), flattened to 64 intensities
    in ``[0, 1]``, in a fixed split: the last ``test_size`` samples (a fixed, stratified-by-
    construction shuffle with ``split_seed``) are the test set, the ``val_size`` before them
    the validation set, the rest the training set.

    Args:
        val_size: validation samples.
        test_size: test samples.
        split_seed: seed of the fixed split (not of the training shuffle).
        batch_size, shuffle, seed, num_workers: as for :class:`SplitDataModule`.

    Example::

        >>> data = DigitsDataModule(batch_size=8)
        >>> data.setup("fit")
        >>> x, y, index = next(iter(data.train_dataloader()))
        >>> x.shape, y.shape  # 8x8 images as 64 intensities in [0, 1]
        (torch.Size([8, 64]), torch.Size([8]))
    """

    def __init__(
        self,
        batch_size: int = 16,
        val_size: int = 180,
        test_size: int = 360,
        split_seed: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, shuffle, seed, num_workers)
        self.val_size, self.test_size, self.split_seed = val_size, test_size, split_seed

    def load(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        order = np.random.default_rng(self.split_seed).permutation(len(digits.target))
        x = torch.tensor(digits.data[order] / 16.0, dtype=torch.get_default_dtype())
        y = torch.tensor(digits.target[order], dtype=torch.long)
        n_test, n_val = self.test_size, self.val_size
        if n_test + n_val >= len(y) or min(n_test, n_val) < 1:
            raise ValueError(
                f"val_size and test_size must be >= 1 and leave training samples out of "
                f"{len(y)}, got {n_val} and {n_test}"
            )
        train_end = len(y) - n_test - n_val
        return {
            "train": (x[:train_end], y[:train_end]),
            "val": (x[train_end : train_end + n_val], y[train_end : train_end + n_val]),
            "test": (x[train_end + n_val :], y[train_end + n_val :]),
        }


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST format; gzip if the name ends in ``.gz``) into an array.

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: the file is not a valid IDX file (a bad magic number or data type, a
            header cut short, no dimension, or a size other than the header's), or a ``.gz``
            file is not gzip data; the message names the file.
    """
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
            data = file.read()
    except (gzip.BadGzipFile, EOFError) as error:
        raise ValueError(f"{path}: not a readable gzip file ({error})") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    types = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in types:
        raise ValueError(f"{path}: unknown IDX data type 0x{data[2]:02x}")
    ndim = data[3]
    if ndim == 0:
        raise ValueError(f"{path}: an IDX file needs at least 1 dimension, the header has 0")
    if len(data) < 4 + 4 * ndim:
        raise ValueError(
            f"{path}: the header is cut short: {ndim} dimensions need {4 + 4 * ndim} bytes, "
            f"the file has {len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    itemsize = np.dtype(types[data[2]]).itemsize
    values = (len(data) - 4 - 4 * ndim) // itemsize
    if math.prod(dims) != values or (len(data) - 4 - 4 * ndim) % itemsize:
        raise ValueError(f"{path}: header says {dims} but holds {values} values")
    return np.frombuffer(data, dtype=types[data[2]], offset=4 + 4 * ndim).reshape(dims)


def intensities(images: np.ndarray, path: Path) -> torch.Tensor:
    """IDX images ``(N, ...)`` as intensities ``(N, features)`` in ``[0, 1]``: unsigned bytes
    scaled by ``1 / 255``, floating point values taken as they are.

    Raises:
        ValueError: signed integer images (no known scale), or float images outside
            ``[0, 1]``; the message names the file.
    """
    flat = images.reshape(images.shape[0], -1)
    if flat.dtype.kind == "u" and flat.dtype.itemsize == 1:
        flat = flat / 255.0
    elif flat.dtype.kind == "f":
        if flat.size and not (np.isfinite(flat).all() and flat.min() >= 0 and flat.max() <= 1):
            raise ValueError(
                f"{path}: float images must be intensities in [0, 1], got values in "
                f"[{flat.min()}, {flat.max()}]"
            )
    else:
        raise ValueError(
            f"{path}: images must be unsigned bytes (scaled by 1/255) or floats in [0, 1], "
            f"got {flat.dtype.name}"
        )
    return torch.tensor(flat.astype(np.float64), dtype=torch.get_default_dtype())  # native order


class IDXDataModule(SplitDataModule):
    """MNIST-format IDX files from a local directory (nothing is downloaded).

    Expects ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``) in
    ``root``. The last ``val_size`` training samples form the validation split. Images are
    flattened; bytes are scaled to ``[0, 1]`` by ``1 / 255``, float images must already be
    intensities in ``[0, 1]`` (:func:`intensities`).

    Args:
        root: the directory.
        val_size: validation samples taken from the end of the training files.
        batch_size, shuffle, seed, num_workers: as for :class:`SplitDataModule`.

    Example::

        >>> import tempfile, pathlib, numpy as np
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> def write(name, array):  # MNIST's IDX format: magic, dims, bytes
        ...     (root / name).write_bytes(bytes([0, 0, 8, array.ndim]) + b"".join(
        ...         d.to_bytes(4, "big") for d in array.shape) + array.astype(np.uint8).tobytes())
        >>> for split, n in (("train", 12), ("t10k", 4)):
        ...     write(f"{split}-images-idx3-ubyte", np.zeros((n, 2, 2)))
        ...     write(f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
        >>> data = IDXDataModule(str(root), batch_size=4, val_size=4)
        >>> data.setup("fit")
        >>> next(iter(data.train_dataloader()))[0].shape
        torch.Size([4, 4])
    """

    def __init__(
        self,
        root: str,
        batch_size: int = 16,
        val_size: int = 5000,
        shuffle: bool = True,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, shuffle, seed, num_workers)
        self.root, self.val_size = Path(root), val_size

    def _file(self, stem: str) -> Path:
        for name in (stem, stem + ".gz"):
            if (self.root / name).is_file():
                return self.root / name
        raise FileNotFoundError(f"root {str(self.root)!r} has no {stem} (or {stem}.gz)")

    def load(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        def pair(prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
            images = read_idx(self._file(f"{prefix}-images-idx3-ubyte"))
            labels = read_idx(self._file(f"{prefix}-labels-idx1-ubyte"))
            if images.shape[0] != labels.shape[0]:
                raise ValueError(f"{prefix}: {images.shape[0]} images but {labels.shape[0]} labels")
            return intensities(images, self._file(f"{prefix}-images-idx3-ubyte")), torch.tensor(
                labels.astype(np.int64)
            )

        x, y = pair("train")
        if not 1 <= self.val_size < len(y):
            raise ValueError(f"val_size must be in [1, {len(y)}), got {self.val_size}")
        cut = len(y) - self.val_size
        return {"train": (x[:cut], y[:cut]), "val": (x[cut:], y[cut:]), "test": pair("t10k")}
