"""Ops defined in one place each: every public module here has ``OPS``, a list of
:class:`autotune.opdef.Op` (reference kernel and checks, C emitter, spec builder).
They are installed when the reference loads; see autotune/opdef.py."""

# Load the reference first, so that it installs these modules (each imported whole)
# even when a program's first import is one of them: a module imported first would
# otherwise be found half-initialised, without OPS, by its own imports.
import autotune.reference.ops  # noqa: F401
