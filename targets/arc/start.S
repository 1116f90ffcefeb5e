/* Startup for ARC EM (ARCv2): stack, call, halt in autotune_finish. */
    .section .text.autotune_start, "ax", @progbits
    .align 4
    .global _start
    .type _start, @function
_start:
    mov sp, @__stack_top
    bl @autotune_main
    .global autotune_stop
    .type autotune_stop, @function
autotune_stop:
    bl @autotune_finish
    .size autotune_stop, . - autotune_stop
