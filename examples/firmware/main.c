/* Runs two autotune libraries, kws and ad, on a fixed input pattern each and prints
 * their outputs in hex over semihosting, one line per model. The test suite computes
 * the same inputs and compares the lines with the reference interpreter. */
#include <stdint.h>

#include "ad.h"
#include "kws.h"
#include "semihosting.h"

static int8_t kws_in[KWS_INPUT_SIZE], kws_out[KWS_OUTPUT_SIZE];
static int8_t ad_in[AD_INPUT_SIZE], ad_out[AD_OUTPUT_SIZE];

/* The example inputs: byte i is (i * step + offset) mod 256, as a signed byte. */
static void fill(int8_t *buf, int32_t n, uint32_t step, uint32_t offset)
{
    for (int32_t i = 0; i < n; ++i) {
        buf[i] = (int8_t)(uint8_t)((uint32_t)i * step + offset);
    }
}

static void print_hex(const char *label, const int8_t *buf, int32_t n)
{
    static const char digits[] = "0123456789abcdef";
    char line[2 * 256 + 16];
    int32_t k = 0;
    for (const char *p = label; *p; ++p) {
        line[k++] = *p;
    }
    for (int32_t i = 0; i < n && i < 256; ++i) {
        const uint8_t v = (uint8_t)buf[i];
        line[k++] = digits[v >> 4];
        line[k++] = digits[v & 15];
    }
    line[k++] = '\n';
    line[k] = '\0';
    semihosting_write(line);
}

int main(void)
{
    fill(kws_in, KWS_INPUT_SIZE, 37u, 11u);
    fill(ad_in, AD_INPUT_SIZE, 101u, 3u);
    if (kws_invoke(kws_in, kws_out) != 0 || ad_invoke(ad_in, ad_out) != 0) {
        semihosting_write("invoke failed\n");
        return 1;
    }
    print_hex("kws ", kws_out, KWS_OUTPUT_SIZE);
    print_hex("ad ", ad_out, AD_OUTPUT_SIZE);
    return 0;
}
