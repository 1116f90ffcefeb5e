"""The external oracles: the tflite-micro Python interpreter, and TFLite's kernels.

autotune's own reference executor is checked against these in the test suite;
nothing in the tuning path depends on them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from autotune.model.schema import fb

Calls = Sequence[Sequence[np.ndarray]]
Results = list[list[np.ndarray]]


class OracleUnavailable(RuntimeError):
    """The interpreter could not load or run this model."""


def tflm_invoke(
    model: bytes, calls: Calls, stateful: bool = False, arena_size: int | None = None
) -> Results:
    """Run invocations in one tflite-micro interpreter.

    stateful=True lets variable tensors (LSTM state) carry over from call to call;
    otherwise the interpreter is reset before each call.
    """
    from tflite_micro.python.tflite_micro import runtime

    n_outputs = len(fb.ModelT.InitFromPackedBuf(model, 0).subgraphs[0].outputs)
    if arena_size is None:  # the wheel's default (10x the file) is too small for tiny models
        arena_size = max(10 * len(model), 4 << 20)
    try:
        interp = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    except Exception as exc:
        raise OracleUnavailable(f"tflite-micro cannot load the model: {exc}") from exc
    results = []
    for inputs in calls:
        if not stateful:
            interp.reset()
        for i, x in enumerate(inputs):
            interp.set_input(np.ascontiguousarray(x), i)
        interp.invoke()
        results.append([np.array(interp.get_output(i)) for i in range(n_outputs)])
    return results


def _litert(model: bytes, calls: Calls, stateful: bool, reference_kernels: bool) -> Results:
    from ai_edge_litert import interpreter as lite

    resolver = (
        lite.OpResolverType.BUILTIN_REF
        if reference_kernels
        else lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    try:
        interp = lite.Interpreter(model_content=model, experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
    except Exception as exc:
        raise OracleUnavailable(f"TFLite cannot load the model: {exc}") from exc
    ins = interp.get_input_details()
    outs = interp.get_output_details()
    results = []
    for inputs in calls:
        if not stateful:
            interp.reset_all_variables()
        for d, x in zip(ins, inputs, strict=True):
            interp.set_tensor(d["index"], np.ascontiguousarray(x))
        interp.invoke()
        results.append([np.array(interp.get_tensor(d["index"])) for d in outs])
    return results


def litert_invoke(model: bytes, calls: Calls, stateful: bool = False) -> Results:
    """TFLite restricted to its reference kernels (BUILTIN_REF)."""
    return _litert(model, calls, stateful, reference_kernels=True)


def litert_optimized_invoke(model: bytes, calls: Calls, stateful: bool = False) -> Results:
    """TFLite's optimized builtin kernels, no delegate: only where no reference can run."""
    return _litert(model, calls, stateful, reference_kernels=False)


ORACLES: dict[str, Callable[[bytes, Calls, bool], Results]] = {
    "tflite-micro": tflm_invoke,
    "litert-ref": litert_invoke,
    "litert-optimized": litert_optimized_invoke,
}


def _child(name: str, model: bytes, calls: list[list[np.ndarray]], stateful: bool) -> Results:
    return ORACLES[name](model, calls, stateful)


def run_isolated(name: str, model: bytes, calls: Calls, stateful: bool = False) -> Results:
    """Run one oracle in a child process: both interpreters abort the process on some models."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        future = pool.submit(_child, name, model, [list(c) for c in calls], stateful)
        try:
            return future.result()
        except BrokenProcessPool:
            raise OracleUnavailable(f"{name} crashed while loading or running the model") from None


def oracle_invoke(
    model: bytes,
    calls: Calls,
    stateful: bool = False,
    isolated: bool = False,
    allow_optimized: bool = False,
) -> tuple[str, Results]:
    """tflite-micro where it runs the model, otherwise TFLite's reference kernels.

    isolated=True runs each interpreter in a child process. allow_optimized=True adds
    TFLite's optimized kernels as a last resort (they are not the reference).
    """
    names = ["tflite-micro", "litert-ref"] + (["litert-optimized"] if allow_optimized else [])
    problems = []
    for name in names:
        try:
            if isolated:
                return name, run_isolated(name, model, calls, stateful)
            return name, ORACLES[name](model, calls, stateful)
        except OracleUnavailable as exc:
            problems.append(str(exc))
    raise OracleUnavailable("; ".join(problems))


_ARENA_SCRIPT = """
import sys
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], "rb").read()
interp = runtime.Interpreter.from_bytes(data, arena_size=max(10 * len(data), 8 << 20))
interp.print_allocations()
"""


def tflm_arena(model_path: str) -> dict[str, int] | None:
    """The tflite-micro interpreter's arena for a model: total, head (planned tensors)
    and tail (persistent), in bytes; None where tflite-micro cannot load the model.

    The figures are printed by TFLM's RecordingMicroAllocator from C, so they are read
    from a child process's output (which also keeps an abort in the wheel contained).
    Asked once per file version in a process (a tuning run asks twice).
    """
    import os

    try:
        st = os.stat(model_path)
    except OSError:
        return None
    found = _tflm_arena(model_path, st.st_size, st.st_mtime_ns)
    return dict(found) if found is not None else None


@functools.lru_cache(maxsize=16)
def _tflm_arena(model_path: str, _size: int, _mtime_ns: int) -> dict[str, int] | None:
    import re
    import subprocess
    import sys

    try:
        done = subprocess.run(
            [sys.executable, "-c", _ARENA_SCRIPT, model_path],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout + done.stderr  # the wheel prints through C stdio on either stream
    found = dict(re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", text))
    if done.returncode != 0 or "total" not in found:
        return None
    return {k: int(v) for k, v in found.items()}
