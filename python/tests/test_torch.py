"""PyTorch fed by stoke: DLPack tensors sharing the pinned buffers, a small training loop, and
IterableDataset under torch.utils.data.DataLoader. Skipped when PyTorch is not installed (scripts/setup
installs it only from a local CPU wheel: PyPI's torch pulls several GB of CUDA libraries)."""
import gc
import os
import time

import numpy as np
import pytest

import stoke

torch = pytest.importorskip("torch", reason="PyTorch is not installed in .venv (no CPU wheel found by scripts/setup)")


@pytest.fixture
def separable(tmp_path):
    """1,024 1×8×8 u8 images of two classes told apart by which half is bright."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=1024).astype(np.int64)
    images = rng.integers(0, 100, size=(1024, 1, 8, 8)).astype(np.uint8)
    images[labels == 1, :, :4, :] += 120
    images[labels == 0, :, 4:, :] += 120
    path = tmp_path / "separable.h5"
    stoke.pack_arrays(path, image=images, label=labels, chunk_samples=128)
    return path


def test_tensors_share_the_pinned_buffers(separable):
    loader = stoke.Loader(separable, batch_size=64, workers=2, tensors=True)
    batch = next(iter(loader))
    assert isinstance(batch["image"], torch.Tensor) and batch["image"].dtype == torch.uint8
    assert batch["image"].data_ptr() == loader._lease_addresses["image"]
    assert batch["index"].dtype == torch.int64


def test_a_small_training_loop_learns_from_stoke_loader(separable):
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny layers: more threads only contend with the loader's workers
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = stoke.Loader(separable, batch_size=64, seed=1, workers=2, tensors=True,
                          normalization={"image": {"mean": [0.3], "std": [0.3]}})
    for epoch in range(3):
        correct = total = 0
        for batch in loader:
            logits = model(batch["image"])
            loss = torch.nn.functional.cross_entropy(logits, batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += (logits.argmax(1) == batch["label"]).sum().item()
            total += len(batch["label"])
        assert total == 1024
    torch.set_num_threads(threads)
    assert correct / total > 0.95, f"last-epoch training accuracy {correct / total:.3f}"
    assert loader.epoch == 3


def _threads():
    return len(os.listdir("/proc/self/task"))


def test_iterable_dataset_under_dataloader(separable):
    dataset = stoke.IterableDataset(separable, batch_size=100, seed=2, workers=2)
    assert len(dataset) == 11
    data = torch.utils.data.DataLoader(dataset, batch_size=None)
    seen = []
    for batch in data:
        assert isinstance(batch["image"], torch.Tensor)
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(1024))
    assert dataset.epoch == 1
    # Dropped half-way: the loader behind the iterator closes and joins its threads.
    gc.collect()
    baseline = _threads()
    iterator = iter(data)
    next(iterator)
    assert _threads() >= baseline + 2
    del iterator
    gc.collect()
    deadline = time.monotonic() + 5
    while _threads() > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _threads() == baseline
