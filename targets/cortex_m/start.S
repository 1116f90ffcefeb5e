/* Startup for Cortex-M (ARMv6-M and later: 16-bit Thumb only where it matters).
 * A vector table for real parts and QEMU system mode, then _start: set the
 * stack, call the region of interest, and fall into autotune_stop. */
    .syntax unified
    .thumb

    .section .vectors, "a", %progbits
    .align 2
    .global __autotune_vectors
__autotune_vectors:
    .word __stack_top
    .word _start
    .rept 14
    .word autotune_fault
    .endr

    .section .text.autotune_start, "ax", %progbits
    .align 2
    .global _start
    .type _start, %function
    .thumb_func
_start:
    ldr r0, =__stack_top
    mov sp, r0
    bl autotune_main
    .global autotune_stop
    .type autotune_stop, %function
    .thumb_func
autotune_stop:
    bl autotune_finish
    .size autotune_stop, . - autotune_stop

    .global autotune_fault
    .type autotune_fault, %function
    .thumb_func
autotune_fault:
    b autotune_fault
    .size autotune_fault, . - autotune_fault
    .pool
