"""stoke.Loader: contents, order (against an independent implementation of the Swift loader's epoch
plan), state resume, zero copy, errors, and thread cleanup."""
import gc
import os
import time

import numpy as np
import pytest

import stoke

# ---- An independent Python rendering of Sources/StokeLoader/Sampler.swift's EpochPlan ----------------

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def epoch_generator(seed, epoch, stream):
    mixer = SplitMix64(seed ^ ((epoch * 0xD6E8FEB86659FD93) & MASK) ^ ((stream * 0xA0761D6478BD642F) & MASK))
    return SplitMix64(mixer.next())


def shuffle(values, generator):
    for index in range(len(values) - 1, 0, -1):
        other = generator.next() % (index + 1)
        values[index], values[other] = values[other], values[index]


def plan(samples, chunk_rows, order, seed, epoch, batch_size, drop_last, rank, world):
    if order == "sequential":
        order_list = list(range(samples))
    elif order == "random":
        order_list = list(range(samples))
        shuffle(order_list, epoch_generator(seed, epoch, 1))
    else:
        window = int(order.split(":")[1]) if ":" in order else 4
        chunks = (samples + chunk_rows - 1) // chunk_rows
        chunk_order = list(range(chunks))
        shuffle(chunk_order, epoch_generator(seed, epoch, 2))
        sample_generator = epoch_generator(seed, epoch, 3)
        order_list = []
        for start in range(0, chunks, window):
            window_samples = []
            for chunk in chunk_order[start:start + window]:
                window_samples += range(chunk * chunk_rows, min(samples, (chunk + 1) * chunk_rows))
            shuffle(window_samples, sample_generator)
            order_list += window_samples
    if order_list and len(order_list) % world:
        if drop_last:
            del order_list[len(order_list) - len(order_list) % world:]
        else:
            order_list += [order_list[i % len(order_list)] for i in range(world - len(order_list) % world)]
    per_rank = len(order_list) // world
    mine = order_list[rank * per_rank:(rank + 1) * per_rank]
    count = len(mine) // batch_size if drop_last else (len(mine) + batch_size - 1) // batch_size
    return [mine[i * batch_size:(i + 1) * batch_size] for i in range(count)]


# ---- Tests ------------------------------------------------------------------------------------------


def test_every_batch_holds_the_rows_its_indices_name(store):
    path, images, labels = store
    loader = stoke.Loader(path, batch_size=96, seed=5, workers=2)
    seen = []
    for batch in loader:
        assert batch["image"].dtype == np.uint8 and batch["image"].shape[1:] == (3, 4, 4)
        np.testing.assert_array_equal(batch["image"], images[batch["index"]])
        np.testing.assert_array_equal(batch["label"], labels[batch["index"]])
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(1000))
    assert len(loader) == 11


@pytest.mark.parametrize("order", ["sequential", "random", "chunk-shuffle", "chunk-shuffle:2"])
@pytest.mark.parametrize("rank,world,drop_last", [(0, 1, False), (2, 3, False), (1, 3, True)])
def test_batches_follow_the_swift_loaders_plan(store, order, rank, world, drop_last):
    path, _, _ = store
    loader = stoke.Loader(path, batch_size=50, order=order, seed=11, rank=rank, world=world, drop_last=drop_last,
                          workers=2, fields=["label"])
    for epoch in (0, 1):
        expected = plan(1000, 64, order, 11, epoch, 50, drop_last, rank, world)
        assert len(loader) == len(expected)
        got = [batch["index"].tolist() for batch in loader]
        assert got == expected, f"epoch {epoch}"
        assert loader.epoch == epoch + 1


def test_same_seed_same_batches_other_seed_others(store):
    path, _, _ = store
    first = [b["index"].copy() for b in stoke.Loader(path, batch_size=100, seed=1, workers=2)]
    again = [b["index"].copy() for b in stoke.Loader(path, batch_size=100, seed=1, workers=1)]
    other = [b["index"].copy() for b in stoke.Loader(path, batch_size=100, seed=2, workers=2)]
    assert all((a == b).all() for a, b in zip(first, again))
    assert any((a != b).any() for a, b in zip(first, other))


def test_state_dict_resumes_mid_epoch_on_a_new_loader(store):
    path, _, _ = store
    loader = stoke.Loader(path, batch_size=64, seed=9, workers=2)
    loader.set_epoch(3)
    full = [b["index"].copy() for b in loader]
    loader.set_epoch(3)
    iterator = iter(loader)
    for _ in range(5):
        next(iterator)
    state = loader.state_dict()
    assert state["epoch"] == 3 and state["batch"] == 5
    del iterator
    resumed = stoke.Loader(path, batch_size=64, seed=9, workers=2)
    resumed.load_state_dict(state)
    rest = [b["index"].copy() for b in resumed]
    assert len(rest) == len(full) - 5
    assert all((a == b).all() for a, b in zip(rest, full[5:]))
    assert resumed.epoch == 4 and resumed.state_dict()["batch"] == 0


def test_state_of_another_seed_is_refused(store):
    path, _, _ = store
    state = stoke.Loader(path, batch_size=64, seed=9, workers=1).state_dict()
    other = stoke.Loader(path, batch_size=64, seed=10, workers=1)
    with pytest.raises(stoke.StokeError, match="seed 9; this loader has 10"):
        other.load_state_dict(state)


def test_zero_copy_views_of_the_pinned_buffers(store):
    path, _, _ = store
    loader = stoke.Loader(path, batch_size=100, seed=0, workers=2, prefetch=2)
    addresses = set()
    for batch in loader:
        image = batch["image"]
        assert not image.flags.owndata and image.base is not None
        address = image.__array_interface__["data"][0]
        # The array is the C lease's memory itself: the address stoke_batch_field handed out.
        assert address == loader._lease_addresses["image"]
        assert batch["index"].__array_interface__["data"][0] == loader._lease_addresses["index"]
        addresses.add(address)
    # 10 batches through a pool of prefetch + 2 = 4 buffers: the same buffers come back, no copies.
    assert len(addresses) <= 4
    copied = next(iter(stoke.Loader(path, batch_size=100, seed=0, workers=2, copy=True)))
    assert copied["image"].flags.owndata


def test_copy_keeps_batches_valid(store):
    path, images, _ = store
    kept = list(stoke.Loader(path, batch_size=100, seed=4, workers=2, copy=True))
    for batch in kept:
        np.testing.assert_array_equal(batch["image"], images[batch["index"]])


def test_normalization_and_output_types(store):
    path, images, _ = store
    loader = stoke.Loader(path, batch_size=100, order="sequential", workers=1,
                          normalization={"image": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.5, 1.0]}})
    assert loader.fields["image"].dtype == np.float32
    batch = next(iter(loader))
    expected = (images[:100] / 255.0 - 0.5) / np.array([0.25, 0.5, 1.0])[None, :, None, None]
    np.testing.assert_allclose(batch["image"], expected, rtol=1e-5, atol=1e-5)
    widened = next(iter(stoke.Loader(path, batch_size=10, order="sequential", workers=1, output_types={"image": "f32"})))
    np.testing.assert_array_equal(widened["image"], images[:10].astype(np.float32))


def test_bad_paths_options_and_non_stores_raise(tmp_path, store):
    path, _, _ = store
    with pytest.raises(stoke.StokeError) as missing:
        stoke.Loader(tmp_path / "missing.h5")
    assert missing.value.kind == "io" and "missing.h5" in str(missing.value)
    text = tmp_path / "text.h5"
    text.write_text("not an HDF5 file\n" * 100)
    with pytest.raises(stoke.StokeError) as not_hdf5:
        stoke.Store(text)
    assert not_hdf5.value.kind == "store" and "text.h5" in str(not_hdf5.value)
    with pytest.raises(stoke.StokeError, match="no field named 'pixels'"):
        stoke.Loader(path, fields=["pixels"])
    with pytest.raises(stoke.StokeError, match="order 'shuffled'"):
        stoke.Loader(path, order="shuffled")
    with pytest.raises(stoke.StokeError, match="rank 3 is outside world size 2"):
        stoke.Loader(path, rank=3, world=2)


def test_a_corrupt_chunk_raises_naming_field_and_chunk(tmp_path, store):
    h5py = pytest.importorskip("h5py")
    path, _, _ = store
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(path.read_bytes())
    with h5py.File(corrupt, "r") as file:
        offset = file["image"].id.get_chunk_info(3).byte_offset
    with open(corrupt, "r+b") as file:
        file.seek(offset)
        file.write(b"\xff" * 12)  # the LZ4 chunk header: original size and block size
    loader = stoke.Loader(corrupt, batch_size=100, order="sequential", workers=2)
    with pytest.raises(stoke.StokeError) as error:
        for _ in loader:
            pass
    assert error.value.kind == "store"
    assert "image" in str(error.value) and "chunk 3" in str(error.value)


def _threads():
    return len(os.listdir("/proc/self/task"))


def _settle(expected, seconds=5.0):
    deadline = time.monotonic() + seconds
    while _threads() > expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return _threads()


def test_a_dropped_iterator_and_loader_join_their_threads(store):
    path, _, _ = store
    # Warm up once so lazily started process-wide threads are not counted against the loader.
    for _ in stoke.Loader(path, batch_size=100, workers=2):
        break
    gc.collect()
    baseline = _settle(0, seconds=0.5)
    loader = stoke.Loader(path, batch_size=50, workers=4)
    assert _threads() >= baseline + 4
    iterator = iter(loader)
    next(iterator)
    next(iterator)
    del iterator  # dropped half-way: the epoch stops, the loader stays usable
    assert len([b for b in loader]) == len(loader)
    del loader
    gc.collect()
    assert _settle(baseline) == baseline
    # The same through `for ... break` on a temporary loader, and an explicit close.
    for _ in stoke.Loader(path, batch_size=50, workers=3):
        break
    gc.collect()
    assert _settle(baseline) == baseline
    with stoke.Loader(path, batch_size=50, workers=3) as loader:
        next(iter(loader))
    assert _settle(baseline) == baseline


def test_arrays_outlive_a_closed_loader(store):
    path, images, _ = store
    loader = stoke.Loader(path, batch_size=100, order="sequential", workers=1)
    batch = next(iter(loader))
    loader.close()
    with pytest.raises(stoke.StokeError, match="closed"):
        len(loader)
    del loader
    gc.collect()
    # The memory is freed only with the last array viewing it, so reading it stays safe.
    np.testing.assert_array_equal(batch["image"], images[:100])


def test_set_epoch_and_len(store):
    path, _, _ = store
    loader = stoke.Loader(path, batch_size=300, seed=3, workers=1, drop_last=True)
    assert len(loader) == 3
    loader.set_epoch(7)
    assert loader.epoch == 7
    got = [b["index"].tolist() for b in loader]
    assert got == plan(1000, 64, "chunk-shuffle", 3, 7, 300, True, 0, 1)
    assert loader.epoch == 8


def test_ctrl_c_stops_cleanly(store, tmp_path):
    """SIGINT during iteration raises KeyboardInterrupt in the loop; the loader closes and joins its
    threads, and the process exits normally."""
    import subprocess
    import sys
    path, _, _ = store
    script = tmp_path / "interrupt.py"
    script.write_text(f"""
import os, signal, stoke
# A process started with SIGINT ignored (a background job, nohup) keeps it ignored and Python installs
# no KeyboardInterrupt handler; this test is about Ctrl-C, so it asks for the usual one.
signal.signal(signal.SIGINT, signal.default_int_handler)
threads = len(os.listdir("/proc/self/task"))
loader = stoke.Loader({str(path)!r}, batch_size=10, workers=2)
try:
    for number, batch in enumerate(loader):
        if number == 3:
            os.kill(os.getpid(), signal.SIGINT)
except KeyboardInterrupt:
    loader.close()
    import time
    for _ in range(500):
        if len(os.listdir("/proc/self/task")) <= threads:
            break
        time.sleep(0.01)
    print("interrupted", len(os.listdir("/proc/self/task")) - threads)
""")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["interrupted", "0"], result.stdout
