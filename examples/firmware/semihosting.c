#include <stdint.h>

#include "semihosting.h"

static uint32_t semihosting_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihosting_write(const char *text)
{
    (void)semihosting_call(0x04u, text); /* SYS_WRITE0 */
}

void semihosting_exit(int code)
{
    /* SYS_EXIT with ADP_Stopped_ApplicationExit and the status (the extended form). */
    const uint32_t block[2] = {0x20026u, (uint32_t)code};
    (void)semihosting_call(0x20u, block); /* SYS_EXIT_EXTENDED */
    (void)semihosting_call(0x18u, (const void *)0x20026u);
    for (;;) {
    }
}
