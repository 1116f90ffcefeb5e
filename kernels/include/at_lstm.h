/*
 * at_lstm.h - helpers of the tuned int8x8_16 LSTM kernels (kernels/lstm.py).
 *
 * Faster forms of TFLM's arithmetic that give the same bits: the fused requantization
 * (one rounding multiply and one shift instead of TFLM's two roundings), saturation in
 * one instruction where the core has SSAT, and TFLite's int16 sigmoid/tanh table
 * interpolation with one packed table load and without its dead branches.
 * tests/kernels/test_lstm_templates.py compares every function here with the reference
 * over the whole int16 input domain. Freestanding: only <stdint.h> and at_nn.h.
 */
#ifndef AT_LSTM_H
#define AT_LSTM_H

#include <stdint.h>

#include "at_nn.h"

#define AT_LSTM_INLINE static inline __attribute__((always_inline))

/* ---------------------------------------------------------------- saturation */

AT_LSTM_INLINE int32_t at_lstm_sat16(int32_t x)
{
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
    int32_t r;
    __asm__("ssat %0, #16, %1" : "=r"(r) : "r"(x));
    return r;
#else
    return x < -32768 ? -32768 : (x > 32767 ? 32767 : x);
#endif
}

AT_LSTM_INLINE int32_t at_lstm_sat8(int32_t x)
{
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(x));
    return r;
#else
    return x < -128 ? -128 : (x > 127 ? 127 : x);
#endif
}

/* ---------------------------------------------------------------- fused requantization */

/* TFLM's MultiplyByQuantizedMultiplier(acc, mult, -e) + offset for e >= 1, where
 * k = 2^(e-1) + offset * 2^e. With x = 2 * acc, (x * mult + 2^31) >> 32 is TFLM's rounding
 * doubling high multiply; adding 2^(e-1), minus one when the product is negative, before
 * the arithmetic shift is its round-half-away-from-zero division (the sign of x stands
 * for the sign of the high product: they differ only when the product rounds to 0, where
 * both give 0). The generator only uses it where |acc| < 2^30 and |k| < 2^30. */
AT_LSTM_INLINE int32_t at_lstm_requant(int32_t acc, int32_t mult, int32_t k, int32_t e)
{
    const int32_t x = (int32_t)((uint32_t)acc << 1);
    const int32_t a = k - (int32_t)((uint32_t)x >> 31);
#if defined(AT_HAVE_DSP)
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(mult), "r"(a));
#elif defined(__ARM_ARCH_6M__)
    /* No 32x32->64 multiply on Armv6-M: the high word of x * mult + 2^31 from four
     * 16x16 products (mult > 0, so its high half is non-negative). */
    const uint32_t x_lo = (uint32_t)x & 0xFFFFu;
    const int32_t x_hi = x >> 16;
    const uint32_t m_lo = (uint32_t)mult & 0xFFFFu;
    const uint32_t m_hi = (uint32_t)mult >> 16;
    const int32_t cross_signed = x_hi * (int32_t)m_lo;
    const uint32_t cross_low = ((x_lo * m_lo) >> 16) + 0x8000u + x_lo * m_hi;
    const int32_t carry =
        (int32_t)((((uint32_t)cross_signed & 0xFFFFu) + cross_low) >> 16);
    const int32_t r = x_hi * (int32_t)m_hi + (cross_signed >> 16) + carry + a;
#else
    const int64_t product = (int64_t)x * mult;
    const int32_t r = (int32_t)(product >> 32) + (int32_t)((uint32_t)product >> 31) + a;
#endif
    return r >> e;
}

#if defined(AT_HAVE_DSP)
#if defined(__thumb__)
/* Two adjacent weight words in one LDRD: a row's SMLAD pair stays one load instruction
 * however the compiler schedules. index is a constant word offset below 256. */
#define AT_LSTM_LDRD(lo, hi, base, index) \
    __asm__("ldrd %0, %1, [%2, %3]" \
            : "=r"(lo), "=r"(hi) \
            : "r"(base), "i"(4 * (index)), "m"(*(const uint32_t(*)[2])((base) + (index))))
#else
/* A32: LDRD needs an even/odd register pair and an offset below 256 bytes; two loads,
 * which gcc pairs where it can. */
#define AT_LSTM_LDRD(lo, hi, base, index) \
    do { \
        (lo) = (base)[index]; \
        (hi) = (base)[(index) + 1]; \
    } while (0)
#endif

/* The same with a constant shift E folded into the saturation: SMMLAR, then SSAT #BITS
 * with ASR #E (one instruction each). */
#define AT_LSTM_REQUANT_SAT(acc, mult, k, E, BITS) __extension__({ \
    const int32_t at_x_ = (int32_t)((uint32_t)(acc) << 1); \
    const int32_t at_a_ = (k) - (int32_t)((uint32_t)at_x_ >> 31); \
    int32_t at_r_; \
    __asm__("smmlar %0, %1, %2, %3" : "=r"(at_r_) : "r"(at_x_), "r"(mult), "r"(at_a_)); \
    __asm__("ssat %0, %1, %2, asr %3" : "=r"(at_r_) : "I"(BITS), "r"(at_r_), "I"(E)); \
    at_r_; })
#endif

/* ---------------------------------------------------------------- sigmoid and tanh */

/* TFLite's sigmoid table u (at_sigmoid_table_u16 in at_fixedpoint.h), packed for one load
 * per lookup with the rounding terms folded in: bits 16-31 hold the slope u[i+1] - u[i],
 * bits 0-15 (u[i] - 32767) for the sigmoid, whose interpolation adds 2^9 to (u[i] - 2^15)
 * << 9, and 2 (u[i] - 32768) + 1 for the tanh, which adds 2^7 to (u[i] - 2^15) << 8.
 * Entry 255 has slope 0: TFLite's saturated value. */
static const uint32_t at_lstm_sigmoid_pairs[256] __attribute__((aligned(4))) = {
    0x02AB0001u, 0x02AA02ACu, 0x02A80556u, 0x02A807FEu, 0x02A40AA6u, 0x02A20D4Au,
    0x029E0FECu, 0x029B128Au, 0x02951525u, 0x029117BAu, 0x028B1A4Bu, 0x02851CD6u,
    0x027E1F5Bu, 0x027821D9u, 0x02702451u, 0x026826C1u, 0x02602929u, 0x02572B89u,
    0x024F2DE0u, 0x0245302Fu, 0x023C3274u, 0x023234B0u, 0x022836E2u, 0x021E390Au,
    0x02143B28u, 0x02093D3Cu, 0x01FF3F45u, 0x01F44144u, 0x01E94338u, 0x01DE4521u,
    0x01D346FFu, 0x01C848D2u, 0x01BE4A9Au, 0x01B24C58u, 0x01A84E0Au, 0x019C4FB2u,
    0x0192514Eu, 0x018752E0u, 0x017D5467u, 0x017255E4u, 0x01685756u, 0x015D58BEu,
    0x01545A1Bu, 0x01495B6Fu, 0x01405CB8u, 0x01365DF8u, 0x012C5F2Eu, 0x0123605Au,
    0x011B617Du, 0x01116298u, 0x010863A9u, 0x010064B1u, 0x00F865B1u, 0x00F066A9u,
    0x00E76799u, 0x00E06880u, 0x00D86960u, 0x00D16A38u, 0x00CA6B09u, 0x00C36BD3u,
    0x00BC6C96u, 0x00B66D52u, 0x00AF6E08u, 0x00A96EB7u, 0x00A26F60u, 0x009E7002u,
    0x009770A0u, 0x00927137u, 0x008C71C9u, 0x00887255u, 0x008272DDu, 0x007E735Fu,
    0x007973DDu, 0x00757456u, 0x007074CBu, 0x006C753Bu, 0x006875A7u, 0x0064760Fu,
    0x00607673u, 0x005D76D3u, 0x00597730u, 0x00567789u, 0x005277DFu, 0x004F7831u,
    0x004C7880u, 0x004A78CCu, 0x00467916u, 0x0044795Cu, 0x004179A0u, 0x003E79E1u,
    0x003C7A1Fu, 0x003A7A5Bu, 0x00387A95u, 0x00357ACDu, 0x00337B02u, 0x00317B35u,
    0x00307B66u, 0x002D7B96u, 0x002C7BC3u, 0x002A7BEFu, 0x00287C19u, 0x00267C41u,
    0x00267C67u, 0x00237C8Du, 0x00227CB0u, 0x00217CD2u, 0x00207CF3u, 0x001E7D13u,
    0x001D7D31u, 0x001C7D4Eu, 0x001B7D6Au, 0x001A7D85u, 0x00187D9Fu, 0x00187DB7u,
    0x00177DCFu, 0x00167DE6u, 0x00147DFCu, 0x00157E10u, 0x00137E25u, 0x00127E38u,
    0x00127E4Au, 0x00117E5Cu, 0x00117E6Du, 0x000F7E7Eu, 0x000F7E8Du, 0x000F7E9Cu,
    0x000E7EABu, 0x000D7EB9u, 0x000D7EC6u, 0x000C7ED3u, 0x000C7EDFu, 0x000B7EEBu,
    0x000B7EF6u, 0x000B7F01u, 0x000A7F0Cu, 0x00097F16u, 0x00097F1Fu, 0x00097F28u,
    0x00097F31u, 0x00087F3Au, 0x00077F42u, 0x00087F49u, 0x00077F51u, 0x00077F58u,
    0x00077F5Fu, 0x00067F66u, 0x00067F6Cu, 0x00067F72u, 0x00057F78u, 0x00067F7Du,
    0x00057F83u, 0x00057F88u, 0x00057F8Du, 0x00047F92u, 0x00047F96u, 0x00057F9Au,
    0x00047F9Fu, 0x00037FA3u, 0x00047FA6u, 0x00047FAAu, 0x00037FAEu, 0x00037FB1u,
    0x00037FB4u, 0x00037FB7u, 0x00037FBAu, 0x00037FBDu, 0x00037FC0u, 0x00027FC3u,
    0x00037FC5u, 0x00027FC8u, 0x00027FCAu, 0x00027FCCu, 0x00037FCEu, 0x00017FD1u,
    0x00027FD2u, 0x00027FD4u, 0x00027FD6u, 0x00027FD8u, 0x00017FDAu, 0x00027FDBu,
    0x00017FDDu, 0x00027FDEu, 0x00017FE0u, 0x00017FE1u, 0x00027FE2u, 0x00017FE4u,
    0x00017FE5u, 0x00017FE6u, 0x00017FE7u, 0x00017FE8u, 0x00017FE9u, 0x00017FEAu,
    0x00017FEBu, 0x00017FECu, 0x00017FEDu, 0x00007FEEu, 0x00017FEEu, 0x00017FEFu,
    0x00017FF0u, 0x00007FF1u, 0x00017FF1u, 0x00017FF2u, 0x00007FF3u, 0x00017FF3u,
    0x00007FF4u, 0x00017FF4u, 0x00007FF5u, 0x00017FF5u, 0x00007FF6u, 0x00017FF6u,
    0x00007FF7u, 0x00007FF7u, 0x00017FF7u, 0x00007FF8u, 0x00017FF8u, 0x00007FF9u,
    0x00007FF9u, 0x00017FF9u, 0x00007FFAu, 0x00007FFAu, 0x00007FFAu, 0x00017FFAu,
    0x00007FFBu, 0x00007FFBu, 0x00007FFBu, 0x00017FFBu, 0x00007FFCu, 0x00007FFCu,
    0x00007FFCu, 0x00007FFCu, 0x00017FFCu, 0x00007FFDu, 0x00007FFDu, 0x00007FFDu,
    0x00007FFDu, 0x00007FFDu, 0x00017FFDu, 0x00007FFEu, 0x00007FFEu, 0x00007FFEu,
    0x00007FFEu, 0x00007FFEu, 0x00007FFEu, 0x00007FFEu, 0x00017FFEu, 0x00007FFFu,
    0x00007FFFu, 0x00007FFFu, 0x00007FFFu, 0x00007FFFu, 0x00007FFFu, 0x00007FFFu,
    0x00007FFFu, 0x00007FFFu, 0x00017FFFu, 0x00008000u,
};

static const uint32_t at_lstm_tanh_pairs[256] __attribute__((aligned(4))) = {
    0x02AB0001u, 0x02AA0557u, 0x02A80AABu, 0x02A80FFBu, 0x02A4154Bu, 0x02A21A93u,
    0x029E1FD7u, 0x029B2513u, 0x02952A49u, 0x02912F73u, 0x028B3495u, 0x028539ABu,
    0x027E3EB5u, 0x027843B1u, 0x027048A1u, 0x02684D81u, 0x02605251u, 0x02575711u,
    0x024F5BBFu, 0x0245605Du, 0x023C64E7u, 0x0232695Fu, 0x02286DC3u, 0x021E7213u,
    0x0214764Fu, 0x02097A77u, 0x01FF7E89u, 0x01F48287u, 0x01E9866Fu, 0x01DE8A41u,
    0x01D38DFDu, 0x01C891A3u, 0x01BE9533u, 0x01B298AFu, 0x01A89C13u, 0x019C9F63u,
    0x0192A29Bu, 0x0187A5BFu, 0x017DA8CDu, 0x0172ABC7u, 0x0168AEABu, 0x015DB17Bu,
    0x0154B435u, 0x0149B6DDu, 0x0140B96Fu, 0x0136BBEFu, 0x012CBE5Bu, 0x0123C0B3u,
    0x011BC2F9u, 0x0111C52Fu, 0x0108C751u, 0x0100C961u, 0x00F8CB61u, 0x00F0CD51u,
    0x00E7CF31u, 0x00E0D0FFu, 0x00D8D2BFu, 0x00D1D46Fu, 0x00CAD611u, 0x00C3D7A5u,
    0x00BCD92Bu, 0x00B6DAA3u, 0x00AFDC0Fu, 0x00A9DD6Du, 0x00A2DEBFu, 0x009EE003u,
    0x0097E13Fu, 0x0092E26Du, 0x008CE391u, 0x0088E4A9u, 0x0082E5B9u, 0x007EE6BDu,
    0x0079E7B9u, 0x0075E8ABu, 0x0070E995u, 0x006CEA75u, 0x0068EB4Du, 0x0064EC1Du,
    0x0060ECE5u, 0x005DEDA5u, 0x0059EE5Fu, 0x0056EF11u, 0x0052EFBDu, 0x004FF061u,
    0x004CF0FFu, 0x004AF197u, 0x0046F22Bu, 0x0044F2B7u, 0x0041F33Fu, 0x003EF3C1u,
    0x003CF43Du, 0x003AF4B5u, 0x0038F529u, 0x0035F599u, 0x0033F603u, 0x0031F669u,
    0x0030F6CBu, 0x002DF72Bu, 0x002CF785u, 0x002AF7DDu, 0x0028F831u, 0x0026F881u,
    0x0026F8CDu, 0x0023F919u, 0x0022F95Fu, 0x0021F9A3u, 0x0020F9E5u, 0x001EFA25u,
    0x001DFA61u, 0x001CFA9Bu, 0x001BFAD3u, 0x001AFB09u, 0x0018FB3Du, 0x0018FB6Du,
    0x0017FB9Du, 0x0016FBCBu, 0x0014FBF7u, 0x0015FC1Fu, 0x0013FC49u, 0x0012FC6Fu,
    0x0012FC93u, 0x0011FCB7u, 0x0011FCD9u, 0x000FFCFBu, 0x000FFD19u, 0x000FFD37u,
    0x000EFD55u, 0x000DFD71u, 0x000DFD8Bu, 0x000CFDA5u, 0x000CFDBDu, 0x000BFDD5u,
    0x000BFDEBu, 0x000BFE01u, 0x000AFE17u, 0x0009FE2Bu, 0x0009FE3Du, 0x0009FE4Fu,
    0x0009FE61u, 0x0008FE73u, 0x0007FE83u, 0x0008FE91u, 0x0007FEA1u, 0x0007FEAFu,
    0x0007FEBDu, 0x0006FECBu, 0x0006FED7u, 0x0006FEE3u, 0x0005FEEFu, 0x0006FEF9u,
    0x0005FF05u, 0x0005FF0Fu, 0x0005FF19u, 0x0004FF23u, 0x0004FF2Bu, 0x0005FF33u,
    0x0004FF3Du, 0x0003FF45u, 0x0004FF4Bu, 0x0004FF53u, 0x0003FF5Bu, 0x0003FF61u,
    0x0003FF67u, 0x0003FF6Du, 0x0003FF73u, 0x0003FF79u, 0x0003FF7Fu, 0x0002FF85u,
    0x0003FF89u, 0x0002FF8Fu, 0x0002FF93u, 0x0002FF97u, 0x0003FF9Bu, 0x0001FFA1u,
    0x0002FFA3u, 0x0002FFA7u, 0x0002FFABu, 0x0002FFAFu, 0x0001FFB3u, 0x0002FFB5u,
    0x0001FFB9u, 0x0002FFBBu, 0x0001FFBFu, 0x0001FFC1u, 0x0002FFC3u, 0x0001FFC7u,
    0x0001FFC9u, 0x0001FFCBu, 0x0001FFCDu, 0x0001FFCFu, 0x0001FFD1u, 0x0001FFD3u,
    0x0001FFD5u, 0x0001FFD7u, 0x0001FFD9u, 0x0000FFDBu, 0x0001FFDBu, 0x0001FFDDu,
    0x0001FFDFu, 0x0000FFE1u, 0x0001FFE1u, 0x0001FFE3u, 0x0000FFE5u, 0x0001FFE5u,
    0x0000FFE7u, 0x0001FFE7u, 0x0000FFE9u, 0x0001FFE9u, 0x0000FFEBu, 0x0001FFEBu,
    0x0000FFEDu, 0x0000FFEDu, 0x0001FFEDu, 0x0000FFEFu, 0x0001FFEFu, 0x0000FFF1u,
    0x0000FFF1u, 0x0001FFF1u, 0x0000FFF3u, 0x0000FFF3u, 0x0000FFF3u, 0x0001FFF3u,
    0x0000FFF5u, 0x0000FFF5u, 0x0000FFF5u, 0x0001FFF5u, 0x0000FFF7u, 0x0000FFF7u,
    0x0000FFF7u, 0x0000FFF7u, 0x0001FFF7u, 0x0000FFF9u, 0x0000FFF9u, 0x0000FFF9u,
    0x0000FFF9u, 0x0000FFF9u, 0x0001FFF9u, 0x0000FFFBu, 0x0000FFFBu, 0x0000FFFBu,
    0x0000FFFBu, 0x0000FFFBu, 0x0000FFFBu, 0x0000FFFBu, 0x0001FFFBu, 0x0000FFFDu,
    0x0000FFFDu, 0x0000FFFDu, 0x0000FFFDu, 0x0000FFFDu, 0x0000FFFDu, 0x0000FFFDu,
    0x0000FFFDu, 0x0000FFFDu, 0x0001FFFDu, 0x0000FFFFu,
};

/* at_fp_sigmoid_s16(3 * x) for a Q3.12 gate pre-activation x in [-32768, 32767].
 * |3x| >> 9 stays at or below 192, so TFLite's saturation branch is dead here. Its
 * negative branch, (2^25 + 511 - R) >> 10, equals 2^15 - ((R + 512) >> 10), so one
 * interpolation serves both signs around the midpoint 2^14 (R >= 2^24 always). */
AT_LSTM_INLINE int32_t at_lstm_sigmoid_q3_12(int32_t x)
{
    const int32_t v = 3 * x;
    const int32_t sign = v >> 31; /* 0 or -1 */
    const uint32_t mag = (uint32_t)((v ^ sign) - sign);
    const uint32_t e = at_lstm_sigmoid_pairs[mag >> 9];
    const int32_t f = (int32_t)((((e & 0xFFFFu) << 9) + (mag & 0x1FFu) * (e >> 16)) >> 10);
    return 16384 + ((f ^ sign) - sign);
}

/* at_fp_tanh_s16(v) for any v the int16 rescalings produce (|v| < 2^24): the index is
 * clamped to entry 255 instead of branching, and tanh(-v) = -tanh(v) holds for TFLite's
 * rounding: (2^23 + 127 - R) >> 8 = -((R - 2^23 + 128) >> 8). */
AT_LSTM_INLINE int32_t at_lstm_tanh(int32_t v)
{
    const int32_t sign = v >> 31;
    const uint32_t mag = (uint32_t)((v ^ sign) - sign);
    const uint32_t index = mag >> 8;
    const uint32_t e = at_lstm_tanh_pairs[index > 255u ? 255u : index];
    const int32_t q = (int32_t)((((e & 0xFFFFu) << 7) + (mag & 0xFFu) * (e >> 16)) >> 8);
    return (q ^ sign) - sign;
}

#endif /* AT_LSTM_H */
