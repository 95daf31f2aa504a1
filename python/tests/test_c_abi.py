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
