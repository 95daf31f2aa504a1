"""Stoke from Python: the prefetching loader, the store writer and the inference engine, through
libstoke's C ABI (ctypes; no compile step beyond `swift build --product stoke-c`).

    import stoke
    stoke.pack_arrays("train.h5", image=images, label=labels)      # NumPy arrays, axis 0 = samples
    loader = stoke.Loader("train.h5", batch_size=256, order="chunk-shuffle", seed=0)
    for epoch in range(10):
        for batch in loader:                 # dict: field name -> NumPy array, plus batch["index"]
            train_step(batch["image"], batch["label"])

Zero copy: a batch's arrays view the loader's pinned buffers. They stay valid (never freed under
you) but are refilled with later batches once the next batch is taken: keep what you need with
`copy=True` or `array.copy()`.
"""
import ctypes
import json
import os
from ctypes import byref, c_char_p, c_double, c_int32, c_int64, c_void_p

import numpy as np

from . import _lib
from ._lib import DTYPE_NAMES, DTYPES, StokeError, check, encode, lib, shape_array, take_string

__all__ = [
    "StokeError", "Store", "Loader", "IterableDataset", "Writer", "pack_arrays", "pack_files", "Session",
    "library_path", "version",
]

#: The libstoke file in use.
library_path = _lib.path
#: Stoke's version.
version = lib.stoke_version().decode()


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


class _Owner:
    """Owns one C handle; frees it with `closer` when the last reference goes (batch arrays hold one, so
    the memory they view is never freed under them)."""

    __slots__ = ("pointer", "closer", "__weakref__")

    def __init__(self, pointer, closer):
        self.pointer = pointer
        self.closer = closer

    def __del__(self):
        pointer, self.pointer = self.pointer, None
        if pointer and self.closer is not None:
            try:
                self.closer(pointer)
            except Exception:  # interpreter shutdown: the library may be gone
                pass


class _View:
    """A NumPy-visible window on C memory (no copy) that keeps the memory's owner alive."""

    __slots__ = ("__array_interface__", "owner")

    def __init__(self, address, dtype, shape, owner):
        self.__array_interface__ = {"data": (address, False), "shape": tuple(shape), "typestr": dtype.str, "version": 3}
        self.owner = owner


def _as_array(address, dtype, shape, owner):
    return np.asarray(_View(address, dtype, shape, owner))


class FieldInfo:
    """One field: `dtype` (NumPy), `shape` of one sample, `rows` (stores only)."""

    def __init__(self, name, dtype, shape, rows=None):
        self.name, self.dtype, self.shape, self.rows = name, dtype, shape, rows

    def __repr__(self):
        rows = "" if self.rows is None else f", rows={self.rows}"
        return f"FieldInfo({self.name!r}, {self.dtype}, {self.shape}{rows})"


class Store:
    """A store opened for reading (any HDF5 file whose root datasets share axis 0): its fields and
    attributes. Read its samples with `Loader`."""

    def __init__(self, path):
        handle = c_void_p()
        check(lib.stoke_store_open(encode(os.fspath(path)), byref(handle)))
        self._owner = _Owner(handle.value, lib.stoke_store_close)
        self.path = os.fspath(path)
        samples, count = c_int64(), c_int32()
        check(lib.stoke_store_samples(self._pointer, byref(samples)))
        check(lib.stoke_store_field_count(self._pointer, byref(count)))
        #: Samples in the store.
        self.samples = samples.value
        #: Fields by name, in the store's order.
        self.fields = {}
        for index in range(count.value):
            name, dtype, rows, ndim, shape = c_char_p(), c_int32(), c_int64(), c_int32(), shape_array()
            check(lib.stoke_store_field(self._pointer, index, byref(name), byref(dtype), byref(rows), byref(ndim), shape))
            text = name.value.decode()
            self.fields[text] = FieldInfo(text, DTYPES[dtype.value], tuple(shape[:ndim.value]), rows.value)

    @property
    def _pointer(self):
        if self._owner is None or not self._owner.pointer:
            raise StokeError(-1, f"{self.path}: store is closed")
        return self._owner.pointer

    def attribute(self, name):
        """The root string attribute `name` (e.g. "recipe", "provenance"), parsed as JSON when it is JSON,
        or None."""
        value = c_char_p()
        check(lib.stoke_store_attribute(self._pointer, encode(name), byref(value)))
        if value.value is None:
            return None
        text = value.value.decode()
        try:
            return json.loads(text)
        except ValueError:
            return text

    def __len__(self):
        return self.samples

    def close(self):
        self._owner = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _loader_options(batch_size, fields, order, seed, rank, world, workers, prefetch, drop_last, normalization,
                    output_types, use_store_normalization, cache_bytes, pin_buffers):
    options = {"batch_size": int(batch_size), "order": str(order), "seed": str(int(seed)), "rank": int(rank),
               "world": int(world), "prefetch": int(prefetch), "drop_last": bool(drop_last),
               "use_store_normalization": bool(use_store_normalization), "pin_buffers": bool(pin_buffers)}
    if fields is not None:
        options["fields"] = [fields] if isinstance(fields, str) else list(fields)
    if workers is not None:
        options["workers"] = int(workers)
    if cache_bytes is not None:
        options["cache_bytes"] = int(cache_bytes)
    if normalization:
        options["normalization"] = {
            name: {key: ([float(v) for v in value] if key in ("mean", "std") else float(value)) for key, value in entry.items()}
            for name, entry in normalization.items()}
    if output_types:
        options["output_types"] = {name: (dtype if isinstance(dtype, str) else DTYPE_NAMES[DTYPES.index(np.dtype(dtype))])
                                   for name, dtype in output_types.items()}
    return json.dumps(options)


class Loader:
    """Batches of a store, in a deterministic order for (seed, epoch), decoded by worker threads into
    pinned, reused buffers.

    Iterating gives dicts: field name -> NumPy array of shape [batch, *sample shape] viewing the pinned
    buffer (no copy), plus ``batch["index"]``, the int64 global sample indices of the rows (under
    ``"stoke_index"`` if the store has a field named "index"). **A batch's arrays are refilled once the
    next batch is taken**: pass ``copy=True`` (or copy what you keep) to keep batches. With
    ``tensors=True`` (and PyTorch installed) fields are torch tensors sharing that memory (DLPack).

    Epochs: ``iter(loader)`` runs epoch ``loader.epoch`` from its first batch, or from where
    ``load_state_dict`` put it; an iterator that runs to the end advances ``loader.epoch`` by one (the
    next epoch starts prefetching at once). ``set_epoch(n)`` chooses the epoch, as with PyTorch's
    DistributedSampler. ``len(loader)`` is the number of batches of the current epoch for this rank.

    Threads: the loader's worker threads live until ``close()`` (also on ``with`` exit and when the
    loader is garbage-collected); a dropped or interrupted iterator stops its epoch and returns its
    buffers. Options are those of Stoke's LoaderOptions (see stoke.h).
    """

    def __init__(self, path, batch_size=256, fields=None, order="chunk-shuffle", seed=0, rank=0, world=1,
                 workers=None, prefetch=4, drop_last=False, normalization=None, output_types=None,
                 use_store_normalization=True, cache_bytes=None, pin_buffers=True, copy=False, tensors=False, epoch=0):
        self.copy = bool(copy)
        self.tensors = bool(tensors)
        if self.tensors and _torch() is None:
            raise StokeError(-1, "tensors=True needs PyTorch, which is not installed")
        store = path if isinstance(path, Store) else Store(path)
        self.path = store.path
        self.batch_size = int(batch_size)
        options = _loader_options(batch_size, fields, order, seed, rank, world, workers, prefetch, drop_last,
                                  normalization, output_types, use_store_normalization, cache_bytes, pin_buffers)
        handle = c_void_p()
        check(lib.stoke_loader_open(store._pointer, options.encode(), byref(handle)))
        self._owner = _Owner(handle.value, lib.stoke_loader_close)
        if not isinstance(path, Store):
            store.close()
        count = c_int32()
        check(lib.stoke_loader_field_count(self._pointer, byref(count)))
        self._fields = []
        for index in range(count.value):
            name, dtype, ndim, shape = c_char_p(), c_int32(), c_int32(), shape_array()
            check(lib.stoke_loader_field(self._pointer, index, byref(name), byref(dtype), byref(ndim), shape))
            text = name.value.decode()
            self._fields.append(FieldInfo(text, DTYPES[dtype.value], tuple(shape[:ndim.value])))
        names = {field.name for field in self._fields}
        self._index_key = "stoke_index" if "index" in names else "index"
        samples = c_int64()
        check(lib.stoke_loader_samples(self._pointer, byref(samples)))
        #: Samples in the store.
        self.samples = samples.value
        self._epoch = int(epoch)
        self._resume = False
        self._generation = 0
        self._cache = {}
        self._address_buffer = (c_void_p * (len(self._fields) + 1))()
        self._count = c_int64()
        # The addresses stoke_batch_field/stoke_batch_indices gave for the current batch (for tests of
        # the zero-copy path).
        self._lease_addresses = {}

    @property
    def _pointer(self):
        owner = self._owner
        if owner is None or not owner.pointer:
            raise StokeError(-1, f"{self.path}: loader is closed")
        return owner.pointer

    @property
    def fields(self):
        """Fields as they appear in batches (dtype after normalization), by name."""
        return {field.name: field for field in self._fields}

    @property
    def epoch(self):
        """The epoch the next iteration runs."""
        return self._epoch

    def set_epoch(self, epoch):
        """Chooses the epoch the next iteration runs (from its first batch)."""
        epoch = int(epoch)
        check(lib.stoke_loader_start(self._pointer, epoch, 0))
        self._epoch = epoch
        self._resume = True

    def __len__(self):
        count = c_int64()
        check(lib.stoke_loader_batch_count(self._pointer, self._epoch, byref(count)))
        return count.value

    @property
    def pinned(self):
        """(True, "") when batch buffers are page-locked, else (False, why not)."""
        pinned, reason = c_int32(), c_char_p()
        check(lib.stoke_loader_pinning(self._pointer, byref(pinned), byref(reason)))
        return bool(pinned.value), (reason.value or b"").decode()

    def state_dict(self):
        """Where the loader is: {"epoch", "batch" (batches of it taken)} plus the settings that make
        that meaningful (seed, order, batch size, drop_last, rank, world, samples). JSON-serializable."""
        pointer = c_void_p()
        check(lib.stoke_loader_state(self._pointer, byref(pointer)))
        return json.loads(take_string(pointer))

    def load_state_dict(self, state):
        """Restores `state_dict()` output: the next iteration resumes at the saved batch of the saved epoch.
        Refused (StokeError naming the setting) if the loader's seed, order, batch size, drop_last, rank,
        world or sample count differ."""
        check(lib.stoke_loader_restore(self._pointer, json.dumps(state).encode()))
        self._epoch = int(state["epoch"])
        self._resume = True

    def stats(self):
        """Time and bytes of the current epoch so far (wait_seconds: time blocked waiting for batches)."""
        pointer = c_void_p()
        check(lib.stoke_loader_stats(self._pointer, byref(pointer)))
        return json.loads(take_string(pointer))

    def __iter__(self):
        pointer = self._pointer
        if self._resume:
            self._resume = False
        else:
            check(lib.stoke_loader_start(pointer, self._epoch, 0))
        self._generation += 1
        return self._batches(self._generation)

    def _convert(self, batch_pointer, owner):
        # One C call gives every address; a batch at addresses already seen reuses its views (the pool
        # has prefetch + 2 buffers, so after the first few batches nothing is built per batch).
        check(lib.stoke_batch_addresses(batch_pointer, len(self._address_buffer), self._address_buffer,
                                        byref(self._count)))
        key = (tuple(self._address_buffer), self._count.value)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._build(key, owner)
        views, addresses = entry
        self._lease_addresses = addresses
        if self.copy:
            batch = {name: value.copy() for name, value in views.items()}
            if self.tensors:
                torch = _torch()
                batch = {name: _to_tensor(torch, value) for name, value in batch.items()}
            return batch
        return dict(views)

    def _build(self, key, owner):
        addresses, count = key
        views, named = {}, {}
        for field, address in zip(self._fields, addresses):
            views[field.name] = _as_array(address, field.dtype, (count,) + field.shape, owner)
            named[field.name] = address
        views[self._index_key] = _as_array(addresses[-1], np.dtype("<i8"), (count,), owner)
        named["index"] = addresses[-1]
        if self.tensors and not self.copy:
            torch = _torch()
            views = {name: _to_tensor(torch, value) for name, value in views.items()}
        if len(self._cache) > 64:
            self._cache.clear()
        entry = (views, named)
        self._cache[key] = entry
        return entry

    def _batches(self, generation):
        owner = self._owner
        held = c_void_p()
        finished = False
        try:
            while True:
                if generation != self._generation or self._owner is not owner:
                    return  # a newer iterator took over, or the loader was closed
                if held.value:
                    lib.stoke_batch_release(held)
                    held.value = None
                status = check(lib.stoke_loader_next(owner.pointer, byref(held)))
                if status == _lib.END:
                    finished = True
                    self._epoch += 1
                    lib.stoke_loader_start(owner.pointer, self._epoch, 0)
                    self._resume = True
                    return
                yield self._convert(held, owner)
        finally:
            if held.value:
                lib.stoke_batch_release(held)
            if not finished and generation == self._generation and owner.pointer and self._owner is owner:
                lib.stoke_loader_stop(owner.pointer)

    def close(self):
        """Stops the epoch and joins the worker threads. Arrays of past batches stay readable."""
        owner, self._owner = getattr(self, "_owner", None), None
        self._cache = {}
        if owner is not None and owner.pointer:
            lib.stoke_loader_shutdown(owner.pointer)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _to_tensor(torch, array):
    try:
        return torch.from_dlpack(array)
    except (TypeError, RuntimeError, BufferError, AttributeError):
        return torch.from_numpy(array)


def _distributed():
    torch = _torch()
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _IterableDataset:
    """A PyTorch IterableDataset of whole batches, for ``DataLoader(dataset, batch_size=None)``.

    Each iteration opens a Loader (rank and world from torch.distributed when it is initialised and
    none are given) for epoch ``self.epoch`` and closes it, joining its threads, when the iteration ends
    or its iterator is dropped; a completed iteration advances the epoch (or call ``set_epoch``). With
    DataLoader ``num_workers`` > 0, each worker reads its own share (as extra ranks): keep
    ``num_workers=0``, Stoke's own threads do the decoding. Fields are tensors (zero copy) unless
    ``tensors=False``; ``copy`` is on by default here since DataLoader may hold batches.
    """

    def __init__(self, path, batch_size=256, tensors=True, copy=True, epoch=0, **loader_options):
        self.path = os.fspath(path)
        self.batch_size = batch_size
        self.tensors = tensors and _torch() is not None
        self.copy = copy
        self.epoch = epoch
        self.loader_options = loader_options

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def _ranks(self):
        rank = self.loader_options.get("rank")
        world = self.loader_options.get("world")
        if rank is None or world is None:
            rank, world = _distributed()
        torch = _torch()
        info = torch.utils.data.get_worker_info() if torch is not None else None
        if info is not None and info.num_workers > 1:
            rank, world = rank * info.num_workers + info.id, world * info.num_workers
        return rank, world

    def __len__(self):
        rank, world = self._ranks()
        options = {k: v for k, v in self.loader_options.items() if k not in ("rank", "world", "workers", "prefetch")}
        with Loader(self.path, batch_size=self.batch_size, rank=rank, world=world, workers=1, prefetch=1,
                    pin_buffers=False, epoch=self.epoch, **options) as loader:
            return len(loader)

    def __iter__(self):
        rank, world = self._ranks()
        options = {k: v for k, v in self.loader_options.items() if k not in ("rank", "world")}
        loader = Loader(self.path, batch_size=self.batch_size, rank=rank, world=world, tensors=self.tensors,
                        copy=self.copy, epoch=self.epoch, **options)
        try:
            for batch in loader:
                yield batch
            self.epoch += 1
        finally:
            loader.close()


_iterable_dataset = None


def __getattr__(name):
    """`stoke.IterableDataset` is made on first use, as a subclass of torch.utils.data.IterableDataset when
    PyTorch is installed, so `import stoke` does not import PyTorch."""
    global _iterable_dataset
    if name != "IterableDataset":
        raise AttributeError(f"module 'stoke' has no attribute '{name}'")
    if _iterable_dataset is None:
        torch = _torch()
        bases = (_IterableDataset,) + ((torch.utils.data.IterableDataset,) if torch is not None else ())
        _iterable_dataset = type("IterableDataset", bases, {"__doc__": _IterableDataset.__doc__, "__module__": __name__})
    return _iterable_dataset


def _dtype_name(dtype):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return "u8"
    try:
        return DTYPE_NAMES[DTYPES.index(dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype)]
    except ValueError:
        raise StokeError(-1, f"dtype {dtype} has no Stoke equivalent (u8 i8 u16 i16 i32 i64 f16 f32 f64)") from None


class Writer:
    """Writes a store from arrays in memory, atomically: nothing appears at `path` until `finish()`.

        with stoke.Writer("s.h5", image=("u8", (1, 28, 28)), label=("i64", ())) as writer:
            writer.append(image=images[:1000], label=labels[:1000])   # any number of appends
        # finished on a clean exit; abandoned (nothing written) on an exception

    Options: codec ("lz4", "lz4-shuffle", "deflate", "deflate:N", "none"), chunk_samples or chunk_bytes,
    checksum, workers, overwrite.
    """

    def __init__(self, path, codec="lz4", chunk_samples=None, chunk_bytes=None, checksum=True, workers=None,
                 overwrite=False, **fields):
        self.path = os.fspath(path)
        self._fields = {}
        specs = []
        for name, (dtype, shape) in fields.items():
            dtype_name = dtype if isinstance(dtype, str) else _dtype_name(dtype)
            if dtype_name not in DTYPE_NAMES:
                raise StokeError(-1, f"field '{name}': dtype {dtype_name!r} is not one of {' '.join(DTYPE_NAMES)}")
            shape = tuple(int(size) for size in shape)
            self._fields[name] = (DTYPES[DTYPE_NAMES.index(dtype_name)], shape)
            specs.append({"name": name, "dtype": dtype_name, "shape": list(shape)})
        options = {"fields": specs, "codec": codec, "checksum": bool(checksum), "overwrite": bool(overwrite)}
        if chunk_samples is not None:
            options["chunk_samples"] = int(chunk_samples)
        if chunk_bytes is not None:
            options["chunk_bytes"] = int(chunk_bytes)
        if workers is not None:
            options["workers"] = int(workers)
        handle = c_void_p()
        check(lib.stoke_writer_open(encode(self.path), json.dumps(options).encode(), byref(handle)))
        self._owner = _Owner(handle.value, lib.stoke_writer_close)
        self.samples = None

    @property
    def _pointer(self):
        if self._owner is None:
            raise StokeError(-1, f"{self.path}: writer is finished or closed")
        return self._owner.pointer

    def append(self, **arrays):
        """Appends samples to fields (each array [n, *sample shape], cast safely to the field's dtype)."""
        for name, values in arrays.items():
            if name not in self._fields:
                raise StokeError(-1, f"{self.path}: no field named '{name}' (fields: {', '.join(self._fields)})")
            dtype, shape = self._fields[name]
            array = np.asarray(values)
            if array.dtype == np.bool_:
                array = array.astype(np.uint8)
            if array.shape[1:] != shape:
                raise StokeError(-1, f"field '{name}': arrays of shape {array.shape} do not hold samples of shape {shape}")
            if not np.can_cast(array.dtype, dtype, casting="same_kind"):
                raise StokeError(-1, f"field '{name}' is {dtype}; {array.dtype} values do not convert")
            array = np.ascontiguousarray(array, dtype=dtype)
            check(lib.stoke_writer_append(self._pointer, encode(name), array.ctypes.data_as(c_void_p), array.nbytes))

    def set_metadata(self, name, value):
        """Records a root attribute: `value` is a JSON-serializable object (or a JSON string)."""
        text = value if isinstance(value, str) else json.dumps(value)
        check(lib.stoke_writer_set_metadata(self._pointer, encode(name), text.encode()))

    def finish(self):
        """Writes the rest and renames the store into place; returns the sample count."""
        samples = c_int64()
        try:
            check(lib.stoke_writer_finish(self._pointer, byref(samples)))
        finally:
            self._owner = None
        self.samples = samples.value
        return self.samples

    def close(self):
        """Abandons an unfinished writer (its temporary file is removed; nothing appears at the path)."""
        self._owner = None

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None and self._owner is not None:
            self.finish()
        else:
            self.close()


def pack_arrays(path, codec="lz4", chunk_samples=None, chunk_bytes=None, overwrite=False, metadata=None, **fields):
    """Writes NumPy arrays (axis 0 = samples, the same length for all) as a store; returns the sample
    count. ``stoke.pack_arrays("s.h5", image=x_uint8, label=y_int64)``. ``metadata``: {attribute: JSON
    object} recorded at the root."""
    if not fields:
        raise StokeError(-1, f"{os.fspath(path)}: nothing to pack (give arrays as keyword arguments)")
    arrays = {name: np.asarray(values) for name, values in fields.items()}
    specs = {}
    for name, array in arrays.items():
        if array.ndim == 0:
            raise StokeError(-1, f"field '{name}' is a scalar; axis 0 must count samples")
        specs[name] = (_dtype_name(array.dtype), array.shape[1:])
    with Writer(path, codec=codec, chunk_samples=chunk_samples, chunk_bytes=chunk_bytes, overwrite=overwrite,
                **specs) as writer:
        for name, value in (metadata or {}).items():
            writer.set_metadata(name, value)
        for name, array in arrays.items():
            step = max(1, (64 << 20) // max(1, array[:1].nbytes))
            for start in range(0, len(array), step):
                writer.append(**{name: array[start:start + step]})
    return writer.samples


def pack_files(path, fields, codec="lz4", chunk_samples=None, chunk_bytes=None, overwrite=False):
    """Packs NPY or IDX files as `stoke pack` does: ``fields`` maps a field name to a file path, or to
    (path, sample shape) to reshape (same element count). Returns the sample count."""
    specs = []
    for name, source in fields.items():
        entry = {"name": name}
        if isinstance(source, (tuple, list)):
            entry["source"], entry["shape"] = os.fspath(source[0]), [int(size) for size in source[1]]
        else:
            entry["source"] = os.fspath(source)
        specs.append(entry)
    options = {"fields": specs, "codec": codec, "overwrite": bool(overwrite)}
    if chunk_samples is not None:
        options["chunk_samples"] = int(chunk_samples)
    if chunk_bytes is not None:
        options["chunk_bytes"] = int(chunk_bytes)
    samples = c_int64()
    check(lib.stoke_pack_files(encode(os.fspath(path)), json.dumps(options).encode(), byref(samples)))
    return samples.value


class Session:
    """Runs a model (ONNX or a Stoke model file) with Stoke's engine on f32 batches.

        session = stoke.Session("model.onnx", threads=2)
        logits = session.run(batch["image"])          # NumPy f32 [batch, ...] or a loader batch dict
        session.samples_per_second
    """

    def __init__(self, model, threads=1):
        handle = c_void_p()
        check(lib.stoke_session_open(encode(os.fspath(model)), int(threads), byref(handle)))
        self._owner = _Owner(handle.value, lib.stoke_session_close)
        self.path = os.fspath(model)
        inputs, outputs = c_int32(), c_int32()
        check(lib.stoke_session_io(self._owner.pointer, byref(inputs), byref(outputs)))
        name = c_char_p()
        self.inputs, self.outputs = [], []
        for index in range(inputs.value):
            check(lib.stoke_session_input_name(self._owner.pointer, index, byref(name)))
            self.inputs.append(name.value.decode())
        for index in range(outputs.value):
            check(lib.stoke_session_output_name(self._owner.pointer, index, byref(name)))
            self.outputs.append(name.value.decode())

    def run(self, batch, input=None, output=None, field=None):
        """Runs one batch and returns output `output` (default: the first) as a new f32 array.

        `batch` is an f32 array [batch, ...] (read in place when C-contiguous f32), a torch tensor, or a
        loader batch dict, whose field `field` (default: the field named like the input, else the first
        f32 field) is used."""
        if isinstance(batch, dict):
            if field is None:
                wanted = input or (self.inputs[0] if self.inputs else None)
                field = wanted if wanted in batch else next(
                    (key for key, value in batch.items() if getattr(value, "dtype", None) in (np.float32, "float32")
                     or str(getattr(value, "dtype", "")) == "torch.float32"), None)
                if field is None:
                    raise StokeError(-1, "the batch has no f32 field to feed the model (normalize u8 fields in the Loader)")
            batch = batch[field]
        if hasattr(batch, "numpy") and not isinstance(batch, np.ndarray):
            batch = batch.detach().cpu().numpy()
        array = np.ascontiguousarray(batch, dtype=np.float32)
        if array.ndim > _lib.MAX_DIMS:
            raise StokeError(-1, f"input has {array.ndim} axes; at most {_lib.MAX_DIMS}")
        shape = (c_int64 * max(1, array.ndim))(*array.shape)
        out, ndim, out_shape = c_void_p(), c_int32(), shape_array()
        check(lib.stoke_session_run(self._owner.pointer, encode(input), array.ctypes.data_as(c_void_p), array.ndim,
                                    shape, encode(output), byref(out), byref(ndim), out_shape))
        dims = tuple(out_shape[:ndim.value])
        count = int(np.prod(dims)) if dims else 1
        if count == 0:
            return np.zeros(dims, dtype=np.float32)
        return np.ctypeslib.as_array(ctypes.cast(out, ctypes.POINTER(ctypes.c_float)), shape=(count,)).reshape(dims).copy()

    @property
    def stats(self):
        """(samples run, seconds spent running) since the session opened."""
        samples, seconds = c_int64(), c_double()
        check(lib.stoke_session_stats(self._owner.pointer, byref(samples), byref(seconds)))
        return samples.value, seconds.value

    @property
    def samples_per_second(self):
        samples, seconds = self.stats
        return samples / seconds if seconds > 0 else 0.0

    def close(self):
        self._owner = None
