/* libraft's CRC-32 (spec §0 fact 2): polynomial 0x04C11DB7, MSB first,
 * init 0, no final XOR.
 *
 * Two paths give the same result:
 * - slicing by 16 bytes with tables (any CPU): XOR the register into the first
 *   4 bytes (read big endian), then each of the 16 bytes looks up its
 *   contribution followed by the right number of zero bytes (table k = k zero
 *   bytes follow);
 * - on x86-64 with PCLMULQDQ, folding: the message is a polynomial whose first
 *   byte's top bit is the highest term; four 128-bit accumulators each absorb
 *   a 16-byte block every 64 bytes (A*x^512 + B, with A*x^512 reduced by
 *   carry-less multiplications with x^576 mod P and x^512 mod P, see
 *   gen_crc_table.py).  The four are folded into one, whose 16 bytes then go
 *   through the table path, which yields (A * x^32) mod P: the CRC. */
#include "native.h"
#include "crc32_table.h"

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint32_t crc_tables(const uint8_t *p, size_t len, uint32_t crc)
{
    const uint32_t(*t)[256] = rp_crc_table;
    while (len >= 16) {
        uint32_t a = load_be32(p) ^ crc;
        uint32_t b = load_be32(p + 4);
        uint32_t c = load_be32(p + 8);
        uint32_t d = load_be32(p + 12);
        crc = t[15][a >> 24] ^ t[14][(a >> 16) & 0xff] ^ t[13][(a >> 8) & 0xff] ^ t[12][a & 0xff] ^
              t[11][b >> 24] ^ t[10][(b >> 16) & 0xff] ^ t[9][(b >> 8) & 0xff] ^ t[8][b & 0xff] ^
              t[7][c >> 24] ^ t[6][(c >> 16) & 0xff] ^ t[5][(c >> 8) & 0xff] ^ t[4][c & 0xff] ^
              t[3][d >> 24] ^ t[2][(d >> 16) & 0xff] ^ t[1][(d >> 8) & 0xff] ^ t[0][d & 0xff];
        p += 16;
        len -= 16;
    }
    while (len--) {
        crc = (crc << 8) ^ t[0][(crc >> 24) ^ *p++];
    }
    return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define RP_FOLD_MIN 256 /* below this the tables are as fast */

__attribute__((target("pclmul,ssse3"))) static inline __m128i
fold(__m128i x, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x11), _mm_clmulepi64_si128(x, k, 0x00));
}

__attribute__((target("pclmul,ssse3"))) static inline __m128i
load_be128(const uint8_t *p, __m128i reverse)
{
    return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), reverse);
}

/* CRC of p[0..len) where len is a multiple of 64 and at least 128. */
__attribute__((target("pclmul,ssse3"))) static uint32_t
crc_fold(const uint8_t *p, size_t len, uint32_t crc)
{
    const __m128i reverse = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m128i k512 = _mm_set_epi64x(RP_CRC_K512_HI, RP_CRC_K512_LO);
    __m128i x0 = load_be128(p, reverse), x1 = load_be128(p + 16, reverse);
    __m128i x2 = load_be128(p + 32, reverse), x3 = load_be128(p + 48, reverse);
    x0 = _mm_xor_si128(x0, _mm_set_epi32((int)crc, 0, 0, 0));
    for (p += 64, len -= 64; len >= 64; p += 64, len -= 64) {
        x0 = _mm_xor_si128(fold(x0, k512), load_be128(p, reverse));
        x1 = _mm_xor_si128(fold(x1, k512), load_be128(p + 16, reverse));
        x2 = _mm_xor_si128(fold(x2, k512), load_be128(p + 32, reverse));
        x3 = _mm_xor_si128(fold(x3, k512), load_be128(p + 48, reverse));
    }
    __m128i x = _mm_xor_si128(fold(x0, _mm_set_epi64x(RP_CRC_K384_HI, RP_CRC_K384_LO)),
                              fold(x1, _mm_set_epi64x(RP_CRC_K256_HI, RP_CRC_K256_LO)));
    x = _mm_xor_si128(x, fold(x2, _mm_set_epi64x(RP_CRC_K128_HI, RP_CRC_K128_LO)));
    x = _mm_xor_si128(x, x3);
    uint8_t out[16];
    _mm_storeu_si128((__m128i *)out, _mm_shuffle_epi8(x, reverse));
    return crc_tables(out, 16, 0);
}

uint32_t rp_crc32(const void *buf, size_t len, uint32_t crc)
{
    const uint8_t *p = buf;
    if (len >= RP_FOLD_MIN && __builtin_cpu_supports("pclmul") &&
        __builtin_cpu_supports("ssse3")) {
        size_t head = len & ~(size_t)63;
        crc = crc_fold(p, head, crc);
        p += head;
        len -= head;
    }
    return crc_tables(p, len, crc);
}
#else
uint32_t rp_crc32(const void *buf, size_t len, uint32_t crc)
{
    return crc_tables(buf, len, crc);
}
#endif
