"""Fuzz the model import: every mutated model must end in a clean result or a clean rejection.

    python bench/fuzz_import.py [--mutants 1000] [--seed 0] [--first 0] [--models NAME ...]
                                [--timeout 10] [--memory-mb 2048] [--json FILE] [--show N]

Mutant n of a seed is the same whatever else runs (its own generator), so a long run can
be split: ``--first 50000 --mutants 50000`` is the second half of a 100,000-mutant run.

Each mutant is one of the shared models (``../shared/models``, or ``AUTOTUNE_MODELS`` /
``--models-dir``) changed in one to three places: random bytes of the packed file, or a
field through the flatbuffer object API (a tensor's shape, type, buffer or quantization,
an op's inputs, outputs, options or operator code, a buffer's contents, the subgraph's
inputs and outputs). A long-lived child process, limited to ``--memory-mb`` of address
space (``resource.setrlimit``), drives what the commands do before anything is compiled:

- ``inspect``: import and the per-layer summary (``autotune inspect --json``);
- ``reference``: the reference interpreter on seeded inputs (``autotune reference``);
- ``tune``: the tuning pre-steps of ``autotune MODEL``: every layer classified, workloads
  built and keyed, their check inputs run through the reference, and the whole-model
  library emitted and its arena planned (nothing compiled).

Outcomes: ``ok`` (every step ran), ``rejected`` (an AutotuneError: one line, exit 2 or 3
from the CLI), ``internal`` (any other exception: exit 70, a bug), ``memory`` (the child
hit the memory limit), ``hang`` (a mutant used over ``--timeout`` CPU seconds, or the
child stopped answering and was killed and replaced) and ``crash`` (the child died). Anything but ok and rejected is a
failure: the counts are printed, each failure's first line is shown, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# Small models with different ops: FULLY_CONNECTED (hello_world); RESHAPE, DEPTHWISE_CONV_2D,
# SOFTMAX (micro_speech); CONV_2D, AVERAGE_POOL_2D (kws_ref); LSTM (trained_lstm);
# LSTM + STRIDED_SLICE (lstm_weather). str_ww (more of kws_ref's ops, the slowest to run)
# can still be named with --models.
DEFAULT_MODELS = (
    "hello_world_int8.tflite",
    "micro_speech_quantized.tflite",
    "kws_ref_model.tflite",
    "trained_lstm_int8.tflite",
    "lstm_weather_24x7_u32.tflite",
)
FAILURES = ("internal", "memory", "hang", "crash")


def models_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("AUTOTUNE_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "models"


# ---------------------------------------------------------------- mutations (parent side)

_DIMS = (0, 1, 2, 3, -1, -2, 7, 255, 65536, 2**20 + 1, 2**28 + 1, 2**31 - 1)
_SCALES = (0.0, -1.0, float("nan"), float("inf"), 1e-30, 1e-12, 1e30, 3.0e38, 0.5, 1.0, 300.0)
_ZPS = (-129, 128, 255, -32769, 2**31 - 1, -(2**31), 0, 1, -1)
_INTS = (-(2**31), -65536, -2, -1, 0, 1, 2, 3, 7, 255, 65536, 2**20, 2**31 - 1)


def _seq(value: Any) -> list[Any]:
    """A vector field of the object API (None, list or numpy array) as a list."""
    return [] if value is None else [v.item() if hasattr(v, "item") else v for v in value]


def _pick(rng: random.Random, seq: Any) -> Any:
    return seq[rng.randrange(len(seq))]


def _any_index(rng: random.Random, n: int) -> int:
    return _pick(
        rng, (-1, -2, n, n + 1, 2**31 - 1, rng.randrange(max(n, 1)), rng.randrange(max(n, 1)))
    )


def _mutate_tensor_shape(rng: random.Random, model: Any) -> str:
    sub = model.subgraphs[0]
    t = _pick(rng, sub.tensors)
    shape = _seq(t.shape)
    roll = rng.random()
    if shape and roll < 0.7:
        i = rng.randrange(len(shape))
        shape[i] = _pick(rng, (*_DIMS, shape[i] + 1, shape[i] * 2, max(shape[i] - 1, 0)))
    elif shape and roll < 0.85:
        shape.pop(rng.randrange(len(shape)))
    else:
        shape.insert(rng.randrange(len(shape) + 1), _pick(rng, (1, 2, 3, 0)))
    t.shape = shape
    return "tensor shape"


def _mutate_tensor_type(rng: random.Random, model: Any) -> str:
    t = _pick(rng, model.subgraphs[0].tensors)
    t.type = rng.randrange(0, 20)
    return "tensor type"


def _mutate_tensor_buffer(rng: random.Random, model: Any) -> str:
    t = _pick(rng, model.subgraphs[0].tensors)
    t.buffer = _any_index(rng, len(model.buffers or []))
    if t.buffer < 0:
        t.buffer = 0
    return "tensor buffer"


def _mutate_quant(rng: random.Random, model: Any, fb: Any) -> str:
    t = _pick(rng, model.subgraphs[0].tensors)
    q = t.quantization
    if q is None or not _seq(q.scale) or rng.random() < 0.1:
        q = fb.QuantizationParametersT()
        q.scale = [_pick(rng, _SCALES)]
        q.zeroPoint = [0]
        t.quantization = q
        return "quant added"
    scale = _seq(q.scale)
    zp = _seq(q.zeroPoint)
    roll = rng.random()
    if roll < 0.35:
        scale[rng.randrange(len(scale))] = _pick(rng, _SCALES)
    elif roll < 0.6 and zp:
        zp[rng.randrange(len(zp))] = _pick(rng, _ZPS)
    elif roll < 0.75:
        q.quantizedDimension = _pick(rng, (-1, 1, 2, 3, 4, 9))
    elif roll < 0.9:
        scale = [*scale, _pick(rng, _SCALES)]
    else:
        zp = zp[:-1]
    q.scale, q.zeroPoint = scale, zp
    return "quant"


def _mutate_op_io(rng: random.Random, model: Any) -> str:
    sub = model.subgraphs[0]
    op = _pick(rng, sub.operators)
    which = _pick(rng, ("inputs", "outputs", "intermediates"))
    seq = _seq(getattr(op, which))
    roll = rng.random()
    if seq and roll < 0.6:
        seq[rng.randrange(len(seq))] = _any_index(rng, len(sub.tensors))
    elif seq and roll < 0.8:
        seq.pop(rng.randrange(len(seq)))
    else:
        seq.append(_any_index(rng, len(sub.tensors)))
    setattr(op, which, seq)
    return f"op {which}"


def _mutate_options(rng: random.Random, model: Any) -> str:
    op = _pick(rng, model.subgraphs[0].operators)
    opts = op.builtinOptions
    if opts is None or not vars(opts):
        op.builtinOptionsType = rng.randrange(0, 130)
        return "options type"
    name = _pick(rng, sorted(vars(opts)))
    value = getattr(opts, name)
    if isinstance(value, bool):
        setattr(opts, name, not value)
    elif isinstance(value, int):
        setattr(opts, name, _pick(rng, _INTS))
    elif isinstance(value, float):
        setattr(opts, name, _pick(rng, _SCALES))
    elif value is not None and hasattr(value, "__len__"):
        seq = _seq(value)
        if seq:
            seq[rng.randrange(len(seq))] = _pick(rng, _INTS)
        else:
            seq.append(_pick(rng, _INTS))
        setattr(opts, name, seq)
    return f"option {name}"


def _mutate_opcode(rng: random.Random, model: Any) -> str:
    roll = rng.random()
    if roll < 0.5:
        op = _pick(rng, model.subgraphs[0].operators)
        op.opcodeIndex = _any_index(rng, len(model.operatorCodes))
        if op.opcodeIndex < 0:
            op.opcodeIndex = 0
        return "op code index"
    code = _pick(rng, model.operatorCodes)
    # Another real op in place of this one: its checks now see the wrong tensors.
    code.builtinCode = rng.randrange(0, 160)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    return "operator code"


def _mutate_buffer(rng: random.Random, model: Any) -> str:
    import numpy as np

    full = [b for b in model.buffers if b.data is not None and len(b.data)]
    if not full:
        return "buffer (none)"
    b = _pick(rng, full)
    data = np.asarray(b.data, dtype=np.uint8).copy()
    roll = rng.random()
    if roll < 0.3:
        b.data = data[: rng.randrange(len(data))]
    elif roll < 0.45:
        b.data = np.concatenate([data, data[: rng.randrange(1, 9)]])
    else:
        idx = rng.randrange(len(data))
        data[idx : idx + 4] = rng.randrange(256)
        b.data = data
    return "buffer data"


def _mutate_graph_io(rng: random.Random, model: Any) -> str:
    sub = model.subgraphs[0]
    which = _pick(rng, ("inputs", "outputs"))
    seq = _seq(getattr(sub, which))
    if seq and rng.random() < 0.6:
        seq[rng.randrange(len(seq))] = _any_index(rng, len(sub.tensors))
    elif seq and rng.random() < 0.5:
        seq.pop()
    else:
        seq.append(_any_index(rng, len(sub.tensors)))
    setattr(sub, which, seq)
    return f"graph {which}"


def _mutate_variable(rng: random.Random, model: Any) -> str:
    t = _pick(rng, model.subgraphs[0].tensors)
    t.isVariable = not t.isVariable
    return "tensor variable"


FIELD_MUTATIONS = (
    (_mutate_tensor_shape, 5),
    (_mutate_tensor_type, 2),
    (_mutate_tensor_buffer, 1),
    (_mutate_quant, 4),
    (_mutate_op_io, 3),
    (_mutate_options, 4),
    (_mutate_opcode, 2),
    (_mutate_buffer, 2),
    (_mutate_graph_io, 1),
    (_mutate_variable, 1),
)


def mutant_rng(seed: int, n: int) -> random.Random:
    """Mutant `n`'s own generator: any mutant is made (and a run split or resumed) without
    making the ones before it."""
    return random.Random(f"fuzz_import/{seed}/{n}")


@dataclass
class Seed:
    name: str
    raw: bytes
    model: Any  # fb.ModelT


def mutate(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    """One mutant of `seed`: bytes and a short description of what changed."""
    import flatbuffers

    from autotune.model.schema import fb

    if rng.random() < 0.2:
        data = bytearray(seed.raw)
        for _ in range(rng.randrange(1, 9)):
            pos = rng.randrange(len(data))
            data[pos] = rng.randrange(256)
        return bytes(data), "byte flips"
    model = copy.deepcopy(seed.model)
    funcs, weights = zip(*FIELD_MUTATIONS, strict=True)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        fn = rng.choices(funcs, weights)[0]
        done.append(fn(rng, model, fb) if fn is _mutate_quant else fn(rng, model))
    try:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    except Exception:  # a field value the packer cannot encode (e.g. out of its integer range)
        return b"", "unpackable: " + ", ".join(done)
    return bytes(builder.Output()), ", ".join(done)


# ---------------------------------------------------------------- the driven steps (child side)


def _random_inputs(graph: Any, seed: int) -> list[Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for t in graph.input_tensors:
        dt = np.dtype(t.dtype)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            out.append(
                rng.integers(info.min, info.max, t.shape, dtype=np.int64, endpoint=True).astype(dt)
            )
        elif dt.kind == "f":
            out.append(rng.normal(0, 2, t.shape).astype(dt))
        else:
            out.append(np.zeros(t.shape, dtype=dt))
    return out


# The emitted library goes to memory where there is a tmpfs: on a busy disk, creating and
# removing a dozen files per mutant took longer than the steps themselves.
_SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


CHECK_SEED = 0  # the check inputs of the tuning pre-steps: autotune's default --seed


_CHECKS: dict[tuple[bytes, int], Any] = {}
_CHECKS_MAX, _CHECKS_MAX_BYTES = 1024, 1 << 20


def cached_checks(blob: bytes, seed: int) -> Any:
    """`CheckSet.for_model`, computed once per distinct layer model: a mutant changes one to
    three places, so most of its layers are byte for byte those of earlier mutants, and
    their seeded check inputs and answers are a function of those bytes and the seed (the
    layer's input in the whole model is still computed for every mutant). Only small sets
    are kept, so that the cache cannot push the child into its memory limit."""
    from autotune.tune.variant import CheckSet

    key = (hashlib.blake2b(blob, digest_size=20).digest(), seed)
    checks = _CHECKS.get(key)
    if checks is None:
        checks = CheckSet.for_model(blob, seed)
        arrays = [a for inputs in checks.inputs for a in inputs] + list(checks.expected)
        if sum(a.nbytes for a in arrays) <= _CHECKS_MAX_BYTES:
            if len(_CHECKS) >= _CHECKS_MAX:
                _CHECKS.clear()
            _CHECKS[key] = checks
    return checks


def run_steps(raw: bytes, name: str, seed: int) -> tuple[str, str, str]:
    """(outcome, step, detail) for one mutant, in this process."""
    from autotune.emit.library import emit_library
    from autotune.errors import AutotuneError
    from autotune.model.summary import summarize
    from autotune.model.tflite_import import parse_model
    from autotune.platform import plugins
    from autotune.reference.executor import Interpreter
    from autotune.tune.pipeline import prepare_layers

    step = "import"
    try:
        graph = parse_model(raw, name)
        step = "inspect"
        json.dumps(summarize(graph))
        outcomes = []
        step = "reference"
        try:
            Interpreter(graph).invoke(_random_inputs(graph, seed))
            outcomes.append("ran")
        except AutotuneError as exc:
            outcomes.append(f"rejected: {exc}")
        step = "tune"
        target = plugins.get_target("cortex-m4")
        layers, _specs, _checks = prepare_layers(graph, CHECK_SEED, model_checks=cached_checks)
        if not any(r.status == "unsupported" for r in layers):
            with tempfile.TemporaryDirectory(prefix="fuzz-", dir=_SCRATCH) as work:
                emit_library(graph, target, Path(work))
        if outcomes[0].startswith("rejected"):
            return "rejected", "reference", outcomes[0][len("rejected: ") :]
        return "ok", "", ""
    except AutotuneError as exc:
        return "rejected", step, str(exc)
    except MemoryError:
        return "memory", step, "MemoryError"
    except RecursionError as exc:
        return "internal", step, f"RecursionError: {exc}"
    except Exception as exc:  # exactly what the fuzzer is looking for
        tb = traceback.extract_tb(exc.__traceback__)
        where = next(
            (
                f"{Path(f.filename).name}:{f.lineno} {f.name}"
                for f in reversed(tb)
                if "autotune" in f.filename
            ),
            "?",
        )
        return "internal", step, f"{type(exc).__name__}: {str(exc)[:200]} at {where}"


class CpuTimeUp(BaseException):
    """Raised in the child when a mutant has used its CPU seconds (outside `except Exception`)."""


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(conn: Connection, memory_mb: int, timeout: float) -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import signal
    import warnings

    import numpy as np

    def time_up(_signum: int, _frame: Any) -> None:
        raise CpuTimeUp

    signal.signal(signal.SIGPROF, time_up)
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    from autotune.platform import plugins

    plugins.get_target("cortex-m4")  # load the plugins once
    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        raw, name, seed = job
        start = _cpu_seconds()
        # The limit is CPU time (ITIMER_PROF), so that a loaded machine does not turn a
        # slow mutant into a "hang"; the parent still kills a child that stops answering.
        signal.setitimer(signal.ITIMER_PROF, timeout)
        try:
            outcome = run_steps(raw, name, seed)
        except CpuTimeUp:
            outcome = ("hang", "", f"over {timeout:g} s of CPU time")
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send((*outcome, _cpu_seconds() - start, rss_mb))


class Worker:
    """A long-lived child with an address-space limit; replaced after a hang or a crash."""

    def __init__(self, memory_mb: int, timeout: float) -> None:
        self.memory_mb = memory_mb
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_child, args=(child, memory_mb, timeout), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(600):  # importing autotune on a loaded machine
            raise RuntimeError("fuzz worker did not start")
        self.conn.recv()

    def send(self, raw: bytes, name: str, seed: int) -> None:
        self.conn.send((raw, name, seed))

    def result(self, timeout: float) -> tuple[Any, ...]:
        wall = max(30 * timeout, 300.0)  # CPU time is the limit; this catches a stuck child
        if not self.conn.poll(wall):
            return ("hang", "", f"no answer after {wall:g} s of wall time", timeout, 0.0)
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(5)
            return ("crash", "", f"child exited with {self.proc.exitcode}", 0.0, 0.0)

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)


def load_seeds(folder: Path, names: list[str], example: bool = False) -> list[Seed]:
    """The shared models named, plus (with `example`) the bundled quick-start model."""
    from autotune.examples import quickstart_model
    from autotune.model.schema import fb

    blobs = []
    for name in names:
        path = folder / name
        if not path.exists():
            raise SystemExit(f"fuzz_import: {path} not found (set --models-dir or AUTOTUNE_MODELS)")
        blobs.append((name, path.read_bytes()))
    if example:
        blobs.append(("quickstart.tflite", quickstart_model(7)))
    return [Seed(name, raw, fb.ModelT.InitFromPackedBuf(raw, 0)) for name, raw in blobs]


def fuzz(
    seeds: list[Seed],
    mutants: int,
    seed: int,
    timeout: float,
    memory_mb: int,
    progress_every: int = 0,
    recycle: int = 2000,
    json_path: Path | None = None,
    first: int = 0,
) -> dict[str, Any]:
    """Run mutants `first` .. `first + mutants - 1`; with `json_path`, the counts so far are
    also written there at every progress line, so a long run stopped early still leaves
    its figures. The next mutant is made while the child runs the current one."""
    counts: Counter[str] = Counter()
    per_model: dict[str, Counter[str]] = {s.name: Counter() for s in seeds}
    rejections: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    slowest, max_rss = 0.0, 0.0
    start = time.monotonic()

    def summary(done: int) -> dict[str, Any]:
        elapsed = time.monotonic() - start
        return {
            "mutants": done,
            "requested": mutants,
            "first": first,
            "seed": seed,
            "models": [s.name for s in seeds],
            "timeout_s": timeout,
            "memory_limit_mb": memory_mb,
            "counts": {k: counts.get(k, 0) for k in ("ok", "rejected", "unpackable", *FAILURES)},
            "rejected_at": dict(sorted(rejections.items())),
            "per_model": {k: dict(v) for k, v in per_model.items()},
            "slowest_cpu_s": round(slowest, 3),
            "max_child_rss_mb": round(max_rss, 1),
            "seconds": round(elapsed, 1),
            "mutants_per_s": round(done / elapsed, 2) if elapsed else None,
            "failures": failures,
        }

    def make(n: int) -> tuple[Seed, bytes, str]:
        s = seeds[n % len(seeds)]
        return (s, *mutate(mutant_rng(seed, n), s))

    worker = Worker(memory_mb, timeout)
    done_in_worker = 0
    ahead = make(first) if mutants else None
    try:
        for i in range(mutants):
            n = first + i
            assert ahead is not None
            s, raw, what = ahead
            if raw:
                worker.send(raw, f"{s.name}#{n}", n)
            ahead = make(n + 1) if i + 1 < mutants else None
            if not raw:
                counts["unpackable"] += 1
                per_model[s.name]["unpackable"] += 1
            else:
                outcome, step, detail, seconds, rss = worker.result(timeout)
                done_in_worker += 1
                counts[outcome] += 1
                per_model[s.name][outcome] += 1
                slowest, max_rss = max(slowest, seconds), max(max_rss, rss)
                if outcome == "rejected":
                    rejections[step] += 1
                if outcome in FAILURES:
                    failures.append(
                        {
                            "mutant": n,
                            "model": s.name,
                            "mutation": what,
                            "outcome": outcome,
                            "step": step,
                            "detail": detail,
                        }
                    )
                if outcome in ("hang", "crash", "memory") or done_in_worker >= recycle:
                    worker.stop()
                    worker = Worker(memory_mb, timeout)
                    done_in_worker = 0
            if progress_every and (i + 1) % progress_every == 0:
                partial = summary(i + 1)
                print(
                    f"{n + 1 - first}/{mutants} mutants (from {first}), "
                    f"{partial['mutants_per_s']}/s: "
                    + ", ".join(f"{k} {v}" for k, v in partial["counts"].items()),
                    file=sys.stderr,
                    flush=True,
                )
                if json_path is not None:
                    json_path.write_text(json.dumps(partial, indent=2))
    finally:
        worker.stop()
    return summary(mutants)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mutants", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--first", type=int, default=0, help="number of the first mutant (to split a long run)"
    )
    ap.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS), metavar="NAME")
    ap.add_argument("--models-dir")
    ap.add_argument(
        "--example", action="store_true", help="also mutate the bundled quick-start model"
    )
    ap.add_argument("--timeout", type=float, default=10.0, help="CPU seconds per mutant")
    ap.add_argument("--memory-mb", type=int, default=2048, help="address-space limit of the child")
    ap.add_argument("--json", help="write the result as JSON here")
    ap.add_argument("--show", type=int, default=20, help="failures to print")
    ap.add_argument("--progress", type=int, default=500, help="print counts every N mutants")
    ap.add_argument(
        "--reproduce",
        type=int,
        metavar="N",
        help="write mutant N of this seed and model list to mutant-N.tflite and stop",
    )
    args = ap.parse_args(argv)
    seeds = load_seeds(models_dir(args.models_dir), args.models, args.example)
    if args.reproduce is not None:
        n = args.reproduce
        raw, what = mutate(mutant_rng(args.seed, n), seeds[n % len(seeds)])
        path = Path(f"mutant-{args.reproduce}.tflite")
        path.write_bytes(raw)
        print(f"wrote {path} ({seeds[args.reproduce % len(seeds)].name}: {what})")
        return 0
    json_path = Path(args.json) if args.json else None
    result = fuzz(
        seeds,
        args.mutants,
        args.seed,
        args.timeout,
        args.memory_mb,
        args.progress,
        json_path=json_path,
        first=args.first,
    )
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2))
    c = result["counts"]
    print(
        f"{result['mutants']} mutants of {len(seeds)} models (seed {args.seed}, from "
        f"{args.first}) in "
        f"{result['seconds']} s ({result['mutants_per_s']}/s): "
        + ", ".join(f"{k} {v}" for k, v in c.items())
    )
    print(
        f"slowest mutant {result['slowest_cpu_s']} CPU s; "
        f"largest child {result['max_child_rss_mb']} MB"
    )
    for f in result["failures"][: args.show]:
        print(
            f"  {f['outcome']} #{f['mutant']} {f['model']} [{f['mutation']}] {f['step']}: {f['detail']}"
        )
    return 1 if any(c[k] for k in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
