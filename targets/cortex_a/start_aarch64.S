/* Startup for AArch64 (EL0 in QEMU user mode, EL1 in the emulator). */
    .section .text.autotune_start, "ax", %progbits
    .align 2
    .global _start
    .type _start, %function
_start:
    ldr x0, =__stack_top
    mov sp, x0
    bl autotune_main
    .global autotune_stop
    .type autotune_stop, %function
autotune_stop:
    bl autotune_finish
    .size autotune_stop, . - autotune_stop
    .pool
