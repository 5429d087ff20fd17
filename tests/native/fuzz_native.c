/* Standalone fuzz driver for the C engine, built by test_sanitizers.py with
 * AddressSanitizer and UBSan.  Inputs are heap buffers of their exact length,
 * so any read past the end is caught.  Covers the segment decoders and the
 * wire's AppendEntries descriptor codec (round trips, then mutated and random
 * frames).  Usage: fuzz_native SEED ROUNDS TMPDIR */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "native.h"

static uint64_t state;

static uint64_t next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
    uint32_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint32_t)p[i] << 24;
        for (int k = 0; k < 8; k++) crc = (crc & 0x80000000u) ? (crc << 1) ^ 0x04C11DB7u : crc << 1;
    }
    return crc;
}

#define CAP 7
static uint64_t terms[CAP], offsets[CAP];
static uint32_t lengths[CAP];
static uint8_t types[CAP];

static void check_entries(const struct rp_result *res, size_t len)
{
    if (res->n_entries > CAP) abort();
    for (uint64_t i = 0; i < res->n_entries; i++)
        if (offsets[i] + lengths[i] > len || types[i] < 1 || types[i] > 3) abort();
}

static size_t make_segment(uint8_t *out, size_t cap)
{
    size_t pos = 8;
    memset(out, 0, 8);
    out[0] = 1;
    int batches = 1 + (int)(next() % 4);
    for (int b = 0; b < batches; b++) {
        uint64_t n = 1 + next() % 5, t[5];
        uint8_t ty[5];
        uint32_t l[5];
        uint8_t data[5 * 48];
        size_t dl = 0;
        for (uint64_t i = 0; i < n; i++) {
            t[i] = next() % 4;
            ty[i] = (uint8_t)(1 + next() % 3);
            l[i] = (uint32_t)(8 * (next() % 6));
            for (uint32_t k = 0; k < l[i]; k++) data[dl + k] = (uint8_t)next();
            dl += l[i];
        }
        int64_t rv = rp_encode_batch(out + pos, cap - pos, n, t, ty, l, data, dl);
        if (rv < 0) abort();
        pos += (size_t)rv;
    }
    return pos;
}

static void scan_all(const uint8_t *buf, size_t len)
{
    struct rp_entries out = {terms, offsets, lengths, types, CAP};
    struct rp_result res;
    size_t off = 0;
    for (int guard = 0; guard < 10000; guard++) {
        int st = rp_scan_segment(buf, len, off, &out, &res);
        check_entries(&res, len);
        if (st != RP_MORE || res.n_entries == 0) break;
        off = res.end;
    }
    rp_decode_batches(buf, len, len > 8 ? 8 : 0, 0, &out, &res);
    check_entries(&res, len);
    int64_t found = rp_find_batch(buf, len, 0, len, UINT64_MAX);
    if (found < -1 || (found >= 0 && (size_t)found + 32 > len)) abort();
    if (rp_find_batch(buf, len, 0, len, 64) < -2) abort();      /* a tiny budget: -2 */
}

/* An AppendEntries frame head from random entries (some with bad types or
 * unaligned lengths, which the encoder must refuse); on success the decoder
 * must give back exactly what went in. */
static size_t make_append_entries(uint8_t *out, size_t cap, uint64_t *n_out)
{
    uint64_t n = next() % 10, t[9], l[9];
    uint8_t ty[9];
    int bad = 0, unaligned = 0;
    for (uint64_t i = 0; i < n; i++) {
        t[i] = next();
        ty[i] = (uint8_t)(next() % 16 == 0 ? next() % 256 : 1 + next() % 3);
        l[i] = next() % 8 == 0 ? next() % 40 : 8 * (next() % 6);
        if (next() % 64 == 0) l[i] = (uint64_t)UINT32_MAX + 1 + next() % 8;
        bad |= ty[i] < 1 || ty[i] > 3 || l[i] > UINT32_MAX || (l[i] && unaligned);
        unaligned |= l[i] % 8 != 0;
    }
    int64_t rv = rp_encode_append_entries(out, cap, next(), next(), next(), next(), n, t, ty, l);
    if (bad != (rv == -EINVAL)) abort();
    if (bad) {
        *n_out = 0;
        return 0;
    }
    if (rv != (int64_t)rp_append_entries_head_size(n)) abort();
    if (rp_encode_append_entries(out, (size_t)rv - 1, 0, 0, 0, 0, n, t, ty, l) != -ENOBUFS) abort();
    struct rp_entries ents = {terms, offsets, lengths, types, CAP};
    struct rp_result res;
    int st = rp_decode_append_entries(out, (size_t)rv, 56, n, &ents, &res);
    if (n > CAP) {
        if (st != RP_MORE || res.detail != n) abort();
    } else {
        uint64_t total = 0;
        for (uint64_t i = 0; i < n; i++) total += l[i];
        if (st != RP_OK || res.n_entries != n || res.needed != total) abort();
        for (uint64_t i = 0, at = 0; i < n; at += l[i], i++)
            if (terms[i] != t[i] || types[i] != ty[i] || lengths[i] != l[i]
                || (l[i] && offsets[i] != at)) abort();
    }
    *n_out = n;
    return (size_t)rv;
}

/* Decode arbitrary bytes as descriptors: never out of bounds, and what is
 * accepted lies inside the payload it announces. */
static void decode_wire(const uint8_t *buf, size_t len, uint64_t n)
{
    struct rp_entries ents = {terms, offsets, lengths, types, CAP};
    struct rp_result res;
    size_t desc_off = next() % 4 == 0 ? next() % (len + 8) : (len < 56 ? 0 : 56);
    if (next() % 4 == 0) n = next() % 4 == 0 ? next() : next() % 12;
    int st = rp_decode_append_entries(buf, len, desc_off, n, &ents, &res);
    if (st == RP_OK) {
        if (res.n_entries != n || n > CAP || desc_off + 16 * n > len) abort();
        for (uint64_t i = 0; i < n; i++)
            if (types[i] < 1 || types[i] > 3
                || (lengths[i] && offsets[i] + lengths[i] > res.needed)) abort();
    } else if (st != RP_SHORT && st != RP_MORE && st != RP_BAD_TYPE && st != RP_OVERRUN) {
        abort();
    }
}

static void fuzz_wire(void)
{
    uint8_t tmp[64 + 16 * 9];
    uint64_t n = 0;
    size_t len = make_append_entries(tmp, sizeof tmp, &n);
    int muts = (int)(next() % 4);
    for (int m = 0; m < muts && len > 0; m++) {
        size_t at = next() % len;
        if (next() % 2) tmp[at] ^= (uint8_t)(1u << (next() % 8));
        else len = at;
    }
    if (next() % 8 == 0) {
        len = next() % sizeof tmp;
        for (size_t i = 0; i < len; i++) tmp[i] = (uint8_t)next();
    }
    uint8_t *buf = malloc(len ? len : 1);
    memcpy(buf, tmp, len);
    decode_wire(buf, len, n);
    free(buf);
}

int main(int argc, char **argv)
{
    if (argc < 4) return 2;
    state = strtoull(argv[1], NULL, 10) | 1;
    long rounds = strtol(argv[2], NULL, 10);
    for (long r = 0; r < rounds; r++) {
        uint8_t tmp[4096];
        size_t len = make_segment(tmp, sizeof tmp);
        int muts = (int)(next() % 4);
        for (int m = 0; m < muts && len > 0; m++) {
            size_t at = next() % len;
            switch (next() % 3) {
            case 0: tmp[at] ^= (uint8_t)(1u << (next() % 8)); break;
            case 1: len = at; break;
            default: for (int k = 0; k < 8 && at + k < len; k++) tmp[at + k] = (uint8_t)next();
            }
        }
        if (next() % 8 == 0) { /* pure random input */
            len = next() % 300;
            for (size_t i = 0; i < len; i++) tmp[i] = (uint8_t)next();
        }
        uint8_t *buf = malloc(len ? len : 1);
        memcpy(buf, tmp, len);
        if (rp_crc32(buf, len, 0) != crc_bitwise(buf, len)) {
            fprintf(stderr, "crc mismatch at round %ld\n", r);
            return 1;
        }
        scan_all(buf, len);
        free(buf);
        fuzz_wire();
    }
    /* The AIO path once, on a real file. */
    char path[4096];
    snprintf(path, sizeof path, "%s/aio-file", argv[3]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return 3;
    struct rp_aio aio;
    static uint8_t page[4096] __attribute__((aligned(4096)));
    memset(page, 'x', sizeof page);
    if (rp_aio_init(&aio, 4) == 0) {
        if (rp_aio_submit(&aio, fd, page, sizeof page, 0, 42, RP_AIO_DSYNC) == 0) {
            uint64_t ud = 0;
            int64_t result = 0;
            for (int spin = 0; spin < 100000 && rp_aio_reap(&aio, &ud, &result, 1) == 0; spin++)
                usleep(100);
            if (ud != 42 || result != 4096) return 4;
        }
        rp_aio_close(&aio);
    }
    if (rp_pwrite_sync(fd, page, 100, 4096) != 0) return 5;
    close(fd);
    printf("ok %ld rounds\n", rounds);
    return 0;
}
