"""Training data as *sources*: ``source.sample(batch_size, generator) -> x0`` with a resumable order.

Two kinds feed the trainer through the same call:

- procedural sources (the checkerboard toy) draw every batch from the ``generator`` they are given, so the data
  order is restored exactly by restoring that generator's state;
- data sets with their own ``sample(batch_size, generator)`` (``ImageFolderDataset``, ``LJSpeechDataset``: indices
  drawn with replacement from the generator) are sources as they are;
- any other ``torch.utils.data.Dataset`` is wrapped in :class:`DatasetSource`, which walks through seeded random
  permutations, one per epoch, and keeps its position in :meth:`DatasetSource.state_dict`.

Under ``torchrun`` every rank walks through the same permutation and takes every ``world_size``-th index from its
own offset, so that the ranks see disjoint samples of one epoch (as ``DistributedSampler`` does).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from spectral_lib._checks import check_choice

__all__ = [
    "Source", "DatasetSource", "epoch_permutation", "build_source", "sample_shape", "split_batch", "DATA_SOURCES",
    "X_KEYS", "resolve_data_dir", "standin_cache_dir",
]

DATA_SOURCES = ("checkerboard", "images", "audio")
"""Values of ``config.data["source"]``."""


@runtime_checkable
class Source(Protocol):
    """Anything with ``sample(batch_size, generator) -> Tensor (B, C, H, W) or (B, C, T)`` in ``[-1, 1]`` (or a
    dict holding it and conditioning tensors, see :func:`split_batch`)."""

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Any: ...


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch ``epoch``: a permutation of ``range(n)`` that depends only on ``(seed, epoch)``."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g)


def _stack(items: list[Any]) -> torch.Tensor:
    """Stack dataset items; an item may be a tensor or a tuple/dict whose first/"x" entry is the signal."""
    first = items[0]
    if isinstance(first, Mapping):
        items = [it["x"] for it in items]
    elif isinstance(first, (tuple, list)):
        items = [it[0] for it in items]
    return torch.stack([torch.as_tensor(it) for it in items]).float()


class DatasetSource:
    """A map-style dataset as a source, in seeded per-epoch random order, resumable, split across ranks.

    Args:
        dataset: ``len(dataset)`` and ``dataset[i] -> Tensor (C, H, W) | (C, T)`` (or a tuple/dict holding it).
        seed: the permutation seed (the same on every rank).
        rank, world_size: this process's share: indices ``perm[rank::world_size]`` of each epoch.
        num_workers: ``> 0`` loads batches in that many ``DataLoader`` worker processes (in the same order).

    ``sample(batch_size, generator)`` ignores ``generator``: the order is fixed by ``seed`` and the position, which
    :meth:`state_dict` / :meth:`load_state_dict` save and restore.
    """

    def __init__(
        self, dataset: Any, *, seed: int = 0, rank: int = 0, world_size: int = 1, num_workers: int = 0
    ) -> None:
        n = len(dataset)
        if n < world_size:
            raise ValueError(f"dataset has {n} item(s), fewer than world_size={world_size}")
        self.dataset = dataset
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.num_workers = int(num_workers)
        self.per_rank = n // world_size  # every rank gets the same count (the tail of a permutation is dropped)
        self.position = 0  # samples consumed by this rank since epoch 0
        self._loader: Iterator[torch.Tensor] | None = None
        self._loader_batch = 0
        self._cached: tuple[int, list[int]] = (-1, [])

    def _epoch_indices(self, epoch: int) -> list[int]:
        if self._cached[0] != epoch:
            perm = epoch_permutation(len(self.dataset), self.seed, epoch)
            self._cached = (epoch, perm[self.rank :: self.world_size][: self.per_rank].tolist())
        return self._cached[1]

    def _indices(self, start: int) -> Iterator[int]:
        epoch, offset = divmod(start, self.per_rank)
        while True:
            for i in self._epoch_indices(epoch)[offset:]:
                yield i
            epoch, offset = epoch + 1, 0

    def _batches(self, batch_size: int, start: int) -> Iterator[list[int]]:
        indices = self._indices(start)
        while True:
            yield [next(indices) for _ in range(batch_size)]

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.num_workers == 0:
            batch = next(self._batches(batch_size, self.position))
            x = _stack([self.dataset[i] for i in batch])
        else:
            if self._loader is None or self._loader_batch != batch_size:
                loader = torch.utils.data.DataLoader(
                    self.dataset,
                    batch_sampler=self._batches(batch_size, self.position),
                    num_workers=self.num_workers,
                    collate_fn=_stack,
                    persistent_workers=True,
                )
                self._loader, self._loader_batch = iter(loader), batch_size
            x = next(self._loader)
        self.position += batch_size
        return x

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position, "seed": self.seed, "world_size": self.world_size}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        if int(state["seed"]) != self.seed or int(state["world_size"]) != self.world_size:
            raise ValueError(
                f"data order was saved with seed={state['seed']}, world_size={state['world_size']}; this run has "
                f"seed={self.seed}, world_size={self.world_size}"
            )
        self.position = int(state["position"])
        self._loader = None


def standin_cache_dir() -> Path:
    """Where stand-ins written on demand live: ``$SPECTRAL_DATA_DIR/standins`` (default: the system's temporary
    folder, ``spectral_lib-standins``), so that notebooks write nothing beside themselves."""
    import os
    import tempfile

    root = os.environ.get("SPECTRAL_DATA_DIR")
    return Path(root) / "standins" if root else Path(tempfile.gettempdir()) / "spectral_lib-standins"


def _write_standin(name: str, spec: Mapping[str, Any]) -> Path:
    """Write the stand-in of source ``name`` with the writer's options ``spec`` once (atomically: a temporary folder
    renamed into place) into :func:`standin_cache_dir`, keyed by the options; return its folder."""
    import hashlib
    import json
    import os
    import shutil
    import tempfile

    from spectral_lib.data import standin

    writers = {"audio": standin.write_ljspeech_standin, "images": standin.write_image_standin}
    if name not in writers:
        raise ValueError(f'data["standin"] is only available for the sources {tuple(writers)}, got {name!r}')
    if not isinstance(spec, Mapping):
        raise ValueError(f'data["standin"] must be a dict of the stand-in writer\'s options, got {spec!r}')
    key = json.dumps({"source": name, **spec}, sort_keys=True)
    root = standin_cache_dir()
    target = root / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (target / "standin.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        options = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items()}
        writers[name](tmp, **options)
        (tmp / "standin.json").write_text(key + "\n")
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same stand-in first
            if not (target / "standin.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_data_dir(data: Mapping[str, Any], data_dir: str | Path | None) -> tuple[Path | None, dict[str, Any]]:
    """``(folder, options)`` of a config's ``data`` dict: the source's options without ``"source"`` and
    ``"standin"``, and the folder to read.

    ``data["standin"]`` (a dict of options of :func:`spectral_lib.data.standin.write_ljspeech_standin` for
    ``"audio"``, :func:`~spectral_lib.data.standin.write_image_standin` for ``"images"``) makes a source usable
    without data: when ``data_dir`` is ``None`` the stand-in is written once into :func:`standin_cache_dir` and
    read from there. An explicit ``data_dir`` (the CLI's ``--data-dir``) always wins.
    """
    options = dict(data)
    name = options.pop("source", None)
    spec = options.pop("standin", None)
    if data_dir is None and spec is not None:
        return _write_standin(str(name), spec), options
    return (Path(data_dir) if data_dir is not None else None), options


def build_source(
    data: Mapping[str, Any], *, data_dir: str | Path | None = None, seed: int = 0, rank: int = 0,
    world_size: int = 1, num_workers: int = 0,
) -> Any:
    """The source described by a config's ``data`` dict (``{"source": name, **options}``; ``"standin"``: see
    :func:`resolve_data_dir`)."""
    name = dict(data).get("source")
    check_choice(name, 'data["source"]', DATA_SOURCES)
    data_dir, options = resolve_data_dir(data, data_dir)
    if name == "checkerboard":
        from spectral_lib.data.checkerboard import CheckerboardSource

        if "check_sizes" in options:  # JSON gives a list; the source is a frozen (hashable) dataclass
            options["check_sizes"] = tuple(options["check_sizes"])
        return CheckerboardSource(**options)
    if data_dir is None:
        raise ValueError(f"data source {name!r} needs data_dir (a folder in the expected layout), got None")
    if name == "images":
        from spectral_lib.data.images import ImageFolderDataset

        dataset = ImageFolderDataset(data_dir, **options)
    else:
        from spectral_lib.data.audio import LJSpeechDataset

        dataset = LJSpeechDataset(data_dir, **options)
    if hasattr(dataset, "sample"):  # draws its batches from the generator: already a source
        return dataset
    return DatasetSource(dataset, seed=seed, rank=rank, world_size=world_size, num_workers=num_workers)


X_KEYS = ("x", "audio", "image")
"""Keys under which a dict batch holds the signal ``x0``; its other tensor entries condition the model."""


def split_batch(batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """``(x0, cond)`` of a batch: a tensor is ``x0`` with no conditioning; a dict holds ``x0`` under one of
    :data:`X_KEYS` and the conditioning tensors (e.g. ``{"audio": ..., "mel": ...}`` for a vocoder) beside it."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, Mapping):
        key = next((k for k in X_KEYS if k in batch), None)
        if key is None:
            raise ValueError(f"a dict batch must hold the signal under one of {X_KEYS}, got keys {sorted(batch)}")
        cond = {k: v for k, v in batch.items() if k != key and isinstance(v, torch.Tensor)}
        return batch[key], (cond or None)
    raise ValueError(f"a source must return a tensor or a dict of tensors, got {type(batch).__name__}")


def sample_shape(source: Any) -> tuple[int, ...]:
    """The shape of one sample, ``(C, H, W)`` or ``(C, T)``, without touching the source's order."""
    shape = getattr(source, "shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    if isinstance(source, DatasetSource):
        return tuple(_stack([source.dataset[0]]).shape[1:])
    x0, _ = split_batch(source.sample(1, torch.Generator().manual_seed(0)))
    return tuple(x0.shape[1:])
