/* Startup for ARMv7-A (A32 state; the kernel may be A32 or T32). */
    .syntax unified
    .arm
    .section .text.autotune_start, "ax", %progbits
    .align 2
    .global _start
    .type _start, %function
_start:
    ldr sp, =__stack_top
    bl autotune_main
    .global autotune_stop
    .type autotune_stop, %function
autotune_stop:
    bl autotune_finish
    .size autotune_stop, . - autotune_stop
    .pool
