/* Startup for bare-metal MIPS32r2 (o32, no PIC): stack, call, stop.
 *
 * The embedded emulator enters autotune_main directly with $ra = autotune_stop
 * and stops there; on a board, _start is the entry and the core parks in a
 * WAIT loop after the kernel returns. -mno-abicalls -G0 code needs no $gp.
 */
    .section .text.autotune_start, "ax", @progbits
    .set noreorder
    .set nomips16
    .set nomicromips
    .align 2
    .global _start
    .type _start, @function
_start:
    la $sp, __stack_top
    jal autotune_main
    nop
    .size _start, . - _start

    .global autotune_stop
    .type autotune_stop, @function
autotune_stop:
1:  wait
    b 1b
    nop
    .size autotune_stop, . - autotune_stop
