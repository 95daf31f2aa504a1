"""Stores written from Python read back by h5py, and stores h5py wrote read by stoke.Loader."""
import numpy as np
import pytest

import stoke

h5py = pytest.importorskip("h5py")
hdf5plugin = pytest.importorskip("hdf5plugin")


@pytest.mark.parametrize("codec", ["lz4", "lz4-shuffle", "deflate:3", "none"])
def test_pack_arrays_round_trips_through_h5py(tmp_path, codec):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(333, 2, 5, 5), dtype=np.uint8)
    features = rng.standard_normal((333, 7)).astype(np.float32)
    halves = rng.standard_normal((333, 3)).astype(np.float16)
    labels = rng.integers(-5, 5, size=333).astype(np.int32)
    path = tmp_path / "packed.h5"
    assert stoke.pack_arrays(path, codec=codec, chunk_samples=50, metadata={"recipe": {"source": "test"}},
                             image=images, feature=features, half=halves, label=labels) == 333
    with h5py.File(path, "r") as file:
        np.testing.assert_array_equal(file["image"][:], images)
        np.testing.assert_array_equal(file["feature"][:], features)
        np.testing.assert_array_equal(file["half"][:], halves)
        np.testing.assert_array_equal(file["label"][:], labels)
        assert file["image"].chunks == (50, 2, 5, 5)
    store = stoke.Store(path)
    assert store.samples == 333 and store.fields["half"].dtype == np.float16 and store.fields["label"].shape == ()
    assert store.attribute("recipe") == {"source": "test"}


def test_loader_reads_stores_h5py_wrote(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(500, 1, 6, 6), dtype=np.uint8)
    labels = np.arange(500, dtype=np.int64)
    path = tmp_path / "h5py.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("image", data=images, chunks=(40, 1, 6, 6), **hdf5plugin.LZ4())
        file.create_dataset("label", data=labels, chunks=(100,), compression="gzip")
    seen = 0
    for batch in stoke.Loader(path, batch_size=64, order="random", seed=2, workers=2):
        np.testing.assert_array_equal(batch["image"], images[batch["index"]])
        np.testing.assert_array_equal(batch["label"], batch["index"])
        seen += len(batch["index"])
    assert seen == 500


def test_writer_appends_in_pieces_and_is_atomic(tmp_path):
    path = tmp_path / "pieces.h5"
    with stoke.Writer(path, chunk_samples=32, x=("f32", (4,)), y=(np.int64, ())) as writer:
        for start in range(0, 100, 30):
            rows = np.arange(start, min(100, start + 30))
            writer.append(x=np.repeat(rows[:, None], 4, axis=1).astype(np.float32), y=rows)
        assert not path.exists()  # nothing at the path before finish
    assert writer.samples == 100
    with h5py.File(path, "r") as file:
        np.testing.assert_array_equal(file["y"][:], np.arange(100))
    # An exception inside the block abandons the store: nothing appears, no temporary file remains.
    other = tmp_path / "abandoned.h5"
    with pytest.raises(RuntimeError):
        with stoke.Writer(other, chunk_samples=8, x=("u8", (2,))) as writer:
            writer.append(x=np.zeros((10, 2), np.uint8))
            raise RuntimeError("stop")
    assert not other.exists() and not list(tmp_path.glob("abandoned.h5.partial-*"))


def test_writer_errors_name_what_is_wrong(tmp_path):
    path = tmp_path / "bad.h5"
    with pytest.raises(stoke.StokeError, match="do not hold samples of shape"):
        with stoke.Writer(path, chunk_samples=8, x=("u8", (3,))) as writer:
            writer.append(x=np.zeros((4, 2), np.uint8))
    with pytest.raises(stoke.StokeError, match="differ in sample count"):
        with stoke.Writer(path, chunk_samples=8, a=("u8", ()), b=("u8", ())) as writer:
            writer.append(a=np.zeros(3, np.uint8), b=np.zeros(2, np.uint8))
    stoke.pack_arrays(path, chunk_samples=8, x=np.zeros((3, 1), np.uint8))
    with pytest.raises(stoke.StokeError, match="already exists"):
        stoke.pack_arrays(path, chunk_samples=8, x=np.zeros((3, 1), np.uint8))
    assert stoke.pack_arrays(path, chunk_samples=8, overwrite=True, x=np.ones((5, 1), np.uint8)) == 5
    with pytest.raises(stoke.StokeError, match="codec 'zstd'"):
        stoke.pack_arrays(tmp_path / "z.h5", codec="zstd", x=np.zeros((3, 1), np.uint8))
    with pytest.raises(stoke.StokeError, match="no Stoke equivalent"):
        stoke.pack_arrays(tmp_path / "c.h5", x=np.zeros((3, 1), np.complex64))


def test_pack_files_packs_npy_and_idx(tmp_path):
    images = np.arange(60 * 28 * 28, dtype=np.uint8).reshape(60, 28, 28)
    labels = np.arange(60, dtype=np.int64) % 10
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    path = tmp_path / "files.h5"
    assert stoke.pack_files(path, {"image": (tmp_path / "images.npy", (1, 28, 28)), "label": tmp_path / "labels.npy"},
                            chunk_samples=16) == 60
    store = stoke.Store(path)
    assert store.fields["image"].shape == (1, 28, 28)
    batch = next(iter(stoke.Loader(path, batch_size=60, order="sequential", workers=1)))
    np.testing.assert_array_equal(batch["image"][:, 0], images)
    idx = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
    import os
    if os.path.exists(idx):
        assert stoke.pack_files(tmp_path / "idx.h5", {"label": idx}, chunk_samples=1000) == 10000
    with pytest.raises(stoke.StokeError, match="missing.npy"):
        stoke.pack_files(tmp_path / "x.h5", {"x": tmp_path / "missing.npy"})
