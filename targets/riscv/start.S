/* Startup for RV32: global pointer (for linker relaxation), stack, call. */
    .section .text.autotune_start, "ax", %progbits
    .align 2
    .global _start
    .type _start, %function
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la sp, __stack_top
    call autotune_main
    .global autotune_stop
    .type autotune_stop, %function
autotune_stop:
    call autotune_finish
    .size autotune_stop, . - autotune_stop
