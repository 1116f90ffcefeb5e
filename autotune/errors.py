"""User-facing errors: each becomes one line on stderr and a non-zero exit code."""

from __future__ import annotations


class AutotuneError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


class ModelError(AutotuneError):
    """The .tflite file cannot be read or contains something autotune cannot handle."""


class UnsupportedOpError(ModelError):
    """Operators the reference executor does not implement (all of them, grouped by op).
    Exit code 3 from every command, as docs/cli.md says: `reference` and `tune` alike."""

    exit_code = 3

    def __init__(self, path: str, op: str, index: int, detail: str = "") -> None:
        self.op = op
        self.index = index
        self.layers = [(op, index, detail)]
        super().__init__(f"{path}: {describe_unsupported(self.layers)}")

    @classmethod
    def grouped(cls, path: str, layers: list[tuple[str, int, str]]) -> UnsupportedOpError:
        """One error for every unsupported layer: (op, index, reason) each."""
        error = cls(path, *layers[0])
        error.layers = list(layers)
        error.args = (f"{path}: {describe_unsupported(layers)}",)
        return error


def describe_unsupported(layers: list[tuple[str, int, str]], shown: int = 8) -> str:
    """Unsupported layers grouped by op, as `reference` and `tune` both report them:
    `op 1 (SVDF) is not supported (reason)` alone, `LEAKY_RELU x42 (ops 2, 5, ...)` for many."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for op, index, reason in layers:
        groups.setdefault(op, []).append((index, reason))
    parts = []
    for op, entries in groups.items():
        indices = [str(i) for i, _ in entries]
        if len(entries) == 1:
            head = f"op {indices[0]} ({op}) is not supported"
        else:
            listed = ", ".join(indices[:shown]) + (", ..." if len(indices) > shown else "")
            head = f"{op} x{len(entries)} (ops {listed}) are not supported"
        reason = entries[0][1]
        parts.append(f"{head} ({reason})" if reason else head)
    return "; ".join(parts)


class InputError(AutotuneError):
    """An input array that does not fit the model."""
