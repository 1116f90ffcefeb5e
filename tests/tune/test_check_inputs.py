"""Each layer's variants are measured on the input the layer sees inside the model: the
reference's activations on the model's measured check input (the input of the
library's headline run), so a kernel whose time depends on its data is timed as it ships."""

from __future__ import annotations

import numpy as np

from autotune.examples import quickstart_model
from autotune.model.arrays import check_calls
from autotune.model.tflite_import import parse_model
from autotune.reference.executor import Interpreter
from autotune.tune.variant import CheckSet, model_activations


def test_the_measured_input_is_the_layers_input_in_the_model() -> None:
    graph = parse_model(quickstart_model())
    model_input = check_calls(graph, 3, 1)[0]
    values = Interpreter(graph).invoke(model_input, keep=True)
    assert isinstance(values, dict)
    activations = model_activations(graph, 3)
    assert activations is not None
    for layer in graph.layers[1:]:
        checks = CheckSet.for_layer(graph, layer.index, 3, activations)
        seen = values[layer.inputs[0]]
        assert np.array_equal(checks.inputs[0][0], seen), layer.op
        # Random data and both extremes are still checked, after the measured input.
        assert len(checks.inputs) == 4
        assert np.all(checks.inputs[2][0] == -128) and np.all(checks.inputs[3][0] == 127)
        assert not np.array_equal(checks.inputs[1][0], seen)
    # The first layer reads the model input: that is the measured one, no second random set.
    first = CheckSet.for_layer(graph, 0, 3)
    assert len(first.inputs) == 3
    assert np.array_equal(first.inputs[0][0], model_input[0])
    assert np.array_equal(first.expected[0], values[graph.layers[0].outputs[0]])
