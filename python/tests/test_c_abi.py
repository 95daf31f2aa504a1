"""The C ABI from C: compiles python/tests/c/stoke_smoke.c against stoke.h and the library in use."""
import os
import shutil
import subprocess

import pytest

import stoke

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_c_program_writes_opens_and_iterates_a_store(tmp_path):
    compiler = shutil.which("cc") or shutil.which("clang") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc, clang or gcc) on PATH")
    library = stoke.library_path
    program = tmp_path / "stoke_smoke"
    subprocess.run(
        [compiler, "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(ROOT, "Sources/StokeC/include"),
         os.path.join(ROOT, "python/tests/c/stoke_smoke.c"), library, f"-Wl,-rpath,{os.path.dirname(library)}",
         "-o", str(program)],
        check=True)
    result = subprocess.run([str(program), str(tmp_path / "c.h5")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "stoke_smoke: ok" in result.stdout


def test_last_error_is_per_thread():
    import threading
    from stoke import _lib

    messages = {}

    def fail(name):
        handle = _lib.c_void_p()
        _lib.lib.stoke_store_open(f"/nonexistent/{name}.h5".encode(), _lib.ctypes.byref(handle))
        barrier.wait()
        messages[name] = _lib.lib.stoke_last_error().decode()

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=fail, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "first.h5" in messages["first"] and "second.h5" in messages["second"]


@pytest.mark.parametrize("options,error", [
    ('{"batch_size": 1}', None),
    ('{"batch_size": true}', "'batch_size' must be an integer"),
    ('{"drop_last": 1}', "'drop_last' must be true or false"),
    ('{"seed": "18446744073709551615"}', None),
    ('{"seed": -1}', "'seed' must be an integer"),
    ('{"normalization": {"image": {"mean": [0.5]}}}', "needs mean and std"),
    ('{"normalization": {"image": {"mean": [0.5], "std": [0.5], "shift": 1}}}', "unknown option 'shift'"),
    ('{"output_types": {"image": "f128"}}', "must be a dtype name"),
    ('[1, 2]', "not a JSON object"),
])
def test_loader_options_json_is_checked(store, options, error):
    from stoke import _lib
    path, _, _ = store
    opened = stoke.Store(path)
    handle = _lib.c_void_p()
    status = _lib.lib.stoke_loader_open(opened._pointer, options.encode(), _lib.ctypes.byref(handle))
    if error is None:
        assert status == 0, _lib.lib.stoke_last_error()
        _lib.lib.stoke_loader_close(handle)
    else:
        assert status == -1 and not handle.value
        assert error in _lib.lib.stoke_last_error().decode()


def test_null_handles_are_errors_not_crashes():
    from stoke import _lib
    count = _lib.c_int64()
    assert _lib.lib.stoke_loader_samples(None, _lib.ctypes.byref(count)) == -1
    assert "loader handle is NULL" in _lib.lib.stoke_last_error().decode()
    assert _lib.lib.stoke_store_open(b"/tmp/x.h5", None) == -1
    _lib.lib.stoke_loader_close(None)
    _lib.lib.stoke_batch_release(None)
