/* The per-entry part of libraft's AppendEntries message (spec §4.4), one call
 * per message each way.  The rest of the wire format is a handful of fixed
 * words per message and stays in Python (raftpy/io/wire.py).
 *
 * AppendEntries frame (all integers little-endian):
 *
 *   offset  size  field
 *        0     8  type word = 1
 *        8     8  H = 48 + 16n (header length, the bytes from offset 16 on)
 *       16     8  term
 *       24     8  prev_log_index
 *       32     8  prev_log_term
 *       40     8  leader_commit
 *       48     8  n
 *       56  16n   n x descriptor:  u64 term | u8 type (1..3) | 3 zero bytes | u32 length
 *  56+16n      8  unused (libraft leaves it uninitialised; we send zeros)
 *  64+16n      -  payload: the n entry payloads back to back, Σ length bytes
 *
 * libraft frames the payload as the plain sum of the lengths but locates
 * entry i at the sum of the earlier lengths each rounded up to 8.  The
 * decoder reproduces that and rejects an entry that would then end past the
 * payload (libraft reads out of bounds there).  That happens exactly when a
 * non-empty entry follows one whose length is not a multiple of 8, which is
 * the rule the encoder refuses; for every frame accepted, the padded offsets
 * equal the plain running sums. */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "native.h"

#define AE_TYPE 1
#define AE_FIXED 48         /* header bytes besides the descriptors */
#define AE_HEAD (16 + AE_FIXED)


static int fail(struct rp_result *res, int status, uint64_t index, uint64_t detail)
{
    res->status = status;
    res->error_offset = index;
    res->detail = detail;
    return status;
}

uint64_t rp_append_entries_head_size(uint64_t n)
{
    return AE_HEAD + 16 * n;
}

int64_t rp_encode_append_entries(uint8_t *out, size_t cap, uint64_t term,
                                 uint64_t prev_log_index, uint64_t prev_log_term,
                                 uint64_t leader_commit, uint64_t n, const uint64_t *terms,
                                 const uint8_t *types, const uint64_t *lengths)
{
    if (n > (UINT64_MAX - AE_HEAD) / 16) return -E2BIG;
    uint64_t size = rp_append_entries_head_size(n);
    if (size > cap) return -ENOBUFS;
    int unaligned = 0;
    uint8_t *d = out + AE_HEAD - 8;
    for (uint64_t i = 0; i < n; i++, d += 16) {
        uint64_t len = lengths[i];
        /* A bad type, a length the u32 field cannot hold, or a non-empty
         * entry libraft would look for at a padded offset. */
        if (types[i] < 1 || types[i] > 3 || len > UINT32_MAX || (len && unaligned))
            return -EINVAL;
        unaligned |= len % 8 != 0;
        put_u64(d, terms[i]);
        d[8] = types[i];
        d[9] = d[10] = d[11] = 0;
        put_u32(d + 12, (uint32_t)len);
    }
    put_u64(out, AE_TYPE);
    put_u64(out + 8, AE_FIXED + 16 * n);
    put_u64(out + 16, term);
    put_u64(out + 24, prev_log_index);
    put_u64(out + 32, prev_log_term);
    put_u64(out + 40, leader_commit);
    put_u64(out + 48, n);
    put_u64(d, 0);
    return (int64_t)size;
}

int rp_decode_append_entries(const uint8_t *buf, size_t len, size_t desc_off, uint64_t n,
                             struct rp_entries *out, struct rp_result *res)
{
    memset(res, 0, sizeof *res);
    if (desc_off > len || n > (len - desc_off) / 16) return fail(res, RP_SHORT, 0, n);
    if (n > out->cap) return fail(res, RP_MORE, 0, n);
    const uint8_t *d = buf + desc_off;
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) total += get_u32(d + 16 * i + 12);
    uint64_t at = 0;
    for (uint64_t i = 0; i < n; i++, d += 16) {
        uint32_t elen = get_u32(d + 12);
        if (d[8] < 1 || d[8] > 3) return fail(res, RP_BAD_TYPE, i, d[8]);
        if (elen && at + elen > total) {
            res->end = at;
            res->needed = total;
            return fail(res, RP_OVERRUN, i, elen);
        }
        out->terms[i] = get_u64(d);
        out->types[i] = d[8];
        out->lengths[i] = elen;
        out->offsets[i] = at;
        at += ((uint64_t)elen + 7) & ~(uint64_t)7;
    }
    res->n_entries = n;
    res->needed = total;
    return RP_OK;
}
