"""C for SOFTMAX, LOGISTIC and TANH, bit-exact with autotune.reference.ops.activations.

int8 LOGISTIC and TANH are a pure function of one int8 value, so the reference
itself evaluates all 256 inputs at generation time and the C is one table lookup
per element. int16 LOGISTIC and TANH interpolate TFLite's sigmoid table in C
(at_fixedpoint.h) after the input rescaling the reference derives. SOFTMAX runs
gemmlowp's exp and reciprocal in C (the row maximum is only known at run time),
with the multiplier, shift and diff_min from the reference's softmax_params.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autotune import __version__
from autotune.codegen import c_array, environment
from autotune.emit.layer_code import LayerCode, c_type, layer_io, op_emitter
from autotune.errors import UnsupportedOpError
from autotune.model.graph import Graph, Layer, Tensor
from autotune.reference.ops.activations import (
    check_logistic,
    check_softmax,
    check_tanh,
    int8_activation_table,
    int16_input_scaling,
    int16_table_params,
    softmax_below_range,
    softmax_params,
    softmax_uniform_value,
)
from autotune.reference.registry import Check, OpContext

# Rows whose exps can sum past int32 in Q12.19 (2^31 / 2^19 = 4096 values at the
# maximum) wrap in TFLM's int32 adds and leave the reciprocal undefined.
SOFTMAX_MAX_DEPTH = 4095


def describe(t: Tensor) -> str:
    """One tensor for a generated file's header: shape, type and quantization."""
    quant = t.quant.describe() if t.quant is not None else "not quantized"
    return f"{'x'.join(map(str, t.shape)) or 'scalar'} {t.dtype} ({quant})"


def render_op(template: str, graph: Graph, layer: Layer, lines: list[str], **ctx: Any) -> str:
    """Render kernels/ops/<template> under the common generated-file header."""
    inputs, outputs, state = layer_io(graph, layer)
    header = [f"Layer {layer.index}: {layer.op}"]
    header += [f"Input {i}: {describe(graph.tensors[t])}" for i, t in enumerate(inputs)]
    header += [f"Output {i}: {describe(graph.tensors[t])}" for i, t in enumerate(outputs)]
    header += [f"State {i}: {describe(graph.tensors[t])}" for i, t in enumerate(state)]
    header += lines
    return environment().get_template(template).render(version=__version__, header=header, **ctx)


def checked(graph: Graph, layer: Layer, check: Check) -> OpContext:
    """The layer's OpContext once the reference accepts it; the reference's reason otherwise."""
    ctx = OpContext(graph, layer)
    reason = check(ctx)
    if reason:
        raise UnsupportedOpError(graph.path, layer.op, layer.index, reason)
    return ctx


def check_int16_scaling(graph: Graph, layer: Layer, multiplier: int, shift: int, what: str) -> None:
    """at_fp_scale_int16 computes x * multiplier + rounding in int32: refuse constants
    for which some int16 x would overflow it (the reference computes in int64)."""
    rounding = (1 << (shift - 1)) if shift > 0 else 0
    if not all(-(2**31) <= x * multiplier + rounding < 2**31 for x in (-32768, 32767)):
        raise UnsupportedOpError(
            graph.path,
            layer.op,
            layer.index,
            f"{what}: rescaling by {multiplier} * 2^-{shift} overflows int32",
        )


@op_emitter("LOGISTIC", "TANH")
def logistic_tanh(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked(graph, layer, check_logistic if layer.op == "LOGISTIC" else check_tanh)
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    inputs, outputs, _ = layer_io(graph, layer)
    values: dict[str, Any] = {"fn": function, "size": x.size, "op": layer.op}
    if x.dtype == "int8":
        table = int8_activation_table(x, layer.op)
        values["table"] = c_array("int8_t", "table", table)
        lines = ["int8: a 256-entry table computed by the reference (index: input + 128)."]
    else:
        multiplier, shift = int16_input_scaling(*int16_table_params(x, layer.op))
        check_int16_scaling(graph, layer, multiplier, shift, f"input scale {x.scale:g}")
        values.update(
            multiplier=multiplier,
            shift=shift,
            activation_fn="at_fp_sigmoid_s16" if layer.op == "LOGISTIC" else "at_fp_tanh_s16",
        )
        lines = [
            f"int16: input rescaled by ({multiplier} x + round) >> {shift}, table interpolation."
        ]
    values["ctype"] = c_type(x.dtype)
    source = render_op("ops/activation.c.j2", graph, layer, lines, **values)
    return LayerCode(
        function,
        source,
        inputs,
        outputs,
        inplace=[(layer.inputs[0], y.index)],
        description=f"{x.dtype} {'table' if x.dtype == 'int8' else 'interpolated'}",
    )


@op_emitter("SOFTMAX")
def softmax(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked(graph, layer, check_softmax)
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    depth = x.shape[-1]
    if depth > SOFTMAX_MAX_DEPTH:
        raise UnsupportedOpError(
            graph.path,
            layer.op,
            layer.index,
            f"rows of {depth} values; at most {SOFTMAX_MAX_DEPTH} keep TFLM's int32 sum exact",
        )
    beta = float(ctx.options.get("beta", 1.0))
    inputs, outputs, _ = layer_io(graph, layer)
    if softmax_below_range(x.scale, beta):
        return _uniform_softmax(graph, layer, function, inputs, outputs)
    multiplier, left_shift, diff_min = softmax_params(x.scale, beta)
    info = np.iinfo(np.dtype(y.dtype))
    source = render_op(
        "ops/softmax.c.j2",
        graph,
        layer,
        [
            f"beta {beta:g}: differences scaled by {multiplier} * 2^{left_shift - 31}, "
            f"ignored below {diff_min}."
        ],
        fn=function,
        rows=x.size // depth,
        depth=depth,
        multiplier=multiplier,
        left_shift=left_shift,
        diff_min=diff_min,
        out_type=c_type(y.dtype),
        out_bits=info.bits,
        out_min=int(info.min),
        out_max=int(info.max),
    )
    # Each output is written after its row was read for the maximum and the sum, and
    # then only over the input value at the same index: in place works for int8 out.
    inplace = [(layer.inputs[0], y.index)] if y.dtype == x.dtype else []
    return LayerCode(
        function, source, inputs, outputs, inplace=inplace, description=f"beta {beta:g}"
    )


def _uniform_softmax(
    graph: Graph, layer: Layer, function: str, inputs: list[int], outputs: list[int]
) -> LayerCode:
    """beta x input scale below TFLM's range: every probability is 1/depth (see the reference)."""
    x, y = graph.tensors[layer.inputs[0]], graph.tensors[layer.outputs[0]]
    value = softmax_uniform_value(x.shape[-1], y.scale, y.zero_point, y.dtype)
    out = c_type(y.dtype)
    source = "\n".join(
        [
            f"/* Generated by autotune: layer {layer.index}, SOFTMAX over rows of {x.shape[-1]}.",
            f" * The input scale ({x.scale:.3g}) is too fine for any two inputs to differ in",
            f" * probability: every output is 1/{x.shape[-1]} quantized, {value}. */",
            "#include <stdint.h>",
            "",
            f"void {function}(const int8_t *input, {out} *output, void *scratch)",
            "{",
            "    (void)input;",
            "    (void)scratch;",
            f"    for (int32_t i = 0; i < {y.size}; ++i) {{",
            f"        output[i] = ({out})({value});",
            "    }",
            "}",
            "",
        ]
    )
    return LayerCode(
        function, source, inputs, outputs, description="uniform (input scale below range)"
    )
