"""Ops defined in one place each: every public module here has ``OPS``, a list of
:class:`autotune.opdef.Op` (reference kernel and checks, C emitter, spec builder).
They are installed when the reference loads; see autotune/opdef.py."""
