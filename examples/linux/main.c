/* An embedded-Linux program using the autotune library named kws through pkg-config:
 *
 *   autotune kws.tflite --target cortex-a53 --name kws --out out
 *   export PKG_CONFIG_PATH=out/linux/aarch64-linux-gnu/lib/pkgconfig
 *   aarch64-linux-gnu-gcc main.c $(pkg-config --cflags --libs --static kws) -static -o kws-demo
 *   qemu-aarch64 ./kws-demo            (or run it on the board)
 *
 * It runs the network on a fixed input pattern, prints the output bytes in hex (the
 * test suite compares them with the reference) and the time per inference. */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "kws.h"

static int8_t input[KWS_INPUT_SIZE], output[KWS_OUTPUT_SIZE];

int main(void)
{
    for (int32_t i = 0; i < KWS_INPUT_SIZE; ++i) {
        input[i] = (int8_t)(uint8_t)((uint32_t)i * 37u + 11u);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (kws_invoke(input, output) != 0) {
        fprintf(stderr, "kws_invoke failed\n");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("kws ");
    for (int32_t i = 0; i < KWS_OUTPUT_SIZE; ++i) {
        printf("%02x", (unsigned)(uint8_t)output[i]);
    }
    printf("\n");
    fprintf(stderr, "one inference: %.3f ms (wall clock)\n",
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    return 0;
}
