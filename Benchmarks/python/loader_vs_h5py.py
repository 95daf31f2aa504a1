#!/usr/bin/env python3
"""samples/s of stoke.Loader (Python, zero copy) against the Swift loader on the same store and settings,
against h5py read per sample in shuffled order and batch-sequentially (through torch.utils.data.DataLoader
when PyTorch is installed, plain loops otherwise), and a small CNN training run on Fashion-MNIST fed by
each, with the share of its time spent waiting for data.

    .venv/bin/python Benchmarks/python/loader_vs_h5py.py [--store PATH] [--json OUT]

The store defaults to Fashion-MNIST's 60,000 training images packed by stoke.pack_files (LZ4, 2 MiB
chunks) into a temporary folder. Build the library in release first (`swift build -c release --product
stoke-c`); the Swift loader is timed with `.build/release/stoke bench io` when that binary exists (`swift
build -c release --product stoke`), and with a C loop over the C ABI (no Python) otherwise or as well.
Every figure is measured by this run; the store is read once before timing so all readers see it warm.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
import stoke  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"


def timed_epochs(make_iterable, samples_of, epochs=2, limit=None):
    """samples/s over `epochs` passes (each stopped after `limit` samples): all samples over all the time,
    as `stoke bench io` counts."""
    seen = 0
    start = time.perf_counter()
    for _ in range(epochs):
        taken = 0
        for batch in make_iterable():
            taken += samples_of(batch)
            if limit and taken >= limit:
                break
        seen += taken
    return seen / (time.perf_counter() - start)


def stoke_loader(path, args, **extra):
    loader = stoke.Loader(path, batch_size=args.batch_size, order=args.order, workers=args.workers,
                          prefetch=args.prefetch, seed=0, **extra)
    rate = timed_epochs(lambda: loader, lambda b: len(b["index"]), epochs=args.epochs)
    loader.close()
    return rate


def swift_cli(path, args):
    binary = os.path.join(ROOT, ".build", "release", "stoke")
    if not os.path.exists(binary):
        return None
    result = subprocess.run([binary, "bench", "io", str(path), "--batch-size", str(args.batch_size), "--workers",
                             str(args.workers), "--prefetch", str(args.prefetch), "--order", args.order,
                             "--epochs", str(args.epochs), "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"stoke bench io failed: {result.stderr.strip()}", file=sys.stderr)
        return None
    return json.loads(result.stdout)["samples_per_s"]


C_LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "stoke.h"
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    stoke_store *store; stoke_loader *loader;
    if (stoke_store_open(argv[1], &store) || stoke_loader_open(store, argv[2], &loader)) { fprintf(stderr, "%s\n", stoke_last_error()); return 1; }
    int epochs = atoi(argv[3]); long samples = 0; double start = now();
    for (int epoch = 0; epoch < epochs; epoch++) {
        stoke_loader_start(loader, epoch, 0);
        stoke_batch *batch; int status;
        while ((status = stoke_loader_next(loader, &batch)) == STOKE_OK) { int64_t count; stoke_batch_info(batch, &count, NULL); samples += count; stoke_batch_release(batch); }
        if (status != STOKE_END) { fprintf(stderr, "%s\n", stoke_last_error()); return 1; }
    }
    printf("%.1f\n", samples / (now() - start));
    stoke_loader_close(loader); stoke_store_close(store);
    return 0;
}
"""


def c_loop(path, args, folder):
    compiler = shutil.which("cc")
    if compiler is None:
        return None
    source = os.path.join(folder, "loop.c")
    with open(source, "w") as file:
        file.write(C_LOOP)
    program = os.path.join(folder, "loop")
    library = stoke.library_path
    subprocess.run([compiler, "-O2", "-I", os.path.join(ROOT, "Sources/StokeC/include"), source, library,
                    f"-Wl,-rpath,{os.path.dirname(library)}", "-o", program], check=True)
    options = json.dumps({"batch_size": args.batch_size, "order": args.order, "workers": args.workers,
                          "prefetch": args.prefetch, "seed": 0})
    result = subprocess.run([program, str(path), options, str(args.epochs)], capture_output=True, text=True, check=True)
    return float(result.stdout)


class Rates(dict):
    """Results by name, each printed to stderr as it is measured (the h5py runs take minutes)."""

    def __setitem__(self, name, rate):
        super().__setitem__(name, rate)
        if rate is not None:
            print(f"measured {name}: {rate:,.0f} samples/s", file=sys.stderr, flush=True)


class H5Samples:
    """A map-style dataset reading one sample per __getitem__ from h5py (the usual PyTorch recipe).
    `chunk_cache` is the image dataset's HDF5 chunk cache in bytes (None: the library's default, a few MiB:
    a few 2 MiB chunks, so shuffled reads mostly decode their whole chunk again)."""

    def __init__(self, path, chunk_cache=None):
        self.path = path
        self.chunk_cache = chunk_cache
        self.file = None
        import h5py
        with h5py.File(path, "r") as file:
            self.count = len(file["label"])

    def __len__(self):
        return self.count

    def _open(self):
        if self.file is None:
            import h5py
            import hdf5plugin  # noqa: F401 (registers the LZ4 filter)
            self.file = h5py.File(self.path, "r")
            if self.chunk_cache is not None:
                # Per dataset, on its first opening (a dataset already open keeps its cache): with h5py 3.16 /
                # HDF5 2.0, File(rdcc_nbytes=...) left the datasets at 8 MiB.
                access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
                access.set_chunk_cache(10007, self.chunk_cache, 0.75)
                self.images = h5py.Dataset(h5py.h5d.open(self.file.id, b"image", dapl=access))
                assert self.images.id.get_access_plist().get_chunk_cache()[1] == self.chunk_cache
            else:
                self.images = self.file["image"]
            self.labels = self.file["label"]

    def close(self):
        """Closes the file, so the next opening (another cache size, a forked worker) starts afresh: HDF5
        shares an open file and its open datasets, caches included, within a process."""
        if self.file is not None:
            self.images = self.labels = None
            self.file.close()
            self.file = None

    def __getitem__(self, index):
        self._open()
        if isinstance(index, (list, tuple, range)):  # batch-sequential: one slice read
            start, stop = index[0], index[-1] + 1
            return self.images[start:stop], self.labels[start:stop]
        return self.images[index], self.labels[index]


def h5py_rates(path, args, torch):
    dataset = H5Samples(path)
    cached = H5Samples(path, chunk_cache=256 << 20)
    limit = args.h5py_samples
    rates = Rates()
    if torch is not None:
        from torch.utils.data import BatchSampler, DataLoader, SequentialSampler
        for workers in sorted({0, args.workers}):
            for name, data in (("default chunk cache", dataset), ("256 MiB chunk cache", cached)):
                data.close()
                shuffled = DataLoader(data, batch_size=args.batch_size, shuffle=True, num_workers=workers)
                rates[f"DataLoader + h5py, shuffled per sample, {name}, num_workers={workers}"] = timed_epochs(
                    lambda: shuffled, lambda b: len(b[1]), epochs=1, limit=limit)
                data.close()
        dataset.close()
        sequential = DataLoader(dataset, batch_size=None,
                                sampler=BatchSampler(SequentialSampler(range(len(dataset))), args.batch_size, False))
        rates["DataLoader + h5py, batch-sequential slices"] = timed_epochs(lambda: sequential, lambda b: len(b[1]), epochs=2)
        dataset.close()
    else:
        rng = np.random.default_rng(0)

        def shuffled():
            order = rng.permutation(len(dataset))
            for start in range(0, len(order), args.batch_size):
                items = [dataset[int(i)] for i in order[start:start + args.batch_size]]
                yield np.stack([image for image, _ in items]), np.array([label for _, label in items])

        def sequential():
            for start in range(0, len(dataset), args.batch_size):
                yield dataset[range(start, min(len(dataset), start + args.batch_size))]

        rates["h5py, shuffled per sample (no PyTorch)"] = timed_epochs(shuffled, lambda b: len(b[1]), epochs=1, limit=limit)
        dataset = cached
        rates["h5py, shuffled per sample, 256 MiB chunk cache (no PyTorch)"] = timed_epochs(
            shuffled, lambda b: len(b[1]), epochs=1, limit=limit)
        rates["h5py, batch-sequential slices (no PyTorch)"] = timed_epochs(sequential, lambda b: len(b[1]), epochs=2)
    return rates


def train(torch, batches, limit):
    """Trains a small CNN on (image f32 [B,1,28,28], label) batches up to `limit` samples: returns
    samples/s, the share of time spent waiting for the next batch, and the loss at the end."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    waited = 0.0
    seen = 0
    start = time.perf_counter()
    iterator = iter(batches)
    loss = None
    while seen < limit:
        before = time.perf_counter()
        try:
            images, labels = next(iterator)
        except StopIteration:
            break
        waited += time.perf_counter() - before
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(labels)
    elapsed = time.perf_counter() - start
    return seen / elapsed, waited / elapsed, float(loss.detach())


def training(path, args, torch):
    results = {}
    loader = stoke.Loader(path, batch_size=args.batch_size, order=args.order, workers=args.workers,
                          prefetch=args.prefetch, tensors=True,
                          normalization={"image": {"mean": [0.2860], "std": [0.3530]}})
    results["stoke.Loader"] = train(torch, ((b["image"], b["label"]) for b in loader), args.train_samples)
    loader.close()

    dataset = H5Samples(path, chunk_cache=256 << 20)
    from torch.utils.data import DataLoader

    def normalized(data):
        for images, labels in data:
            yield (images.float() / 255 - 0.2860) / 0.3530, labels.long()

    shuffled = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=0)
    results["DataLoader + h5py shuffled (256 MiB chunk cache)"] = train(torch, normalized(shuffled), args.train_samples)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="a store with 'image' u8 [N,1,28,28] and 'label' fields (default: Fashion-MNIST train)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--order", default="chunk-shuffle")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loader measurement")
    parser.add_argument("--h5py-samples", type=int, default=5120, help="samples read per h5py shuffled measurement")
    parser.add_argument("--train-samples", type=int, default=10240, help="samples per training measurement")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None

    folder = tempfile.mkdtemp(prefix="stoke-bench-")
    try:
        path = args.store
        if path is None:
            path = os.path.join(folder, "fashion-train.h5")
            stoke.pack_files(path, {"image": (os.path.join(FASHION, "train-images-idx3-ubyte.gz"), (1, 28, 28)),
                                    "label": os.path.join(FASHION, "train-labels-idx1-ubyte.gz")})
        store = stoke.Store(path)
        with open(path, "rb") as file:  # warm the page cache for every reader
            while file.read(16 << 20):
                pass
        results = {"store": path, "samples": store.samples, "library": stoke.library_path,
                   "settings": {"batch_size": args.batch_size, "workers": args.workers, "prefetch": args.prefetch,
                                "order": args.order},
                   "samples_per_second": Rates(), "training": {}}
        rates = results["samples_per_second"]
        rates["stoke.Loader (Python, NumPy views)"] = stoke_loader(path, args)
        if torch is not None:
            rates["stoke.Loader (Python, torch tensors)"] = stoke_loader(path, args, tensors=True)
        swift = swift_cli(path, args)
        if swift is not None:
            rates["Swift loader (stoke bench io)"] = swift
        rates["C ABI loop (no Python)"] = c_loop(path, args, folder)
        rates.update(h5py_rates(path, args, torch))
        if torch is not None:
            for name, (rate, wait, loss) in training(path, args, torch).items():
                results["training"][name] = {"samples_per_second": rate, "wait_share": wait, "final_loss": loss}

        width = max(len(name) for name in rates)
        print(f"store {path}: {store.samples} samples; batch {args.batch_size}, workers {args.workers}, "
              f"prefetch {args.prefetch}, order {args.order}")
        for name, rate in rates.items():
            print(f"  {name:<{width}}  {rate:>12,.0f} samples/s")
        reference = rates.get("Swift loader (stoke bench io)") or rates["C ABI loop (no Python)"]
        python = rates["stoke.Loader (Python, NumPy views)"]
        print(f"  stoke.Loader / Swift loader: {python / reference:.2f}x")
        shuffled = [rate for name, rate in rates.items() if "shuffled" in name]
        if shuffled:
            print(f"  stoke.Loader / h5py shuffled (best): {python / max(shuffled):.1f}x")
        for name, entry in results["training"].items():
            print(f"  training, {name}: {entry['samples_per_second']:,.0f} samples/s, "
                  f"{100 * entry['wait_share']:.1f}% of the time waiting for data, final loss {entry['final_loss']:.3f}")
        if args.json:
            with open(args.json, "w") as file:
                json.dump(results, file, indent=2)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
