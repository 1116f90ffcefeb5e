"""autotune-mips: MIPS32r2 microcontrollers (Microchip PIC32MZ, microAptiv core) for autotune.

An out-of-tree plugin, installed with pip, that brings an instruction set autotune
does not have: its targets, its ISA support (startup code, Unicorn configuration,
capstone decoder), a timing model of the microAptiv pipeline and a kernel template
of its own (MADD dot products). autotune finds it through the ``autotune`` entry
point group; nothing in autotune names it.
"""

__version__ = "0.1.0"
