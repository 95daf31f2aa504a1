"""Writes .npy files of several dtypes, or checks .npy files written by Stoke.

Usage: python npy_roundtrip.py write DIR    -> DIR/{f4,f8,i8,i4,u1,b1,scalar}.npy
       python npy_roundtrip.py check DIR    -> loads DIR/stoke_f4.npy, stoke_i8.npy and verifies them
"""
import os
import sys

import numpy as np


def main() -> None:
    mode, directory = sys.argv[1], sys.argv[2]
    base = np.arange(24).reshape(2, 3, 4)
    if mode == "write":
        np.save(os.path.join(directory, "f4.npy"), (base / 8 - 1).astype(np.float32))
        np.save(os.path.join(directory, "f8.npy"), (base / 8 - 1).astype(np.float64))
        np.save(os.path.join(directory, "i8.npy"), (base - 12).astype(np.int64))
        np.save(os.path.join(directory, "i4.npy"), (base - 12).astype(np.int32))
        np.save(os.path.join(directory, "u1.npy"), base.astype(np.uint8))
        np.save(os.path.join(directory, "b1.npy"), base % 2 == 0)
        np.save(os.path.join(directory, "scalar.npy"), np.float32(2.5))
        np.save(os.path.join(directory, "fortran.npy"), np.asfortranarray((base / 8).astype(np.float32)))
    else:
        f4 = np.load(os.path.join(directory, "stoke_f4.npy"))
        i8 = np.load(os.path.join(directory, "stoke_i8.npy"))
        assert f4.dtype == np.float32 and f4.shape == (2, 3, 4), (f4.dtype, f4.shape)
        assert np.array_equal(f4, (base / 8 - 1).astype(np.float32))
        assert i8.dtype == np.int64 and i8.shape == (5,) and list(i8) == [1, -2, 3, -4, 5]
        print("ok")


if __name__ == "__main__":
    main()
