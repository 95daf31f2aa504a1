import numpy as np
import pytest

import stoke


@pytest.fixture
def store(tmp_path):
    """A 1,000-sample store: image u8 [3, 4, 4] whose bytes encode the sample index, label i64 = index,
    64 samples per chunk (16 chunks, the last partial). Returns (path, images, labels)."""
    count = 1000
    labels = np.arange(count, dtype=np.int64)
    images = ((labels[:, None] * 7 + np.arange(48)[None, :]) % 251).astype(np.uint8).reshape(count, 3, 4, 4)
    path = tmp_path / "store.h5"
    stoke.pack_arrays(path, image=images, label=labels, chunk_samples=64)
    return path, images, labels
