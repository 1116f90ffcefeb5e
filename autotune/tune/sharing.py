"""What the layers of one workload can share, and what sharing costs, measured.

pieces(): rendered for the group's layers, is the code the same (one function fits,
emit/share.py) and how many bytes of constants storing equal arrays once saves?
cost(): the shared form (the function in its own file, the layer's constants passed
in a struct from another, as the library compiles it) measured on a layer against
the per-layer code, both on the same evaluator; one function is used only if it is
bit-exact and at most SHARE_TOLERANCE slower.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from autotune.db import Trial
from autotune.emit import share
from autotune.emit.library import layer_function
from autotune.model.graph import Graph
from autotune.platform.target import Target
from autotune.tune.model_choice import SHARE_TOLERANCE, LayerInput, Pieces
from autotune.tune.variant import Evaluator


class LayerSharing:
    """model_choice.Sharing for one model on one target."""

    def __init__(
        self, graph: Graph, target: Target, evaluator: Callable[[LayerInput], Evaluator]
    ) -> None:
        self.graph = graph
        self.target = target
        self.evaluator = evaluator

    def _sources(self, members: list[LayerInput], trial: Trial) -> list[tuple[str, str]]:
        params = json.loads(trial.params)
        template = members[0].templates[trial.template]
        out = []
        for m in members:
            fn = layer_function(self.graph.layers[m.index])
            out.append((template.render(m.spec, self.target, params, fn).source, fn))
        return out

    def pieces(self, members: list[LayerInput], trial: Trial) -> Pieces:
        # Code: two layers decide (cost() checks them all); constants: every layer, as
        # the library stores them (the first two may share weights the others do not).
        sources = self._sources(members, trial)
        return Pieces(_same_code(sources[:2]), share.shared_bytes([s for s, _ in sources]))

    def cost(self, members: list[LayerInput], trial: Trial) -> tuple[bool, str]:
        if not _same_code(self._sources(members, trial)):
            return False, "not the same code in every layer"
        evaluator = self.evaluator(members[0])
        template = members[0].templates[trial.template]
        params = json.loads(trial.params)
        alone = evaluator.evaluate(template, params)
        together = evaluator.evaluate(template, params, split=share.harness_files)
        if not alone.ok or not together.ok or not alone.cycles or not together.cycles:
            return False, f"shared form not measured: {together.reason or alone.reason}"
        ratio = together.cycles / alone.cycles
        note = (
            f"one function: {together.cycles:,} cycles against {alone.cycles:,} per layer "
            f"({ratio - 1:+.2%}, {together.metric_label}), layer {members[0].index}"
        )
        return ratio <= 1 + SHARE_TOLERANCE, note


def _same_code(sources: list[tuple[str, str]]) -> bool:
    forms = {share.normalized(s, fn) for s, fn in sources}
    first, fn = sources[0]
    return len(forms) == 1 and share.shared_function(first, fn, "at_shared", "") is not None
