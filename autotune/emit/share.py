"""Share what is the same: one function for same-shape layers, one copy of each constant.

Every generated layer source keeps its constants as ``static const T NAME[N]`` arrays
(codegen.c_array, emit/ops/shape.const_array). Two layers rendered from the same
template point whose sources differ only in those arrays' values (and in the layer's
name) can run ONE function: the shared function reads each array through a pointer
in a per-layer struct, and each layer keeps a tiny function of its own that passes
its struct. Arrays with the same type and values in several sources (the weights an
unrolled RNN reads at every step) are stored once, under one name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ARRAY = re.compile(
    r"^static const (?P<type>\w+) (?P<name>\w+)\[(?P<n>\d+)\](?P<attr>[^=\n]*)= \{\n"
    r"(?P<body>.*?)\n\};\n",
    re.MULTILINE | re.DOTALL,
)
_HEAD_COMMENT = re.compile(r"\A/\*.*?\*/\n", re.DOTALL)
_SIZES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4}
_SIZES |= {"float": 4, "int64_t": 8, "uint64_t": 8}


@dataclass(frozen=True)
class Array:
    """One constant array of a generated source."""

    ctype: str
    name: str
    count: int
    attr: str
    body: str  # the initializer's lines
    text: str  # the whole definition, as it stands in the source

    @property
    def nbytes(self) -> int:
        return _SIZES.get(self.ctype, 4) * self.count

    @property
    def content(self) -> tuple[str, int, str]:
        return self.ctype, self.count, self.body


def arrays(source: str) -> list[Array]:
    """The constant arrays defined in a generated source, in order."""
    return [
        Array(m["type"], m["name"], int(m["n"]), m["attr"].strip(), m["body"], m.group(0))
        for m in _ARRAY.finditer(source)
    ]


def normalized(source: str, function: str) -> str:
    """The source as far as its code goes: no header comment, no layer name, and each
    array reduced to its type and size. Equal for two layers = one function fits both."""
    text = _HEAD_COMMENT.sub("", source, count=1)
    text = _ARRAY.sub(lambda m: f"static const {m['type']} {m['name']}[{m['n']}];\n", text)
    return re.sub(rf"\b{re.escape(function)}\b", "@FN@", text)


@dataclass(frozen=True)
class _Function:
    params: str  # the parameter list as written
    open_brace: int  # index of the body's "{"
    close_brace: int  # index of the body's "}"


def _function(source: str, name: str) -> _Function | None:
    m = re.search(rf"^void {re.escape(name)}\((?P<params>[^)]*)\)\s*\{{", source, re.MULTILINE)
    if m is None:
        return None
    depth = 0
    for i in range(m.end() - 1, len(source)):
        if source[i] == "{":
            depth += 1
        elif source[i] == "}":
            depth -= 1
            if depth == 0:
                return _Function(m["params"], m.end() - 1, i)
    return None


def _param_names(params: str) -> list[str]:
    return [re.findall(r"\w+", p)[-1] for p in params.split(",") if p.strip()]


@dataclass(frozen=True)
class SharedFunction:
    """One function for several layers, and what each layer passes it.

    decls: the struct of per-layer pointers and the function's prototype (for a header
    both the function's file and the layers' files include);
    source: the function's file without that header; stub(): a layer's own file."""

    name: str
    decls: str
    source: str
    params: str
    arrays: tuple[Array, ...]

    def stub(self, layer_source: str, function: str) -> str:
        """The layer's file: its header comment, its arrays, its struct, and its function
        (the library's calling convention) passing them to the shared one."""
        head = _HEAD_COMMENT.match(layer_source)
        own = arrays(layer_source)
        args = ", ".join([*_param_names(self.params), "&at_data"])
        lines = [
            head.group(0).rstrip("\n") if head else "",
            "#include <stdint.h>",
            f"/* This layer runs {self.name}() with its own constants. */",
            "",
            *(a.text for a in own),
            f"static const struct {self.name}_data at_data = {{",
            *(f"    {a.name}," for a in own),
            "};",
            "",
            f"void {function}({self.params})",
            "{",
            f"    {self.name}({args});",
            "}",
            "",
        ]
        return "\n".join(lines)


def shared_function(source: str, function: str, name: str, comment: str) -> SharedFunction | None:
    """The shared form of a layer's source (its code, arrays passed in), or None where
    the code does not lend itself: the arrays are read outside the layer's function,
    or their size is asked for."""
    own = arrays(source)
    if not own:
        return None
    fn = _function(source, function)
    if fn is None:
        return None
    outside = source[: fn.open_brace] + source[fn.close_brace :]
    for a in own:
        outside = outside.replace(a.text, "")
    for a in own:
        if re.search(rf"\b{a.name}\b", outside) or re.search(rf"sizeof\s*\(?\s*{a.name}\b", source):
            return None
    fields = "\n".join(f"    const {a.ctype} *{a.name};" for a in own)
    decls = (
        f"struct {name}_data {{\n{fields}\n}};\n"
        f"void {name}({fn.params}, const struct {name}_data *restrict at_data);\n"
    )
    body = source[fn.open_brace + 1 : fn.close_brace]
    locals_ = "".join(f"\n    const {a.ctype} *const {a.name} = at_data->{a.name};" for a in own)
    text = source[: fn.open_brace] + "{" + locals_ + body + source[fn.close_brace :]
    text = _HEAD_COMMENT.sub(f"/*\n * {comment}\n */\n", text, count=1)
    for a in own:
        text = text.replace(a.text, "")
    text = re.sub(
        rf"^void {re.escape(function)}\([^)]*\)",
        f"void {name}({fn.params}, const struct {name}_data *restrict at_data)",
        text,
        count=1,
        flags=re.MULTILINE,
    )
    text = re.sub(r"\n{3,}", "\n\n", text)
    return SharedFunction(name, decls, text, fn.params, tuple(own))


def harness_files(source: str, function: str) -> list[tuple[str, str]] | None:
    """A layer's source in its shared form as two files, as the library compiles it (so
    that the compiler cannot see the layer's arrays while compiling the function): for
    measuring what sharing costs. None where the source cannot be shared."""
    shared = shared_function(source, function, "at_shared", "shared form")
    if shared is None:
        return None
    include = "#include <stdint.h>\n"
    head = include + shared.decls
    code = shared.source.replace(include, head, 1)
    stub = shared.stub(source, function).replace(include, head, 1)
    return [("kernel.c", code), ("kernel_data.c", stub)]


def shared_bytes(sources: list[str]) -> int:
    """Per source past the first, the bytes storing identical arrays once saves: the
    sources' arrays all together, less each distinct one once, over len - 1. For two
    sources, the bytes of the arrays they have in common; for an unrolled RNN whose
    steps read two weight tensors in turn, half of one step's weights, not all of them."""
    if len(sources) < 2:
        return 0
    found = [a for s in sources for a in arrays(s)]
    distinct = {a.content: a.nbytes for a in found}
    return (sum(a.nbytes for a in found) - sum(distinct.values())) // (len(sources) - 1)


@dataclass
class Constants:
    """Arrays stored once: their definitions (one file) and declarations (the header)."""

    definitions: list[str]
    declarations: list[str]


def dedupe_arrays(sources: list[str], prefix: str) -> tuple[list[str], Constants]:
    """Arrays with the same type and values in two or more of the sources, moved out as
    one definition each (``PREFIX_cK``); each source then refers to that name."""
    seen: dict[tuple[str, int, str], list[int]] = {}
    found = [arrays(s) for s in sources]
    for i, own in enumerate(found):
        for a in own:
            files = seen.setdefault(a.content, [])
            if i not in files:
                files.append(i)
    shared = [k for k, files in seen.items() if len(files) > 1]
    names = {k: f"{prefix}_c{n}" for n, k in enumerate(shared)}
    out = list(sources)
    for i, own in enumerate(found):
        for a in own:
            new = names.get(a.content)
            if new is None:
                continue
            text = out[i].replace(a.text, "", 1)
            out[i] = re.sub(rf"\b{a.name}\b", new, text)
    consts = Constants([], [])
    for k, new in names.items():
        a = next(a for own in found for a in own if a.content == k)
        decl = f"const {a.ctype} {new}[{a.count}]" + (f" {a.attr}" if a.attr else "")
        consts.definitions.append(f"{decl} = {{\n{a.body}\n}};")
        consts.declarations.append(f"extern {decl};")
    return out, consts
