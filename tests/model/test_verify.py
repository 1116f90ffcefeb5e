"""The import verifier: every malformed model is one clean line naming the tensor or op.

Each case is a model built with the project's writer and then broken the way the
fuzzer and real files broke autotune before (IndexErrors in the MAC counters and the
tensor lookup, a reshape to 268435457x25x5x64, NaN reaching integer code, a tensor read
before it was written, a pooling window of 262,169 taps, empty weights)."""

from __future__ import annotations

import numpy as np
import pytest

from autotune.errors import AutotuneError, ModelError
from autotune.model.schema import fb
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.reference.executor import Interpreter


def _fc(units: int = 4, depth: int = 6) -> ModelBuilder:
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.tensor("x", (1, depth), "int8", 0.5, 1)
    w = b.constant("w", rng.integers(-127, 128, (units, depth)).astype(np.int8), 0.02, 0)
    bias = b.constant("bias", np.arange(units, dtype=np.int32), 0.01, 0)
    y = b.tensor("y", (1, units), "int8", 0.25, -3)
    b.op("FULLY_CONNECTED", [x, w, bias], [y])
    b.inputs(x)
    b.outputs(y)
    return b


def _pool(window: int = 2, out_hw: int = 4) -> bytes:
    b = ModelBuilder()
    x = b.tensor("x", (1, 8, 8, 3), "int8", 0.1, 0)
    y = b.tensor("y", (1, out_hw, out_hw, 3), "int8", 0.1, 0)
    b.op(
        "MAX_POOL_2D",
        [x],
        [y],
        padding="VALID",
        stride_h=2,
        stride_w=2,
        filter_height=window,
        filter_width=window,
    )
    b.inputs(x)
    b.outputs(y)
    return b.build()


def _edit(raw: bytes, change) -> bytes:
    """Change the packed model through the flatbuffer object API (as a converter bug would)."""
    import flatbuffers

    model = fb.ModelT.InitFromPackedBuf(raw, 0)
    change(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _tensor(model, name: str):
    return next(t for t in model.subgraphs[0].tensors if t.name.decode() == name)


def _reject(raw: bytes, *fragments: str) -> str:
    with pytest.raises(ModelError) as info:
        parse_model(raw, "m.tflite")
    message = str(info.value)
    assert message.startswith("m.tflite: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_valid_model_passes() -> None:
    graph = parse_model(_fc().build())
    Interpreter(graph).invoke([np.zeros((1, 6), np.int8)])


def test_model_output_out_of_range_names_the_index() -> None:
    def change(m):
        m.subgraphs[0].outputs = [99]

    _reject(_edit(_fc().build(), change), "model output refers to missing tensor 99")


def test_model_input_out_of_range() -> None:
    def change(m):
        m.subgraphs[0].inputs = [-5]

    _reject(_edit(_fc().build(), change), "model input refers to missing tensor -5")


def test_op_input_out_of_range() -> None:
    def change(m):
        m.subgraphs[0].operators[0].inputs = [0, 1, 57]

    _reject(
        _edit(_fc().build(), change), "op 0 (FULLY_CONNECTED): input refers to missing tensor 57"
    )


def test_weights_of_the_wrong_rank_name_the_op_instead_of_crashing_inspect() -> None:
    def change(m):
        _tensor(m, "w").shape = [24]
        m.buffers[_tensor(m, "w").buffer].data = np.zeros(24, np.uint8)

    _reject(_edit(_fc().build(), change), "op 0 (FULLY_CONNECTED): input 1", "must be 2-D")


def test_conv_missing_filter_names_the_op() -> None:
    b = ModelBuilder()
    x = b.tensor("x", (1, 4, 4, 1), "int8", 0.5, 0)
    y = b.tensor("y", (1, 4, 4, 1), "int8", 0.5, 0)
    b.op("CONV_2D", [x], [y], padding="SAME", stride_h=1, stride_w=1)
    b.inputs(x)
    b.outputs(y)
    _reject(b.build(), "op 0 (CONV_2D) needs 2 inputs")


def test_tensor_read_before_written() -> None:
    b = ModelBuilder()
    x = b.tensor("x", (1, 4), "int8", 0.5, 0)
    mid = b.tensor("mid", (1, 4), "int8", 0.5, 0)
    y = b.tensor("y", (1, 4), "int8", 0.5, 0)
    b.op("TANH", [mid], [y])
    b.op("TANH", [x], [mid])
    b.inputs(x)
    b.outputs(y)
    _reject(b.build(), "op 0 (TANH) reads tensor 1 ('mid') before any op writes it")


def test_output_never_written() -> None:
    b = _fc()
    extra = b.tensor("extra", (1, 4), "int8", 0.5, 0)
    b.outputs(3, extra)
    _reject(b.build(), "model output tensor 4 ('extra') is never written")


def test_tensor_written_twice() -> None:
    b = ModelBuilder()
    x = b.tensor("x", (1, 4), "int8", 0.5, 0)
    y = b.tensor("y", (1, 4), "int8", 0.5, 0)
    b.op("TANH", [x], [y])
    b.op("LOGISTIC", [x], [y])
    b.inputs(x)
    b.outputs(y)
    _reject(b.build(), "op 1 (LOGISTIC) writes tensor 1 ('y'), already written by op 0 (TANH)")


def test_huge_shape_is_refused_before_any_allocation() -> None:
    b = ModelBuilder()
    x = b.tensor("x", (1, 4), "int8", 0.5, 0)
    y = b.tensor("huge", (268435457, 25, 5, 64), "int8", 0.5, 0)
    b.op("RESHAPE", [x], [y], new_shape=[268435457, 25, 5, 64])
    b.inputs(x)
    b.outputs(y)
    message = _reject(b.build(), "tensor 1 ('huge')", "GiB", "at most")
    assert "268435457" in message


def test_negative_dimension() -> None:
    def change(m):
        _tensor(m, "y").shape = [1, -4]

    _reject(_edit(_fc().build(), change), "tensor 3 ('y') has a negative dimension")


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -0.5, 0.0])
def test_bad_activation_scale(scale: float) -> None:
    def change(m):
        _tensor(m, "y").quantization.scale = [scale]

    _reject(_edit(_fc().build(), change), "tensor 3 ('y') has quantization scale")


def test_zero_point_outside_its_type() -> None:
    def change(m):
        _tensor(m, "x").quantization.zeroPoint = [300]

    _reject(
        _edit(_fc().build(), change), "tensor 0 ('x') has zero point 300, outside the range of int8"
    )


def test_per_channel_scales_must_match_their_axis() -> None:
    def change(m):
        q = _tensor(m, "w").quantization
        q.scale = [0.1, 0.2, 0.3]
        q.zeroPoint = [0, 0, 0]

    _reject(_edit(_fc().build(), change), "tensor 1 ('w') has 3 scales along axis 0 of size 4")


def test_scale_and_zero_point_counts_differ() -> None:
    # Extracting a layer used to die in the writer with a numpy broadcast error.
    def change(m):
        _tensor(m, "bias").quantization.zeroPoint = [0, 0]

    _reject(_edit(_fc().build(), change), "tensor 2 ('bias') has 1 scales but 2 zero points")


def test_nan_option_is_refused_before_integer_code_sees_it() -> None:
    b = ModelBuilder()
    x = b.tensor("x", (1, 8), "int8", 0.1, 0)
    y = b.tensor("y", (1, 8), "int8", 1 / 256, -128)
    b.op("SOFTMAX", [x], [y], beta=float("nan"))
    b.inputs(x)
    b.outputs(y)
    _reject(b.build(), "op 0 (SOFTMAX): option beta is nan")


def test_unknown_tensor_type() -> None:
    def change(m):
        _tensor(m, "y").type = fb.TensorType.STRING

    _reject(_edit(_fc().build(), change), "tensor 3 ('y') has type STRING")


def test_empty_fully_connected_weights_are_rejected_not_divided_by() -> None:
    b = ModelBuilder()
    x = b.tensor("x", (1, 6), "int8", 0.5, 1)
    w = b.constant("w", np.zeros((0, 6), np.int8), 0.02, 0)
    y = b.tensor("y", (1, 1), "int8", 0.25, -3)
    b.op("FULLY_CONNECTED", [x, w], [y])
    b.inputs(x)
    b.outputs(y)
    with pytest.raises(AutotuneError, match=r"tensor 1 \('w'\) has no elements"):
        Interpreter(parse_model(b.build()))


def test_pooling_window_larger_than_bounds_is_rejected_quickly() -> None:
    graph = parse_model(_pool(window=512, out_hw=1))
    with pytest.raises(AutotuneError, match=r"op 0 \(MAX_POOL_2D\).*window 512x512"):
        Interpreter(graph)


def test_pool_output_shape_must_match_the_geometry() -> None:
    graph = parse_model(_pool(window=2, out_hw=3))
    with pytest.raises(AutotuneError, match=r"op 0 \(MAX_POOL_2D\).*does not match the 4x4"):
        Interpreter(graph)


def test_zero_stride_is_rejected() -> None:
    def change(m):
        m.subgraphs[0].operators[0].builtinOptions.strideH = 0

    graph = parse_model(_edit(_pool(), change))
    with pytest.raises(AutotuneError, match=r"op 0 \(MAX_POOL_2D\).*stride_h 0"):
        Interpreter(graph)


def test_each_rejection_is_one_line_on_the_cli(tmp_path) -> None:
    from click.testing import CliRunner

    from autotune.cli.main import _register_commands, cli

    def change(m):
        m.subgraphs[0].outputs = [99]

    path = tmp_path / "broken.tflite"
    path.write_bytes(_edit(_fc().build(), change))
    _register_commands()
    result = CliRunner().invoke(cli, ["inspect", str(path)], standalone_mode=False)
    assert isinstance(result.exception, ModelError)
    assert str(result.exception).count("\n") == 0


def test_wrong_input_count_is_a_rejection_not_an_unpacking_error() -> None:
    b = ModelBuilder()
    x = b.tensor("x", (1, 8), "int8", 0.1, 0)
    y = b.tensor("y", (1, 4), "int8", 0.1, 0)
    idx = [b.constant(n, np.array(v, np.int32)) for n, v in
           (("begin", [0, 0]), ("end", [1, 4]), ("strides", [1, 1]), ("extra", [1, 1]))]  # fmt: skip
    b.op("STRIDED_SLICE", [x, *idx], [y])
    b.inputs(x)
    b.outputs(y)
    with pytest.raises(AutotuneError, match=r"op 0 \(STRIDED_SLICE\).*takes 4 inputs, has 5"):
        Interpreter(parse_model(b.build()))


def test_huge_dilation_is_bounded_before_the_reference_pads() -> None:
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    x = b.tensor("x", (1, 8, 8, 64), "int8", 0.1, 0)
    w = b.constant("w", rng.integers(-9, 9, (1, 3, 3, 64)).astype(np.int8), [0.1] * 64, 0, axis=3)
    y = b.tensor("y", (1, 8, 8, 64), "int8", 0.1, 0)
    b.op(
        "DEPTHWISE_CONV_2D", [x, w], [y], padding="SAME", stride_h=1, stride_w=1,
        depth_multiplier=1, dilation_h_factor=65536, dilation_w_factor=1,
    )  # fmt: skip
    b.inputs(x)
    b.outputs(y)
    with pytest.raises(AutotuneError, match=r"op 0 \(DEPTHWISE_CONV_2D\).*dilated 65536x1"):
        Interpreter(parse_model(b.build()))


def test_a_two_dimensional_bias_is_flattened_for_the_kernels(tmp_path) -> None:
    from autotune.emit.library import emit_library
    from autotune.platform import plugins

    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.tensor("x", (1, 6), "int8", 0.5, 1)
    w = b.constant("w", rng.integers(-127, 128, (4, 6)).astype(np.int8), 0.02, 0)
    bias = b.constant("bias", np.arange(4, dtype=np.int32).reshape(1, 4), 0.01, 0)
    y = b.tensor("y", (1, 4), "int8", 0.25, -3)
    b.op("FULLY_CONNECTED", [x, w, bias], [y])
    b.inputs(x)
    b.outputs(y)
    graph = parse_model(b.build())
    Interpreter(graph).invoke([np.ones((1, 6), np.int8)])
    emit_library(graph, plugins.get_target("cortex-m4"), tmp_path)


def test_a_shrunk_slice_past_the_end_is_refused_not_indexed() -> None:
    # Fuzzer mutant 2333 (seed 2026): a begin of 24 on an axis of 24 with shrink_axis_mask.
    b = ModelBuilder()
    x = b.tensor("x", (1, 24, 8), "int8", 0.1, 0)
    y = b.tensor("y", (1, 8), "int8", 0.1, 0)
    idx = [b.constant(n, np.array(v, np.int32)) for n, v in
           (("begin", [0, 24, 0]), ("end", [1, 25, 8]), ("strides", [1, 1, 1]))]  # fmt: skip
    b.op("STRIDED_SLICE", [x, *idx], [y], shrink_axis_mask=2)
    b.inputs(x)
    b.outputs(y)
    with pytest.raises(AutotuneError, match=r"op 0 \(STRIDED_SLICE\).*outside axis 1 of size 24"):
        Interpreter(parse_model(b.build()))


def test_options_of_another_op_are_refused_not_written_back() -> None:
    # Fuzzer mutant 369 (seed 5, byte flips): the options type of lstm_weather's LSTM became
    # SoftmaxOptions; the importer took its `beta` as an LSTM option and the writer of the
    # layer's check model raised ValueError (exit 70).
    def change(model) -> None:
        op = model.subgraphs[0].operators[0]
        op.builtinOptionsType = fb.BuiltinOptions.SoftmaxOptions
        op.builtinOptions = fb.SoftmaxOptionsT()
        op.builtinOptions.beta = 1.0

    _reject(
        _edit(_fc().build(), change),
        "op 0 (FULLY_CONNECTED): its options are SoftmaxOptions, not FullyConnectedOptions",
    )


def test_options_are_read_from_the_table_the_op_takes() -> None:
    b = ModelBuilder()
    x = b.tensor("x", (1, 8), "int8", 0.1, 0)
    y = b.tensor("y", (1, 8), "int8", 1 / 256, -128)
    b.op("SOFTMAX", [x], [y], beta=0.5)
    b.op("RELU", [y], [b.tensor("z", (1, 8), "int8", 1 / 256, -128)])
    b.inputs(x)
    b.outputs(2)

    def change(model) -> None:  # a table on an op that takes none: TFLM never reads it
        model.subgraphs[0].operators[1].builtinOptionsType = fb.BuiltinOptions.SoftmaxOptions
        model.subgraphs[0].operators[1].builtinOptions = fb.SoftmaxOptionsT()

    graph = parse_model(_edit(b.build(), change))
    assert graph.layers[0].options == {"beta": 0.5}
    assert graph.layers[1].options == {}


def test_a_shrunk_axis_with_a_negative_stride_is_refused_not_reshaped() -> None:
    # Fuzzer mutant 259 (seed 2027, buffer data): lstm_weather's slice strides became
    # [1, -1785358955, 1] on its shrunk axis 1; the kernel picked nothing and failed to
    # reshape 0 elements to the 1x32 output (ValueError, exit 70).
    b = ModelBuilder()
    x = b.tensor("x", (1, 24, 32), "int8", 0.1, 0)
    y = b.tensor("y", (1, 32), "int8", 0.1, 0)
    idx = [b.constant(n, np.array(v, np.int32)) for n, v in
           (("begin", [0, -1, 0]), ("end", [0, 0, 0]), ("strides", [1, -1785358955, 1]))]  # fmt: skip
    b.op("STRIDED_SLICE", [x, *idx], [y], begin_mask=5, end_mask=5, shrink_axis_mask=2)
    b.inputs(x)
    b.outputs(y)
    with pytest.raises(AutotuneError, match=r"op 0 \(STRIDED_SLICE\).*shrunk axis 1 picks 0"):
        Interpreter(parse_model(b.build()))
