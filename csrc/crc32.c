/* libraft's CRC-32 (spec §0 fact 2), slicing by 16 bytes.
 *
 * MSB-first CRC: the register's top byte meets the next input byte.  Folding
 * 16 bytes at a time: XOR the register into the first 4 bytes (read big
 * endian), then each of the 16 bytes looks up its contribution after the
 * right number of trailing zero bytes (table k = k zero bytes follow). */
#include "native.h"
#include "crc32_table.h"

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

uint32_t rp_crc32(const void *buf, size_t len, uint32_t crc)
{
    const uint8_t *p = buf;
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
