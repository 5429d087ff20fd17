/* Entry batch encoding, decoding and segment scanning in libraft's layout.
 * The layout is documented in native.h.  Decoding is defensive: every length
 * read from the input is checked against the bytes that remain before it is
 * used, so arbitrary input can never make us read out of bounds. */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "native.h"

uint64_t rp_batch_size(uint64_t n, uint64_t data_len)
{
    return 8 + 8 + 16 * n + data_len;
}

/* Shared encoder: terms/types either per entry (arrays) or uniform. */
static int64_t encode(uint8_t *out, size_t cap, uint64_t n, const uint64_t *terms,
                      uint64_t term, const uint8_t *types, uint8_t type,
                      const uint32_t *lengths, const uint8_t *data, size_t data_len)
{
    if (n == 0) return -EINVAL;
    if (n > RP_MAX_BATCH_ENTRIES) return -E2BIG;
    uint64_t size = rp_batch_size(n, data_len);
    if (size > cap) return -ENOBUFS;
    uint8_t *hdr = out + 8;
    uint64_t sum = 0;
    put_u64(hdr, n);
    for (uint64_t i = 0; i < n; i++) {
        uint8_t *e = hdr + 8 + 16 * i;
        uint8_t ty = types ? types[i] : type;
        uint32_t len = lengths[i];
        if (ty < 1 || ty > 3 || len % 8 != 0) return -EINVAL;
        sum += len;
        put_u64(e, terms ? terms[i] : term);
        e[8] = ty;
        e[9] = e[10] = e[11] = 0;
        put_u32(e + 12, len);
    }
    if (sum != data_len) return -EINVAL;
    size_t hdr_len = 8 + 16 * (size_t)n;
    if (data_len) memcpy(hdr + hdr_len, data, data_len);
    put_u32(out, rp_crc32(hdr, hdr_len, 0));
    put_u32(out + 4, rp_crc32(data, data_len, 0));
    return (int64_t)size;
}

int64_t rp_encode_batch(uint8_t *out, size_t cap, uint64_t n, const uint64_t *terms,
                        const uint8_t *types, const uint32_t *lengths,
                        const uint8_t *data, size_t data_len)
{
    return encode(out, cap, n, terms, 0, types, 0, lengths, data, data_len);
}

int64_t rp_encode_batch_uniform(uint8_t *out, size_t cap, uint64_t n, uint64_t term,
                                uint8_t type, const uint32_t *lengths,
                                const uint8_t *data, size_t data_len)
{
    return encode(out, cap, n, NULL, term, NULL, type, lengths, data, data_len);
}

static int fail(struct rp_result *res, int status, uint64_t at, uint64_t detail)
{
    res->status = status;
    res->error_offset = at;
    res->detail = detail;
    return status;
}

/* Decode one batch at pos; on success store its entries after the n_entries
 * already in out and return RP_OK with *next set past it. */
static int decode_one(const uint8_t *buf, size_t len, size_t pos, struct rp_entries *out,
                      struct rp_result *res, size_t *next)
{
    size_t left = len - pos;
    if (left < 16) {
        res->needed = 16;
        return fail(res, RP_SHORT, pos, left);
    }
    uint64_t n = get_u64(buf + pos + 8);
    if (n == 0) return fail(res, RP_ZERO_COUNT, pos, 0);
    if (n > RP_MAX_BATCH_ENTRIES) return fail(res, RP_TOO_MANY, pos, n);
    size_t hdr_len = 8 + 16 * (size_t)n;
    if (left - 8 < hdr_len) {
        res->needed = 8 + hdr_len;
        return fail(res, RP_SHORT, pos, left);
    }
    if (out->cap - res->n_entries < n) return fail(res, RP_MORE, pos, n);
    const uint8_t *hdr = buf + pos + 8;
    if (rp_crc32(hdr, hdr_len, 0) != get_u32(buf + pos)) return fail(res, RP_HEADER_CRC, pos, 0);
    uint64_t data_len = 0;
    uint64_t base = res->n_entries;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *e = hdr + 8 + 16 * i;
        uint32_t elen = get_u32(e + 12);
        if (e[8] < 1 || e[8] > 3) return fail(res, RP_BAD_TYPE, pos, e[8]);
        if (elen % 8 != 0) return fail(res, RP_UNALIGNED, pos, elen);
        out->terms[base + i] = get_u64(e);
        out->types[base + i] = e[8];
        out->lengths[base + i] = elen;
        out->offsets[base + i] = pos + 8 + hdr_len + data_len;
        data_len += elen;
    }
    if (left - 8 - hdr_len < data_len) {
        res->needed = 8 + hdr_len + data_len;
        return fail(res, RP_SHORT, pos, left);
    }
    const uint8_t *data = hdr + hdr_len;
    if (rp_crc32(data, (size_t)data_len, 0) != get_u32(buf + pos + 4))
        return fail(res, RP_DATA_CRC, pos, 0);
    res->n_entries += n;
    res->n_batches += 1;
    *next = pos + 8 + hdr_len + (size_t)data_len;
    return RP_OK;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static void reset(struct rp_result *res, size_t off)
{
    memset(res, 0, sizeof *res);
    res->end = off;
}

static int decode_from(const uint8_t *buf, size_t len, size_t pos, uint64_t max_batches,
                       struct rp_entries *out, struct rp_result *res)
{
    while (pos < len) {
        if (max_batches && res->n_batches == max_batches) break;
        size_t next = pos;
        int rv = decode_one(buf, len, pos, out, res, &next);
        if (rv != RP_OK) {
            if (rv != RP_MORE)
                res->tail = all_zero(buf + pos, len - pos) ? RP_TAIL_ZEROS : RP_TAIL_GARBAGE;
            return rv;
        }
        pos = next;
        res->end = pos;
    }
    res->status = RP_OK;
    res->tail = RP_TAIL_CLEAN;
    return RP_OK;
}

int rp_decode_batches(const uint8_t *buf, size_t len, size_t off, uint64_t max_batches,
                      struct rp_entries *out, struct rp_result *res)
{
    reset(res, off);
    if (off > len) return fail(res, RP_SHORT, off, 0);
    return decode_from(buf, len, off, max_batches, out, res);
}

int rp_scan_segment(const uint8_t *buf, size_t len, size_t off, struct rp_entries *out,
                    struct rp_result *res)
{
    reset(res, off);
    if (off == 0) {
        if (len == 0) return fail(res, RP_EMPTY, 0, 0);
        if (len < 8) return fail(res, RP_TOO_SMALL, 0, len);
        uint64_t format = get_u64(buf);
        if (format == 0 && all_zero(buf, len)) return fail(res, RP_EMPTY, 0, 0);
        if (format != RP_SEGMENT_FORMAT) {
            res->tail = RP_TAIL_GARBAGE;
            return fail(res, RP_BAD_FORMAT, 0, format);
        }
        off = 8;
        res->end = 8;
    }
    if (off > len) return fail(res, RP_SHORT, off, 0);
    return decode_from(buf, len, off, 0, out, res);
}

/* Cheap test of the first entry header before paying for a checksum: the
 * type is 1..3 and the length a multiple of 8.  Writers always produce this;
 * random bytes rarely do.  The three unused bytes are NOT looked at: libraft
 * leaves them uninitialised (uvEncodeBatchHeader skips them, on disk and on
 * the wire), so a valid libraft batch may hold anything there. */
static int plausible_entry(const uint8_t *e)
{
    return e[8] >= 1 && e[8] <= 3 && get_u32(e + 12) % 8 == 0;
}

int64_t rp_find_batch(const uint8_t *buf, size_t len, size_t from, size_t limit,
                      uint64_t budget)
{
    size_t stop = (limit < len - (from < len ? from : len)) ? from + limit : len;
    size_t pos = (from + 7) & ~(size_t)7;
    uint64_t spent = 0;
    for (; pos + 16 <= stop; pos += 8) {
        uint64_t n = get_u64(buf + pos + 8);
        if (n == 0 || n > RP_MAX_BATCH_ENTRIES) continue;
        size_t hdr_len = 8 + 16 * (size_t)n;
        if (len - pos - 8 < hdr_len) continue;
        const uint8_t *hdr = buf + pos + 8;
        if (!plausible_entry(hdr + 8)) continue;
        /* Bytes checksummed (and length words summed) so far: a payload made of
         * batch-like headers could otherwise cost 4 MiB per 8-byte step. */
        spent += hdr_len;
        if (spent > budget) return -2;
        if (rp_crc32(hdr, hdr_len, 0) != get_u32(buf + pos)) continue;
        uint64_t data_len = 0;
        for (uint64_t i = 0; i < n; i++) data_len += get_u32(hdr + 8 + 16 * i + 12);
        if (len - pos - 8 - hdr_len < data_len) continue;
        spent += data_len;
        if (spent > budget) return -2;
        if (rp_crc32(hdr + hdr_len, (size_t)data_len, 0) != get_u32(buf + pos + 4)) continue;
        return (int64_t)pos;
    }
    return -1;
}
