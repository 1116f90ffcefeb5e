"""Writes DIR/model/: the network as one C library with a single entry point.

    int NAME_invoke(const int8_t *input, int8_t *output);   (one argument per model input/output)
    void NAME_reset(void);                                   (state back to TFLM's reset values)

NAME (default: the model file's name) prefixes every external symbol, file name,
macro and header guard, so that any number of models link into one image.
Weights are const arrays (flash) inside each layer's source file, activations live
in one static arena laid out by the planner, and variable tensors (LSTM state)
live in their own static buffers so that they persist across invocations.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune import __version__
from autotune.emit import fuse, share
from autotune.emit import ops as _ops  # noqa: F401  (registers the op emitters)
from autotune.emit.layer_code import EMITTERS, LayerCode, c_type, layer_io
from autotune.emit.ops.shape import const_array
from autotune.emit.planner import Plan, check_plan, plan_memory
from autotune.errors import AutotuneError, UnsupportedOpError
from autotune.model.graph import Graph, Layer
from autotune.platform import plugins, toolchain
from autotune.platform.target import Target
from autotune.tune.spec import build_spec
from autotune.tune.template import INCLUDE_DIR, KernelTemplate

DEFAULT_NAME = "model"
_C_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Helpers that at_nn.h and the templates define only where the core has the Arm DSP
# extension (Armv7E-M, Armv8-M Mainline): a source using one outside its own
# `#if defined(AT_HAVE_DSP)` block needs that core.
_NEEDS_DSP = re.compile(
    r"\b(at_sxtb16|at_sxtb16_ror8|at_smlad|at_smlabb|at_smlatt|at_sat8|AT_LDRD"
    r"|AT_REQUANT_FUSED_SAT8|AT_LSTM_LDRD|AT_LSTM_REQUANT_SAT)\b|#ifndef AT_HAVE_DSP"
)
_DSP_BLOCK = re.compile(r"^#if defined\(AT_HAVE_DSP\)$")


def _outside_dsp_blocks(source: str) -> str:
    """The source without its `#if defined(AT_HAVE_DSP)` ... `#else`/`#endif` parts."""
    kept, depth, skipping = [], 0, 0
    for line in source.splitlines():
        stripped = line.strip()
        if skipping:
            if stripped.startswith("#if"):
                depth += 1
            elif stripped.startswith("#endif") or (stripped.startswith("#el") and depth == 0):
                if depth == 0:
                    skipping = 0
                    continue
                if stripped.startswith("#endif"):
                    depth -= 1
            continue
        if _DSP_BLOCK.match(stripped):
            skipping, depth = 1, 0
            continue
        kept.append(line)
    return "\n".join(kept)


def needs_dsp(source: str) -> bool:
    """Whether a generated source uses the DSP extension unconditionally."""
    return _NEEDS_DSP.search(_outside_dsp_blocks(source)) is not None


@dataclass
class Choice:
    """The tuned variant of one layer: a template and a point of its space."""

    template: str
    params: dict[str, Any]
    # May this layer run one function with the other layers of the same code (its
    # constants passed in)? Only where sharing was measured to cost at most 1%.
    share: bool = False

    @classmethod
    def from_trials(cls, picks: dict[int, Any], shared: set[int]) -> dict[int, Choice]:
        """Per layer, the library's choice of a tuning pick (a results-DB trial)."""
        return {
            i: cls(t.template, json.loads(t.params), share=i in shared) for i, t in picks.items()
        }


@dataclass
class Library:
    directory: Path
    sources: list[Path]
    header: Path
    plan: Plan
    codes: list[LayerCode]
    state_bytes: int
    input_tensors: list[int]
    output_tensors: list[int]
    notes: list[str] = field(default_factory=list)
    # Each source file's optimisation level: a tuned layer's file is compiled exactly
    # as its variant was measured. Every build of the library (the verification run,
    # emitted build files) reads it through opt_for() (compile_flags()).
    file_opt: dict[str, str] = field(default_factory=dict)
    name: str = DEFAULT_NAME
    headers: list[Path] = field(default_factory=list)

    def opt_for(self, source: Path | str) -> str:
        """The optimisation flag ``source`` (a file of this library) is compiled with."""
        return self.file_opt.get(Path(source).name, toolchain.DEFAULT_OPT)

    @property
    def entry_point(self) -> str:
        return f"{self.name}_invoke"

    @property
    def reset_function(self) -> str:
        return f"{self.name}_reset"


def c_name(name: str, what: str = "--name") -> str:
    """NAME checked as a C identifier prefix (bad input, exit 2, when it is not one)."""
    if not _C_NAME.match(name):
        raise AutotuneError(f"{what} {name!r} is not a C identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return name


def default_name(model_path: str | None) -> str:
    """The model file's name made a C identifier: kws_ref_model.tflite -> kws_ref_model."""
    stem = Path(model_path or "").name.split(".")[0]
    name = re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_").lower()
    if not name:
        return DEFAULT_NAME
    return f"m_{name}" if name[0].isdigit() else name


def compile_flags(library: Library, target: Target) -> dict[Path, tuple[str, ...]]:
    """Each source's exact compile flags: the target's and each file's own optimisation
    level (Library.opt_for). The verification build compiles with these
    (toolchain.build_flags with opt_for) and every emitted build file (CMake, Make,
    Zephyr) carries them, so what ships is compiled as what was verified."""
    return {src: toolchain.build_flags(target, library.opt_for(src)) for src in library.sources}


def layer_function(layer: Layer, name: str = DEFAULT_NAME) -> str:
    return f"{name}_layer{layer.index:02d}_{layer.op.lower()}"


def layer_file(index: int, op: str, name: str = DEFAULT_NAME) -> str:
    """The name of a layer's source file in the library folder."""
    return f"{name}_layer{index:02d}_{op.lower()}.c"


def _template(name: str) -> KernelTemplate:
    return plugins.get_kernel(name)


def layer_code(
    graph: Graph,
    layer: Layer,
    target: Target,
    choice: Choice | None,
    name: str = DEFAULT_NAME,
    render: bool = True,
) -> LayerCode:
    """The C for one layer: its tuned variant, else a template's baseline, else the op emitter.

    render=False: a template's layer without its source (what the memory planner reads:
    tensors, scratch, in-place step), for estimates that need no C."""
    fn = layer_function(layer, name)
    spec = build_spec(graph, layer)
    if spec is not None:
        if choice is not None:
            template, params = _template(choice.template), choice.params
        else:
            template = next(
                (
                    t
                    for t in plugins.get_kernels().values()
                    if getattr(t, "op", None) == layer.op and t.applies(spec, target)
                ),
                None,
            )
            params = template.space(spec, target).baseline() if template else {}
        if template is not None:
            if render:
                rendered = template.render(spec, target, params, fn)
                source, scratch, in_place, shift = (
                    rendered.source,
                    rendered.scratch_bytes,
                    rendered.in_place,
                    rendered.in_place_shift,
                )
            else:
                source = ""
                scratch = template.scratch_bytes(spec, target, params)
                in_place = template.in_place(spec, target, params)
                shift = template.in_place_shift(spec, target, params) if in_place else 0
            inputs, outputs, state = layer_io(graph, layer)
            return LayerCode(
                function=fn,
                source=source,
                inputs=inputs,
                outputs=outputs,
                state=state,
                scratch_bytes=scratch,
                inplace=[(i, outputs[0]) for i in inputs] if in_place else [],
                inplace_step=max(1, in_place),
                inplace_shift=shift if in_place else None,
                description=f"{template.name}: " + ", ".join(f"{k}={v}" for k, v in params.items()),
                headers=template.headers(),
                opt=str(params.get("opt", toolchain.DEFAULT_OPT)),
            )
    emitter = EMITTERS.get(layer.op)
    if emitter is None:
        raise UnsupportedOpError(graph.path, layer.op, layer.index, "no C implementation")
    return emitter(graph, layer, fn)


def planned_bytes(graph: Graph, target: Target, choices: dict[int, Choice]) -> tuple[int, int]:
    """(arena, state) the memory planner lays out for the library of these choices,
    without rendering its C."""
    codes = library_codes(graph, target, choices, render=False)
    state = {t for code in codes for t in code.state}
    return plan_memory(graph, codes).arena_bytes, sum(graph.tensors[t].nbytes for t in state)


def library_codes(
    graph: Graph,
    target: Target,
    choices: dict[int, Choice],
    name: str = DEFAULT_NAME,
    render: bool = True,
) -> list[LayerCode]:
    """Every layer's code: layer_code, except the residual blocks whose ADD's choice is
    fuse.FUSED (the block's three layers from fuse.fused_codes)."""
    codes: dict[int, LayerCode] = {}
    fused = [i for i, c in choices.items() if c.template == fuse.FUSED]
    blocks = {b.add: b for b in fuse.residual_blocks(graph)} if fused else {}
    for index in fused:
        block = blocks.get(index)
        if block is None:
            layer = graph.layers[index]
            raise AutotuneError(
                f"layer {index} ({layer.op}) does not end a residual block that can run row by row"
            )
        members = (block.first, block.second, block.add)
        fa, fb, fc = (layer_function(graph.layers[i], name) for i in members)
        parts = fuse.fused_codes(
            graph, block, target, (fa, fb, fc), _preferred(choices, block), render
        )
        codes.update(zip(members, parts, strict=True))
    return [
        codes.get(layer.index)
        or layer_code(graph, layer, target, choices.get(layer.index), name, render)
        for layer in graph.layers
    ]


def _preferred(choices: dict[int, Choice], block: fuse.ResidualBlock) -> dict[int, tuple]:
    """The fused block's convolutions' own choices: their variants where they apply."""
    return {
        i: (choices[i].template, choices[i].params)
        for i in (block.first, block.second)
        if i in choices and choices[i].template != fuse.FUSED
    }


def baseline_choices(graph: Graph, target: Target) -> dict[int, Choice]:
    """Every tunable layer at its baseline (the reference-style loop): the whole-model
    baseline that tuned libraries are compared with."""
    choices: dict[int, Choice] = {}
    for layer in graph.layers:
        spec = build_spec(graph, layer)
        if spec is None:
            continue
        template = next(
            (
                t
                for t in plugins.get_kernels().values()
                if getattr(t, "op", None) == layer.op and t.applies(spec, target)
            ),
            None,
        )
        if template is not None:
            choices[layer.index] = Choice(template.name, template.space(spec, target).baseline())
    return choices


def quick_choices(graph: Graph, target: Target) -> dict[int, Choice]:
    """Untuned but fast variants: each tunable layer's first valid suggested point.

    For checking emission and whole-model runs without a search (tests, smoke runs);
    `autotune MODEL --target T` uses what the search found instead."""
    choices: dict[int, Choice] = {}
    for layer in graph.layers:
        spec = build_spec(graph, layer)
        if spec is None:
            continue
        for template in plugins.get_kernels().values():
            if getattr(template, "op", None) != layer.op or not template.applies(spec, target):
                continue
            space = template.space(spec, target)
            suggested = getattr(template, "suggestions", lambda *_: [])(spec, target)
            point = next((p for p in suggested if space.check(p) is None), None)
            if point is not None:
                choices[layer.index] = Choice(template.name, point)
                break
    return choices


def small_choices(graph: Graph, target: Target) -> dict[int, Choice]:
    """Untuned variants that need the least arena: per tunable layer, of its templates'
    suggested points and baselines, one that computes in place with the least scratch,
    else the one with the least scratch (the first of equals).

    What the planner can reach without a search (arena figures against tflite-micro,
    tests); a tuned run gets there through --ram-budget, which weighs the cycles."""
    choices: dict[int, Choice] = {}
    for layer in graph.layers:
        spec = build_spec(graph, layer)
        if spec is None:
            continue
        best: tuple[tuple[bool, int], Choice] | None = None
        for template in plugins.get_kernels().values():
            if getattr(template, "op", None) != layer.op or not template.applies(spec, target):
                continue
            space = template.space(spec, target)
            suggested = getattr(template, "suggestions", lambda *_: [])(spec, target)
            for point in [*suggested, space.baseline()]:
                if space.check(point) is not None:
                    continue
                inplace = bool(template.in_place(spec, target, point))
                key = (not inplace, template.scratch_bytes(spec, target, point))
                if best is None or key < best[0]:  # the first of equals
                    best = (key, Choice(template.name, point))
        if best is not None:
            choices[layer.index] = best[1]
    # Residual blocks row by row, where that needs less than the two tensors it drops.
    for block in fuse.residual_blocks(graph):
        try:
            codes = fuse.fused_codes(
                graph, block, target, ("a", "b", "c"), _preferred(choices, block), False
            )
        except fuse.NotFusable:
            continue
        dropped = graph.tensors[block.t1].nbytes + graph.tensors[block.t2].nbytes
        if codes[2].scratch_bytes < dropped:
            choices[block.add] = Choice(fuse.FUSED, {})
    return choices


def _pointer(plan: Plan, graph: Graph, t: int, const: bool) -> str:
    kind = plan.external.get(t)
    ctype = c_type(graph.tensors[t].dtype)
    if kind is not None:
        name = f"{kind[0]}{kind[1]}" if len(graph.inputs) + len(graph.outputs) > 2 else kind[0]
        if kind[0] == "input" and not const:
            return f"({ctype} *){name}"
        return name
    qual = "const " if const else ""
    return f"({qual}{ctype} *)(arena + {plan.offsets[t]})"


def emit_library(
    graph: Graph,
    target: Target,
    out_dir: Path,
    choices: dict[int, Choice] | None = None,
    name: str | None = None,
) -> Library:
    """Write the library's sources into out_dir: one copy of each, nothing else."""
    name = c_name(name) if name is not None else default_name(graph.path)
    choices = choices or {}
    model_dir = Path(out_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    codes = library_codes(graph, target, choices, name)
    plan = plan_memory(graph, codes)
    problems = check_plan(plan)
    if problems:
        raise RuntimeError(f"memory plan is inconsistent: {problems}")
    codes, extra, decls = _share(graph, codes, choices, name)

    sources: list[Path] = []
    file_opt: dict[str, str] = {}
    for layer, code in zip(graph.layers, codes, strict=True):
        if code.alias:
            continue
        path = model_dir / layer_file(layer.index, layer.op, name)
        path.write_text(_layer_source(code.source, name, path.name, target))
        sources.append(path)
        file_opt[path.name] = code.opt
    for stale in [*model_dir.glob(f"{name}_shared*.c"), *model_dir.glob(f"{name}_constants.c")]:
        stale.unlink()  # from an earlier emission into the same folder
    for filename, text, opt in extra:
        path = model_dir / filename
        path.write_text(_layer_source(text, name, filename, target))
        sources.append(path)
        file_opt[filename] = opt

    # State tensors: one static buffer each, reset to TFLM's values.
    state = sorted({t for code in codes for t in code.state})
    state_bytes = sum(graph.tensors[t].nbytes for t in state)

    header = model_dir / f"{name}.h"
    header.write_text(_header(graph, plan, state_bytes, codes, name, decls))
    main = model_dir / f"{name}.c"
    main.write_text(_main_source(graph, target, codes, plan, state, name))
    sources.append(main)
    available = {h.name: h for h in INCLUDE_DIR.glob("*.h")}  # at_nn.h, at_fixedpoint.h, ...
    available |= {h.name: h for code in codes for h in code.headers}  # a plugin template's own
    helpers = _copy_helpers([p.read_text() for p in sources], available, model_dir)
    library = Library(
        model_dir,
        sources,
        header,
        plan,
        codes,
        state_bytes,
        list(graph.inputs),
        list(graph.outputs),
        plan.notes,
        file_opt,
        name=name,
        headers=[header, *helpers],
    )
    return library


def _share(
    graph: Graph, codes: list[LayerCode], choices: dict[int, Choice], name: str
) -> tuple[list[LayerCode], list[tuple[str, str, str]], list[str]]:
    """Layers allowed to share (Choice.share) whose code is the same run one function;
    constant arrays with the same values in several layers are stored once. Returns
    the layers' code, the extra files (name, text, optimisation level) and what the
    header must declare for them."""
    codes = list(codes)
    groups: dict[str, list[int]] = {}
    for i, (layer, code) in enumerate(zip(graph.layers, codes, strict=True)):
        choice = choices.get(layer.index)
        if choice is not None and choice.share and not code.alias:
            groups.setdefault(share.normalized(code.source, code.function), []).append(i)
    extra: list[tuple[str, str, str]] = []
    decls: list[str] = []
    for members in groups.values():
        if len(members) < 2:
            continue
        first = codes[members[0]]
        fn = f"{name}_shared{len(extra)}"
        which = ", ".join(str(graph.layers[i].index) for i in members)
        comment = (
            f"Generated by autotune {__version__}: the code of layers {which} "
            f"({graph.layers[members[0]].op}), one function; each layer passes its own "
            f"constants.\n * {first.description}"
        )
        shared = share.shared_function(first.source, first.function, fn, comment)
        if shared is None:
            continue
        for i in members:
            code = codes[i]
            codes[i] = dataclasses.replace(
                code,
                source=shared.stub(code.source, code.function),
                description=f"{code.description} (runs {fn})",
            )
        extra.append((f"{fn}.c", shared.source, first.opt))
        decls.append(shared.decls)
    live = [i for i, code in enumerate(codes) if not code.alias]
    texts, consts = share.dedupe_arrays([codes[i].source for i in live], name)
    for i, text in zip(live, texts, strict=True):
        codes[i] = dataclasses.replace(codes[i], source=text)
    if consts.definitions:
        text = "\n".join(
            [
                f"/* {name}_constants.c - generated by autotune {__version__}: constants that "
                "several layers read, stored once. */",
                "#include <stdint.h>",
                "",
                *(d + "\n" for d in consts.definitions),
            ]
        )
        extra.append((f"{name}_constants.c", text, toolchain.DEFAULT_OPT))
        decls.append("\n".join(consts.declarations) + "\n")
    return codes, extra, decls


_INCLUDE = re.compile(r'^#include "([^"]+)"', re.MULTILINE)


def _copy_helpers(texts: list[str], available: dict[str, Path], model_dir: Path) -> list[Path]:
    """Copy the helper headers (at_nn.h, ...) that the sources include, and no others."""
    wanted: list[str] = []
    todo = [m for text in texts for m in _INCLUDE.findall(text)]
    while todo:
        header = todo.pop()
        path = available.get(header)
        if header in wanted or path is None:
            continue
        wanted.append(header)
        todo += _INCLUDE.findall(path.read_text())
    for stale in model_dir.glob("at_*.h"):  # from an earlier emission into the same folder
        if stale.name not in wanted:
            stale.unlink()
    copied = []
    for header in sorted(wanted):
        shutil.copy(available[header], model_dir / header)
        copied.append(model_dir / header)
    return copied


def _layer_source(source: str, name: str, filename: str, target: Target) -> str:
    """A layer's source with its prototype's header included and, where it uses the DSP
    extension, one #error for a core without it (instead of a cascade of implicit
    declarations)."""
    anchor = "#include <stdint.h>\n"
    at = source.find(anchor)
    if at < 0:  # a plugin template that includes it elsewhere, or not at all
        source, at = anchor + source, 0
    at += len(anchor)
    head, body = source[:at], source[at:]
    head += f'#include "{name}.h"\n'
    if needs_dsp(body):
        head += (
            "\n#if !(defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP)\n"
            f'#error "{filename} needs the Arm DSP extension (__ARM_FEATURE_DSP): '
            f'compile it for {target.name} or another core that has it"\n'
            "#else\n"
        )
        body = body.rstrip("\n") + "\n\n#endif /* __ARM_FEATURE_DSP */\n"
    return head + body


def _io_params(graph: Graph) -> tuple[list[str], list[str]]:
    many = len(graph.inputs) + len(graph.outputs) > 2
    ins = [
        f"const {c_type(graph.tensors[t].dtype)} *{'input' + str(i) if many else 'input'}"
        for i, t in enumerate(graph.inputs)
    ]
    outs = [
        f"{c_type(graph.tensors[t].dtype)} *{'output' + str(i) if many else 'output'}"
        for i, t in enumerate(graph.outputs)
    ]
    return ins, outs


def _layer_prototype(graph: Graph, code: LayerCode) -> str:
    params = [f"const {c_type(graph.tensors[t].dtype)} *" for t in code.inputs]
    params += [f"{c_type(graph.tensors[t].dtype)} *" for t in (*code.outputs, *code.state)]
    params.append("void *")
    return f"void {code.function}({', '.join(params)});"


def _header(
    graph: Graph,
    plan: Plan,
    state_bytes: int,
    codes: list[LayerCode],
    name: str,
    decls: list[str] | None = None,
) -> str:
    ins, outs = _io_params(graph)
    up = name.upper()
    lines = [
        f"/* {name}.h - generated by autotune {__version__} from {Path(graph.path).name or 'a model'}.",
        " *",
        " * Bit-exact with TFLM's int8 kernels. Pass buffers of exactly the sizes below;",
        f" * the library keeps its activations in one static arena of {up}_ARENA_BYTES.",
        " */",
        f"#ifndef {up}_H",
        f"#define {up}_H",
        "",
        "#include <stdint.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        f"#define {up}_ARENA_BYTES {plan.arena_bytes}",
        f"#define {up}_STATE_BYTES {state_bytes}",
    ]
    for kind, tensors in (("INPUT", graph.inputs), ("OUTPUT", graph.outputs)):
        for i, t in enumerate(tensors):
            tensor = graph.tensors[t]
            suffix = str(i) if len(tensors) > 1 else ""
            lines.append(
                f"#define {up}_{kind}{suffix}_SIZE {tensor.size}  /* {'x'.join(map(str, tensor.shape))} {tensor.dtype} */"
            )
            if tensor.quant is not None:
                lines.append(f"#define {up}_{kind}{suffix}_SCALE {float(tensor.quant.scale[0])!r}f")
                lines.append(
                    f"#define {up}_{kind}{suffix}_ZERO_POINT ({int(tensor.quant.zero_point[0])})"
                )
    lines += [
        "",
        "/* Runs the network once; returns 0. Not reentrant (one static arena). */",
        f"int {name}_invoke({', '.join(ins + outs)});",
        "",
        "/* Puts persistent state (LSTM hidden and cell state) back to its initial values. */",
        f"void {name}_reset(void);",
        "",
        f"/* The layers, in the order {name}_invoke() calls them (not for direct use). */",
        *(_layer_prototype(graph, code) for code in codes if not code.alias),
        "",
        *(["/* Shared by several layers (not for direct use). */", *decls] if decls else []),
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
        f"#endif /* {up}_H */",
        "",
    ]
    return "\n".join(lines)


def _state_initial(graph: Graph, t: int) -> int:
    tensor = graph.tensors[t]
    return tensor.zero_point if tensor.dtype == "int8" else 0


def _main_source(
    graph: Graph, target: Target, codes: list[LayerCode], plan: Plan, state: list[int], name: str
) -> str:
    ins, outs = _io_params(graph)
    lines = [
        f"/* {name}.c - generated by autotune {__version__} for {target.name}: the network, layer by layer. */",
        "#include <stdint.h>",
        "",
        f'#include "{name}.h"',
        "",
        # unused: a network whose every tensor is the caller's never touches the arena.
        f"static uint8_t arena[{max(plan.arena_bytes, 16)}] __attribute__((aligned(16), unused));",
    ]
    for t in state:
        tensor = graph.tensors[t]
        lines.append(
            f"static {c_type(tensor.dtype)} state{t}[{tensor.size}] __attribute__((aligned(16)));"
            f"  /* {tensor.name} */"
        )
        initial = graph.resources.get(t)
        if initial is not None:
            lines.append(const_array(tensor.dtype, f"init{t}", initial))
    lines += ["", f"void {name}_reset(void)", "{"]
    for t in state:
        tensor = graph.tensors[t]
        lines.append(f"    for (int32_t i = 0; i < {tensor.size}; ++i) {{")
        lines.append(f"        state{t}[i] = ({c_type(tensor.dtype)})({_state_initial(graph, t)});")
        lines.append("    }")
    if not state:
        lines.append("    /* This network keeps no state between invocations. */")
    lines += ["}", "", f"int {name}_invoke({', '.join(ins + outs)})", "{"]
    lines.append("    static int ready;")
    lines.append("    if (!ready) {")
    lines.append(f"        {name}_reset();")
    for t in state:  # what CALL_ONCE's init subgraph assigns, on the first call only
        if graph.resources.get(t) is not None:
            lines.append(f"        __builtin_memcpy(state{t}, init{t}, {graph.tensors[t].nbytes});")
    lines.append("        ready = 1;")
    lines.append("    }")
    for layer, code in zip(graph.layers, codes, strict=True):
        lines.append(f"    /* {layer.index}: {layer.op} {code.description} */".rstrip())
        if code.part_of is not None:
            continue
        if code.alias:
            src, dst = code.inputs[0], code.outputs[0]
            if plan.home.get(src) != plan.home.get(dst):
                nbytes = graph.tensors[dst].nbytes
                lines.append(
                    f"    __builtin_memcpy({_pointer(plan, graph, dst, False)}, {_pointer(plan, graph, src, True)}, {nbytes});"
                )
            continue
        args = [_pointer(plan, graph, t, True) for t in code.inputs]
        args += [_pointer(plan, graph, t, False) for t in code.outputs]
        args += [f"state{t}" for t in code.state]
        args.append(
            f"arena + {plan.scratch[layer.index]}" if layer.index in plan.scratch else "(void *)0"
        )
        lines.append(f"    {code.function}({', '.join(args)});")
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines)


def quantization_constants(graph: Graph) -> dict[str, Any]:
    """Input and output scales and zero points (for reports)."""
    out: dict[str, Any] = {}
    for kind, tensors in (("inputs", graph.inputs), ("outputs", graph.outputs)):
        out[kind] = [
            {
                "shape": list(graph.tensors[t].shape),
                "dtype": graph.tensors[t].dtype,
                "scale": float(graph.tensors[t].quant.scale[0]) if graph.tensors[t].quant else None,
                "zero_point": int(graph.tensors[t].quant.zero_point[0])
                if graph.tensors[t].quant
                else None,
            }
            for t in tensors
        ]
    return out
