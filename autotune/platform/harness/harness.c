/* Harness epilogue: what happens after the region of interest.
 *
 * The embedded emulator stops at `autotune_stop` and never runs this code.
 * QEMU user mode does: it prints the buffers listed in `autotune_dump` (the
 * QEMU runner patches that table into a copy of the ELF) on stdout and exits
 * through the Linux system call interface. On ARC the core halts (nSIM); on an ISA
 * this file has no system calls for, it parks in a loop.
 */
#include "autotune_harness.h"

#define AUTOTUNE_MAX_DUMPS 16

struct autotune_dump_entry {
    uintptr_t addr;
    uintptr_t len;
};

/* Patched by the QEMU runner: how many buffers to print, and where they are. */
__attribute__((used, section(".data.autotune_dump"))) volatile struct {
    uintptr_t count;
    struct autotune_dump_entry entry[AUTOTUNE_MAX_DUMPS];
} autotune_dump;

#if defined(__aarch64__)
#define AUTOTUNE_SYS_WRITE 64
#define AUTOTUNE_SYS_EXIT 93
static long autotune_syscall3(long nr, long a, long b, long c)
{
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
#elif defined(__arm__)
#define AUTOTUNE_SYS_WRITE 4
#define AUTOTUNE_SYS_EXIT 1
static long autotune_syscall3(long nr, long a, long b, long c)
{
    register long r7 __asm__("r7") = nr;
    register long r0 __asm__("r0") = a;
    register long r1 __asm__("r1") = b;
    register long r2 __asm__("r2") = c;
    __asm__ volatile("svc #0" : "+r"(r0) : "r"(r7), "r"(r1), "r"(r2) : "memory");
    return r0;
}
#elif defined(__riscv)
#define AUTOTUNE_SYS_WRITE 64
#define AUTOTUNE_SYS_EXIT 93
static long autotune_syscall3(long nr, long a, long b, long c)
{
    register long a7 __asm__("a7") = nr;
    register long a0 __asm__("a0") = a;
    register long a1 __asm__("a1") = b;
    register long a2 __asm__("a2") = c;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2) : "memory");
    return a0;
}
#endif

void autotune_finish(void) __attribute__((noreturn, used));

void autotune_finish(void)
{
#if defined(__arc__)
    for (;;) {
        __asm__ volatile("flag 1");
    }
#elif defined(AUTOTUNE_SYS_WRITE)
    uintptr_t count = autotune_dump.count;
    if (count > AUTOTUNE_MAX_DUMPS) {
        count = AUTOTUNE_MAX_DUMPS;
    }
    for (uintptr_t i = 0; i < count; i++) {
        autotune_syscall3(AUTOTUNE_SYS_WRITE, 1, (long)autotune_dump.entry[i].addr,
                          (long)autotune_dump.entry[i].len);
    }
    for (;;) {
        autotune_syscall3(AUTOTUNE_SYS_EXIT, 0, 0, 0);
    }
#else
    /* An ISA without a system-call interface here (a plugin's new ISA): park. The
     * emulator stops at autotune_stop before this runs; a board stays here. */
    for (;;) {
    }
#endif
}
