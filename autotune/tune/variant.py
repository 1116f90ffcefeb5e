"""One variant, end to end: render -> compile -> run on every check input -> verify -> metrics.

Every failure is typed (constraint, compile, fault, timeout, mismatch) with a
one-line reason; a variant whose output differs from the reference in a single
element is a failed trial, never a result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autotune.errors import AutotuneError
from autotune.model.arrays import check_calls
from autotune.model.extract import external_inputs, layers_model
from autotune.model.graph import Graph
from autotune.model.tflite_import import parse_model
from autotune.platform import toolchain
from autotune.platform.elf import read_elf, read_stack_usage
from autotune.platform.harness import ENTRY_SYMBOL, harness_dir
from autotune.platform.runner import Runner, RunResult
from autotune.platform.target import Target
from autotune.reference.executor import Interpreter, unsupported_layers
from autotune.tune.space import Point
from autotune.tune.spec import KernelSpec
from autotune.tune.template import KernelTemplate, Rendered

FUNCTION = "at_layer"
INSTRUCTION_BUDGET = 200_000_000
# A rendered source and its function's name -> the files to compile instead, or None.
Split = Callable[[str, str], "list[tuple[str, str]] | None"]


def model_activations(graph: Graph, seed: int = 0) -> dict[int, np.ndarray] | None:
    """Every tensor's value when the reference runs the whole model on its measured check
    input (the input of the library's headline run); None where the reference cannot run
    the whole model."""
    if unsupported_layers(graph):
        return None
    try:
        values = Interpreter(graph).invoke(check_calls(graph, seed, 1)[0], keep=True)
    except AutotuneError:
        return None
    assert isinstance(values, dict)
    return values


@dataclass
class CheckSet:
    """The inputs every variant of a layer must get right, and the reference's answers.

    The first input is the one the variant is measured on."""

    inputs: list[list[np.ndarray]]
    expected: list[np.ndarray]

    @classmethod
    def for_layer(
        cls,
        graph: Graph,
        layer_index: int,
        seed: int = 0,
        activations: dict[int, np.ndarray] | None = None,
        from_model: Callable[[bytes, int], CheckSet] | None = None,
    ) -> CheckSet:
        """The layer's input in the whole model first (measured: a kernel whose time depends
        on its data is timed on what it sees in the library), then `for_model`'s seeded
        random, all -128 and all 127 inputs, through the reference.

        ``activations`` is ``model_activations(graph, seed)`` when the caller has it;
        ``from_model`` stands for `for_model` (the fuzzer caches it by the layer's bytes)."""
        blob = layers_model(graph, layer_index)
        checks = (from_model or cls.for_model)(blob, seed)
        if activations is None:
            activations = model_activations(graph, seed)
        if activations is None:
            return checks
        reads = external_inputs(graph, layer_index)
        seen = [
            activations[i].astype(x.dtype) for i, x in zip(reads, checks.inputs[0], strict=True)
        ]
        model = parse_model(blob)
        out = Interpreter(model).invoke(seen)
        assert isinstance(out, list)
        # A layer reading only the model's inputs: its whole-model input is random already.
        drop = 1 if set(reads) <= set(graph.inputs) else 0
        return cls([seen, *checks.inputs[drop:]], [out[0], *checks.expected[drop:]])

    @classmethod
    def for_model(cls, layer_model: bytes, seed: int = 0) -> CheckSet:
        """`for_layer` from the layer's own model (`layers_model`): a function of these
        bytes and the seed alone, so a caller may cache it by them."""
        model = parse_model(layer_model)
        rng = np.random.default_rng(seed)
        shapes = [(t.shape, t.dtype) for t in model.input_tensors]
        sets = [
            [rng.integers(-128, 128, s, dtype=np.int64).astype(dt) for s, dt in shapes],
            [np.full(s, -128, dtype=dt) for s, dt in shapes],
            [np.full(s, 127, dtype=dt) for s, dt in shapes],
        ]
        interp = Interpreter(model)
        expected = []
        for inputs in sets:
            interp.reset()
            out = interp.invoke(inputs)
            assert isinstance(out, list)
            expected.append(out[0])
        return cls(sets, expected)


@dataclass
class Measurement:
    status: str  # ok, constraint, compile, fault, timeout, mismatch
    reason: str = ""
    cycles: int | None = None
    instructions: int | None = None
    code_bytes: int | None = None
    rodata_bytes: int | None = None
    stack_bytes: int | None = None
    seconds: float = 0.0
    metric_label: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def harness_main(spec: KernelSpec, rendered: Rendered) -> str:
    """The measured program's entry: buffers by name, one call of the kernel."""
    lines = [
        "/* Measurement harness generated by autotune: one call of the layer's kernel. */",
        "#include <stdint.h>",
        "",
        '#include "autotune_harness.h"',
        "",
    ]
    args = []
    params = []
    shift = inplace_input(spec, rendered)
    for i, size in enumerate(spec.input_sizes):
        inside = shift is not None and i == 0  # an in-place variant's first input: in at_out
        if not inside:
            lines.append(f"AUTOTUNE_BUFFER(int8_t, at_in{i}, {size});")
        args.append(f"at_out + {shift}" if inside else f"at_in{i}")
        params.append("const int8_t *")
    out_size = spec.output_size
    if shift is not None:
        out_size = max(out_size, shift + spec.input_sizes[0])
    lines.append(f"AUTOTUNE_BUFFER(int8_t, at_out, {out_size});")
    lines.append(f"AUTOTUNE_BUFFER(uint8_t, at_scratch, {max(4, rendered.scratch_bytes)});")
    state_args, state_params = [], []
    for k, (dtype, count, reset) in enumerate(spec.state):
        ctype = {"int8": "int8_t", "int16": "int16_t", "int32": "int32_t"}[dtype]
        # Fresh state for every run: the ELF is loaded anew, with TFLM's reset values.
        init = ", ".join([str(reset)] * count)
        lines.append(f"static {ctype} at_state{k}[{count}] = {{{init}}};")
        state_args.append(f"at_state{k}")
        state_params.append(f"{ctype} *")
    proto = ", ".join([*params, "int8_t *", *state_params, "void *"])
    lines += [
        "",
        f"void {rendered.function}({proto});",
        "",
        "void autotune_main(void)",
        "{",
        f"    {rendered.function}({', '.join([*args, 'at_out', *state_args, 'at_scratch'])});",
        "}",
        "",
    ]
    return "\n".join(lines)


def inplace_input(spec: KernelSpec, rendered: Rendered) -> int | None:
    """Where an in-place variant's (first) input sits in its output buffer (it is measured
    and checked over it, as the library's plan places it), or None."""
    if not rendered.in_place:
        return None
    return rendered.in_place_shift


def harness_feed(
    spec: KernelSpec, rendered: Rendered, inputs: list[np.ndarray]
) -> dict[str, bytes]:
    """The input buffers' contents by symbol (an in-place variant's input inside at_out)."""
    data = [np.ascontiguousarray(x).tobytes() for x in inputs]
    shift = inplace_input(spec, rendered)
    feed = {f"at_in{i}": b for i, b in enumerate(data)}
    if shift is not None:
        del feed["at_in0"]
        feed["at_out"] = bytes(shift) + data[0]
    return feed


def kernel_figures(run: RunResult) -> tuple[int | None, int | None]:
    """(instructions, cycles) of a measured run less the harness's entry (autotune_main:
    a few instructions and, behind a cache, its own line fills): the kernel and what it
    calls, as a layer is counted inside the library. The whole run where the runner does
    not profile functions."""
    glue = (run.extra.get("functions") or {}).get(ENTRY_SYMBOL)
    if glue is None or run.instructions is None or run.cycles is None:
        return run.instructions, run.cycles
    return run.instructions - glue[0], run.cycles - glue[1]


class Evaluator:
    """Measures points of templates for one layer on one target."""

    def __init__(
        self, spec: KernelSpec, target: Target, checks: CheckSet, work_dir: Path, runner: Runner
    ) -> None:
        self.spec = spec
        self.target = target
        self.checks = checks
        self.work_dir = Path(work_dir)
        self.runner = runner
        # A runner that executes nothing: variants are ranked by code size, unverified.
        self.executes = runner.capabilities.executes
        self.profiles = runner.capabilities.profiles_functions
        self._count = 0

    def evaluate(
        self, template: KernelTemplate, params: Point, split: Split | None = None
    ) -> Measurement:
        """Measure one point; ``split`` turns the rendered source into the files that are
        compiled instead (the shared form of a layer: its function and its constants)."""
        start = time.perf_counter()
        m = self._evaluate(template, params, split)
        m.seconds = time.perf_counter() - start
        return m

    def _evaluate(
        self, template: KernelTemplate, params: Point, split: Split | None = None
    ) -> Measurement:
        reason = template.space(self.spec, self.target).check(params)
        if reason:
            return Measurement("constraint", reason)
        rendered = template.render(self.spec, self.target, params, FUNCTION)
        files = [("kernel.c", rendered.source)]
        if split is not None:
            parts = split(rendered.source, FUNCTION)
            if parts is None:
                return Measurement("constraint", "its code cannot take its constants as arguments")
            files = parts
        self._count += 1
        build = self.work_dir / f"v{self._count:04d}"
        build.mkdir(parents=True, exist_ok=True)
        kernels = []
        for filename, text in files:
            kernels.append(build / filename)
            kernels[-1].write_text(text)
        main_c = build / "main.c"
        main_c.write_text(harness_main(self.spec, rendered))
        opt = str(params.get("opt", toolchain.DEFAULT_OPT))
        try:
            result = toolchain.build_elf(
                self.target,
                [*kernels, main_c],
                build,
                opt=opt,
                include_dirs=[*template.include_dirs(), harness_dir()],
            )
        except toolchain.CompileError as exc:
            return Measurement("compile", exc.first_error)
        image = read_elf(result.elf)
        code = sum(s.size for s in image.symbol_sizes("code") if s.name == FUNCTION)
        kernel_objs = [read_elf(o) for o in result.objects[: len(kernels)]]
        rodata = sum(o.sizes.rodata for o in kernel_objs)
        code_total = sum(o.sizes.code for o in kernel_objs)
        stack = read_stack_usage([p for p in result.stack_usage if "kernel" in p.name])
        m = Measurement("ok", code_bytes=code_total or code, rodata_bytes=rodata)
        frame = stack.frames.get(FUNCTION)
        m.stack_bytes = frame.bytes if frame is not None else None
        if not self.executes:
            m.metric_label = self.runner.metric_label(self.target)
            return m
        for n, (inputs, want) in enumerate(
            zip(self.checks.inputs, self.checks.expected, strict=True)
        ):
            feed = harness_feed(self.spec, rendered, inputs)
            # The measured run is profiled, so that the harness's entry is left out.
            profile = {"profile": True} if n == 0 and self.profiles else {}
            try:
                run = self.runner.run(
                    result.elf,
                    self.target,
                    inputs=feed,
                    outputs={"at_out": self.spec.output_size},
                    budget=INSTRUCTION_BUDGET,
                    **profile,
                )
            except AutotuneError as exc:
                kind = "timeout" if "timeout" in type(exc).__name__.lower() else "fault"
                return Measurement(kind, f"check input {n}: {exc}")
            got = np.frombuffer(run.outputs["at_out"], dtype=np.int8).reshape(want.shape)
            if not np.array_equal(got, want):
                diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
                return Measurement(
                    "mismatch",
                    f"check input {n}: {int((diff > 0).sum())} of {diff.size} outputs differ "
                    f"(max {int(diff.max())} LSB)",
                )
            if n == 0:
                m.instructions, m.cycles = kernel_figures(run)
                m.metric_label = run.cycles_label
        return m
