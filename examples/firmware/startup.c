/* Minimal Cortex-M4 start-up: vector table, .data/.bss set-up, FPU on, then main(). */
#include <stdint.h>

#include "semihosting.h"

int main(void);
void reset_handler(void);
void default_handler(void);

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end, __stack_top;

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&__stack_top),
    reset_handler,
    default_handler, default_handler, default_handler, default_handler, default_handler,
    default_handler, default_handler, default_handler, default_handler, default_handler,
    default_handler, default_handler, default_handler, default_handler,
};

void reset_handler(void)
{
    const uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end; ++dst) {
        *dst = *src++;
    }
    for (uint32_t *dst = &__bss_start; dst < &__bss_end; ++dst) {
        *dst = 0;
    }
    /* Full access to CP10/CP11: the libraries are built for -mfloat-abi=hard. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb");
    semihosting_exit(main());
}

void default_handler(void)
{
    semihosting_write("fault\n");
    semihosting_exit(99);
}
