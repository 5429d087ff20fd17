/* raftpy's C engine: the functions raftpy calls through cffi.
 *
 * Rules kept by every function here: no global mutable state (the CRC tables
 * are const), no allocation (callers pass every buffer, so the hot path never
 * allocates), and errors are returned as 0/positive on success or -errno on
 * failure.  Decoders never read outside [buf, buf+len) whatever the input.
 *
 * Byte layouts (libraft, spec §3.5; all integers little-endian):
 *
 *   segment      := u64 format (=1) , batch*
 *   batch        := u32 header_crc , u32 data_crc , header , data
 *   header       := u64 n (1..262144) , n x entry_header            (8 + 16n bytes)
 *   entry_header := u64 term , u8 type (1..3) , 3 unused bytes , u32 length
 *   data         := payload_1 || ... || payload_n    (each length a multiple of 8)
 *
 * header_crc covers the header bytes, data_crc all payload bytes, both with
 * rp_crc32 (CRC-32, polynomial 0x04C11DB7, MSB first, init 0, no final XOR).
 */
#ifndef RP_NATIVE_H
#define RP_NATIVE_H

#include <stddef.h>
#include <stdint.h>

/* Limits from libraft. */
#define RP_SEGMENT_FORMAT 1
#define RP_MAX_BATCH_ENTRIES 262144 /* 8 MiB / 32, libraft's sanity cap */

/* Why a decode or scan stopped.  0 means success. */
enum rp_status {
    RP_OK = 0,
    RP_MORE = 1,            /* output arrays full: call again from res->end */
    RP_SHORT = 2,           /* input ends inside a batch (libraft: short read) */
    RP_ZERO_COUNT = 3,      /* batch entry count is zero */
    RP_TOO_MANY = 4,        /* batch entry count above RP_MAX_BATCH_ENTRIES */
    RP_HEADER_CRC = 5,      /* header checksum mismatch */
    RP_DATA_CRC = 6,        /* data checksum mismatch */
    RP_BAD_TYPE = 7,        /* entry type outside 1..3 (libraft: MALFORMED) */
    RP_UNALIGNED = 8,       /* payload length not a multiple of 8 */
    RP_BAD_FORMAT = 9,      /* segment format word is not 1 */
    RP_EMPTY = 10,          /* file is empty, or an open segment never written */
    RP_TOO_SMALL = 11,      /* file shorter than the 8-byte format word */
    RP_OVERRUN = 12,        /* wire: an entry would end past the AppendEntries payload */
};

/* Where a scanned segment ends. */
enum rp_tail {
    RP_TAIL_CLEAN = 0,      /* last batch ends exactly at the end of the input */
    RP_TAIL_ZEROS = 1,      /* after the last good batch only zero bytes remain */
    RP_TAIL_GARBAGE = 2,    /* a bad batch with non-zero bytes at or after it */
};

/* Result of rp_decode_batch / rp_scan_segment. */
struct rp_result {
    int status;             /* enum rp_status */
    int tail;               /* enum rp_tail, set when status is not RP_OK/RP_MORE */
    uint64_t n_entries;     /* entries written to the output arrays */
    uint64_t n_batches;     /* batches fully decoded */
    uint64_t end;           /* offset just past the last good batch */
    uint64_t error_offset;  /* offset of the batch that failed */
    uint64_t detail;        /* the bad value (count, type, length, format) */
    uint64_t needed;        /* for RP_SHORT: bytes the batch needed past error_offset */
};

/* Output arrays of decoded entries (struct of arrays: cheap to unpack). */
struct rp_entries {
    uint64_t *terms;
    uint64_t *offsets;      /* payload offset within the input buffer */
    uint32_t *lengths;
    uint8_t *types;
    uint64_t cap;           /* capacity of each array */
};

uint32_t rp_crc32(const void *buf, size_t len, uint32_t crc);

/* Size of an encoded batch with n entries and data_len payload bytes. */
uint64_t rp_batch_size(uint64_t n, uint64_t data_len);

/* Encode one batch into out[0..cap).  data holds the n payloads back to back;
 * lengths[i] gives each one's size.  Returns the encoded size, -EINVAL for a
 * bad count, type, length not a multiple of 8 or lengths not summing to
 * data_len, -ENOBUFS when cap is too small. */
int64_t rp_encode_batch(uint8_t *out, size_t cap, uint64_t n, const uint64_t *terms,
                        const uint8_t *types, const uint32_t *lengths,
                        const uint8_t *data, size_t data_len);

/* Same, but every entry has the same term and type (the common case). */
int64_t rp_encode_batch_uniform(uint8_t *out, size_t cap, uint64_t n, uint64_t term,
                                uint8_t type, const uint32_t *lengths,
                                const uint8_t *data, size_t data_len);

/* Decode batches from buf[off..len) until the input ends exactly, a bad batch
 * is met, or the arrays are full (RP_MORE).  At most max_batches batches are
 * decoded (0 = no limit).  Never reads outside buf. */
int rp_decode_batches(const uint8_t *buf, size_t len, size_t off, uint64_t max_batches,
                      struct rp_entries *out, struct rp_result *res);

/* Scan a whole segment file image: check the format word, then decode batches
 * as rp_decode_batches does, and classify the tail.  Call first with off = 0;
 * after RP_MORE call again with off = res->end. */
int rp_scan_segment(const uint8_t *buf, size_t len, size_t off,
                    struct rp_entries *out, struct rp_result *res);

/* Look for the next offset in [from, min(len, from+limit)), on an 8-byte
 * boundary, where a whole valid batch starts (count, both checksums).
 * Returns that offset, -1 if there is none, or -2 if more than budget bytes
 * would have had to be checksummed to tell (a payload full of batch-like
 * headers makes each 8-byte step cost up to 4 MiB).  Used on the error path
 * only, to tell a torn tail (nothing valid after the damage) from corruption
 * in the middle. */
int64_t rp_find_batch(const uint8_t *buf, size_t len, size_t from, size_t limit,
                      uint64_t budget);

/* ---- Wire: AppendEntries entry descriptors (layout in wire.c) --------- */

/* Bytes from the type word through the unused trailing word: 64 + 16n. */
uint64_t rp_append_entries_head_size(uint64_t n);

/* Write an AppendEntries frame head (type word, H, term, prev_log_index,
 * prev_log_term, leader_commit, n, the n descriptors, the unused word) into
 * out[0..cap).  Returns its size, -ENOBUFS if cap is too small, -E2BIG for an
 * absurd n, or -EINVAL for an entry type outside 1..3, a length of 2^32 or
 * more, or a non-empty entry after one whose length is not a multiple of 8
 * (the caller finds which entry: that is the error path only). */
int64_t rp_encode_append_entries(uint8_t *out, size_t cap, uint64_t term,
                                 uint64_t prev_log_index, uint64_t prev_log_term,
                                 uint64_t leader_commit, uint64_t n, const uint64_t *terms,
                                 const uint8_t *types, const uint64_t *lengths);

/* Decode the n descriptors at buf[desc_off..) into out (offsets relative to
 * the payload start, libraft's padded running sums).  Returns RP_OK with
 * res->n_entries = n and res->needed = the payload size, or RP_SHORT (the
 * descriptors do not fit in buf; detail = n), RP_MORE (n > out->cap; detail
 * = n), RP_BAD_TYPE (error_offset = index, detail = type) or RP_OVERRUN
 * (entry error_offset of detail bytes at payload offset res->end would end
 * past the res->needed-byte payload).  Never reads outside buf. */
int rp_decode_append_entries(const uint8_t *buf, size_t len, size_t desc_off, uint64_t n,
                             struct rp_entries *out, struct rp_result *res);

/* ---- Linux AIO (io_setup/io_submit, completion on an eventfd) ---------- */

struct rp_aio {
    uint64_t ctx;           /* aio_context_t */
    int efd;                /* eventfd signalled on completion */
    unsigned depth;         /* max in-flight requests */
};

#define RP_AIO_DSYNC 1      /* RWF_DSYNC: the write is durable when it completes */
#define RP_AIO_NOWAIT 2     /* RWF_NOWAIT: fail with -EAGAIN rather than block */

int rp_aio_init(struct rp_aio *aio, unsigned depth);
void rp_aio_close(struct rp_aio *aio);
/* Submit one pwrite; completion carries user_data.  Returns 0 or -errno. */
int rp_aio_submit(struct rp_aio *aio, int fd, const void *buf, size_t len, uint64_t offset,
                  uint64_t user_data, int flags);
/* Drain the eventfd and reap up to max completions without blocking.
 * Returns the number reaped (>= 0) or -errno. */
int rp_aio_reap(struct rp_aio *aio, uint64_t *user_data, int64_t *results, unsigned max);
/* Probe: does this fd take an AIO write with RWF_NOWAIT|RWF_DSYNC?  Blocks
 * for the answer.  Returns 1 yes, 0 no, -errno on a real error. */
int rp_aio_probe(int fd, const void *buf, size_t len);
/* Blocking fallback: pwrite everything, then fdatasync.  Returns 0 or -errno.
 * cffi releases the GIL around it, so it runs in a worker thread. */
int rp_pwrite_sync(int fd, const void *buf, size_t len, uint64_t offset);
/* Benchmark floor: n durable writes one at a time, sync or AIO + epoll, in C;
 * lat[i] the seconds of write i.  Returns 0 or -errno (aio.c). */
int rp_durable_write_loop(int fd, const void *buf, size_t len, unsigned n, int use_aio,
                          double *lat);

/* The filesystem type (statfs f_type) of the file behind fd, or -errno. */
int64_t rp_fs_type(int fd);

/* The whole file at path in memory of its own (csrc/image.c): returns it,
 * with *cap its size (free with rp_image_free(p, *cap)) and *got the bytes
 * read (fewer if the file shrank); or NULL with *got = 0 (empty file) or
 * -errno.  Files of RP_IMAGE_MAP_MIN bytes or more get a mapping of their own. */
#define RP_IMAGE_MAP_MIN (1u << 20)
uint8_t *rp_image_read(const char *path, uint64_t *cap, int64_t *got);
void rp_image_free(uint8_t *p, size_t cap);
/* rp_image_read, then (when it returned memory) the first rp_scan_segment
 * call over what was read, its status in *status: the reader thread of load
 * takes the GIL back once for both. */
uint8_t *rp_image_scan(const char *path, uint64_t *cap, int64_t *got,
                       struct rp_entries *out, struct rp_result *res, int *status);

#endif
