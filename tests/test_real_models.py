"""Every int8 model in ../shared/models through the reference, bit-exact with the oracle.

Each model runs on three seeded random inputs plus all -128 and all 127. The
oracle is tflite-micro where it runs the model (in a child process, since the
wheel aborts on some files), else TFLite's reference kernels.
"""

from __future__ import annotations

import numpy as np
import pytest

from autotune.errors import UnsupportedOpError
from autotune.model.extract import layers_model
from autotune.model.graph import Graph
from autotune.model.tflite_import import load_model
from autotune.reference.executor import Interpreter
from tests.conftest import assert_matches_oracle, extreme_inputs, seeded_inputs, shared_model

INT8_MODELS = [
    "hello_world_int8.tflite",
    "ad01_int8.tflite",
    "kws_ref_model.tflite",
    "micro_speech_quantized.tflite",
    "str_ww_ref_model.tflite",
    "vww_96_int8.tflite",
    "person_detect.tflite",
    "pretrainedResnet_quant.tflite",
    "trained_lstm_int8.tflite",
    "lstm_weather_24x7_u32.tflite",
    "bilstm_50x16_u32.tflite",
    "lstm_textgen_100x64_u128.tflite",
    "micro_speech_lstm.tflite",
    "seed_conv1d_lstm_800x2.tflite",
    "gru_unrolled_20x8_u32.tflite",
    "mobilenet_v2_quantized_1x3x224x224.tflite",
]


def five_calls(graph: Graph) -> list[list[np.ndarray]]:
    calls = [seeded_inputs(graph, seed) for seed in (1, 2, 3)]
    return [*calls, extreme_inputs(graph, "min"), extreme_inputs(graph, "max")]


@pytest.mark.parametrize("name", INT8_MODELS)
def test_model_matches_oracle(name: str) -> None:
    path = shared_model(name)
    graph = load_model(path)
    assert_matches_oracle(path.read_bytes(), five_calls(graph), isolated=True)


def test_dtln_is_stateful_over_five_calls() -> None:
    path = shared_model("dtln_noise_suppression.tflite")
    graph = load_model(path)
    calls = [seeded_inputs(graph, seed) for seed in range(5)]
    assert_matches_oracle(path.read_bytes(), calls, stateful=True, isolated=True)
    # State must matter, or the check above proves nothing about it.
    interp = Interpreter(graph)
    first = interp.invoke(calls[0])[0]
    again = interp.invoke(calls[0])[0]
    assert not np.array_equal(first, again)


def test_keyword_scrambled_is_stateful_over_five_calls() -> None:
    """TFLM's keyword benchmark: int16 in, seven SVDF with int8 time weights and state,
    int32 out. Its scrambled weights saturate the output, so this checks that it runs
    as tflite-micro runs it; tests/reference/test_ops_svdf.py checks the arithmetic."""
    path = shared_model("keyword_scrambled_8bit.tflite")
    graph = load_model(path)
    calls = [seeded_inputs(graph, seed) for seed in range(5)]
    assert assert_matches_oracle(path.read_bytes(), calls, stateful=True, isolated=True) == (
        "tflite-micro"
    )


def test_mobilenet_v2_0_3_80() -> None:
    """Neither tflite-micro nor TFLite's reference kernels can prepare this model's final
    SOFTMAX (its input scale, 7.8e-9, is below what their fixed-point softmax accepts,
    and both abort). So the body (layers 0-63) is checked against the reference
    interpreters and the whole model against TFLite's optimized kernels."""
    path = shared_model("mobilenet_v2_0.3_80.tflite")
    graph = load_model(path)
    last = len(graph.layers) - 1
    assert graph.layers[last].op == "SOFTMAX"
    body = layers_model(graph, 0, last - 1)
    calls = five_calls(graph)
    oracle = assert_matches_oracle(body, calls, isolated=True)
    assert oracle in ("tflite-micro", "litert-ref")
    assert_matches_oracle(path.read_bytes(), calls, isolated=True, allow_optimized=True)


@pytest.mark.parametrize(
    ("name", "op"),
    [
        ("seanet_conv10_int16x8.tflite", "CONV_2D"),
        ("seanet_transpose_conv0_int16x8.tflite", "TRANSPOSE_CONV"),
    ],
)
def test_models_outside_int8_are_rejected_by_name(name: str, op: str) -> None:
    graph = load_model(shared_model(name))
    with pytest.raises(UnsupportedOpError) as info:
        Interpreter(graph)
    assert info.value.op == op and name in str(info.value)
