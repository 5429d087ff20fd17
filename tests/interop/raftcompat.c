/* raftcompat: drive real libraft's libuv storage engine for raftpy's
 * compatibility tests (tests/interop/test_libraft.py).
 *
 * Uses only libraft's public API (raft.h, raft/uv.h, libraft 0.15+):
 * raft_uv_tcp_init + raft_uv_init, then the raft_io methods init, load,
 * bootstrap, recover, set_term, set_vote, append, snapshot_put and close,
 * with a libuv loop run until each asynchronous callback has fired.
 *
 *   raftcompat write DIR [--no-close] [OPTIONS]
 *       bootstrap a 3-server configuration, set_term(2), set_vote(1), then
 *       append the scripted batches (see entry_for / batch_size below) with
 *       a window of requests in flight, and close cleanly.  With --no-close
 *       the process exits right after the last append is acknowledged,
 *       leaving open segments behind as a crash would.  Prints one JSON
 *       document: term, vote, the configuration, every appended entry and
 *       the indexes of the snapshots taken.
 *   raftcompat write-forever DIR [OPTIONS]
 *       same start, then appends the scripted batches without end, printing
 *       "ack N" (N = last index of the batch) once each append is durable,
 *       and "snapshot N" once a snapshot of index N is stored.  Meant to be
 *       killed.
 *     OPTIONS: --batches N (write: batches to append, default 300)
 *              --snapshot-every K (take a snapshot, io.snapshot_put, of the
 *                  last acknowledged index whenever it has grown by K since
 *                  the last one; default 0: never)
 *              --trailing T (the snapshots' trailing argument, default 100)
 *              --no-compression (raft_uv_set_snapshot_compression false)
 *   raftcompat load DIR
 *       io.init + io.load; prints one JSON document: term, vote, snapshot
 *       (null or {term, index, configuration, configuration_index, data as
 *       hex}), start_index and every entry (term, type, payload as hex).
 *   raftcompat bootstrap DIR [ID,ADDRESS,ROLE ...]
 *       io.bootstrap of the given configuration (default: the 3 servers
 *       below), then close.
 *   raftcompat recover DIR ID,ADDRESS,ROLE ...
 *       io.recover of the given configuration, then close.
 *
 * Every libraft call is checked; on error the message (raft_strerror and
 * the backend's errmsg) goes to stderr and the exit status is 1.
 */

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#define SERVER_ID 1
#define SERVER_ADDRESS "127.0.0.1:9001"
#define SEGMENT_SIZE (8 * 4096) /* small, so that a few appends fill one */
#define WINDOW 8                /* append requests in flight at once */
#define MAX_BATCH 4             /* entries per scripted batch, at most */
#define WRITE_BATCHES 300       /* scripted batches appended by `write` */
#define TERM 2
#define VOTE 1

static const struct
{
    raft_id id;
    const char *address;
    int role;
} servers[] = {
    {1, "127.0.0.1:9001", RAFT_VOTER},
    {2, "127.0.0.1:9002", RAFT_VOTER},
    {3, "127.0.0.1:9003", RAFT_STANDBY},
};
#define N_SERVERS (sizeof servers / sizeof servers[0])

static bool snapshot_compression = true; /* --no-compression clears it */

static void fail(const char *what, int rv, const char *errmsg)
{
    fprintf(stderr, "raftcompat: %s: %s (%d)", what, raft_strerror(rv), rv);
    if (errmsg != NULL && errmsg[0] != '\0') {
        fprintf(stderr, ": %s", errmsg);
    }
    fputc('\n', stderr);
    exit(1);
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size > 0 ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "raftcompat: out of memory\n");
        exit(1);
    }
    return p;
}

/* ------------------------------------------------------------ the script */

/* The entries appended after bootstrap, by log index (index 1 is the
 * bootstrap configuration).  Indexes 2..4 are the two batches of spec §3.12;
 * later ones are generated.  Payload lengths are multiples of 8, as the uv
 * backend requires.  Fills buf (at least 96 bytes) and returns the length. */
static size_t entry_for(uint64_t index, unsigned short *type, uint8_t *buf)
{
    size_t len;
    size_t j;
    switch (index) {
        case 2:
            *type = RAFT_COMMAND;
            memset(buf, 0x11, 8);
            return 8;
        case 3:
            *type = RAFT_BARRIER;
            memset(buf, 0x22, 8);
            return 8;
        case 4:
            *type = RAFT_COMMAND;
            memcpy(buf, "ABCDEFGHIJKLMNO", 16); /* 15 letters and the NUL */
            return 16;
        default:
            break;
    }
    *type = index % 7 == 0 ? RAFT_BARRIER : RAFT_COMMAND;
    len = 8 * (1 + index % 12);
    for (j = 0; j < len; j++) {
        buf[j] = (uint8_t)(index * 31 + j * 7 + 1);
    }
    return len;
}

/* Entries in scripted batch k: batch 0 = indexes 2-3, batch 1 = index 4,
 * then 1, 2, 3, 4, 1, 2, ... entries. */
static unsigned batch_size(unsigned k)
{
    if (k == 0) {
        return 2;
    }
    if (k == 1) {
        return 1;
    }
    return 1 + k % MAX_BATCH;
}

/* ------------------------------------------------------------- the node */

struct node
{
    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io io;
    bool closed;
};

static void node_open(struct node *n, const char *dir)
{
    int rv;
    memset(n, 0, sizeof *n);
    rv = uv_loop_init(&n->loop);
    if (rv != 0) {
        fprintf(stderr, "raftcompat: uv_loop_init: %s\n", uv_strerror(rv));
        exit(1);
    }
    rv = raft_uv_tcp_init(&n->transport, &n->loop);
    if (rv != 0) {
        fail("raft_uv_tcp_init", rv, n->transport.errmsg);
    }
    rv = raft_uv_init(&n->io, &n->loop, dir, &n->transport);
    if (rv != 0) {
        fail("raft_uv_init", rv, n->io.errmsg);
    }
    raft_uv_set_segment_size(&n->io, SEGMENT_SIZE);
    raft_uv_set_snapshot_compression(&n->io, snapshot_compression);
    n->io.data = n;
    rv = n->io.init(&n->io, SERVER_ID, SERVER_ADDRESS);
    if (rv != 0) {
        fail("io.init", rv, n->io.errmsg);
    }
}

/* Run the loop until *flag is set; a loop with nothing left to wait for
 * while the flag is still clear is a bug, not a reason to spin. */
static void node_run_until(struct node *n, const bool *flag)
{
    while (!*flag) {
        if (uv_run(&n->loop, UV_RUN_ONCE) == 0 && !*flag) {
            fprintf(stderr, "raftcompat: loop stopped before completion\n");
            exit(1);
        }
    }
}

static void close_cb(struct raft_io *io)
{
    struct node *n = io->data;
    n->closed = true;
}

static void node_close(struct node *n)
{
    int rv;
    n->io.close(&n->io, close_cb);
    node_run_until(n, &n->closed);
    raft_uv_close(&n->io);
    raft_uv_tcp_close(&n->transport);
    uv_run(&n->loop, UV_RUN_DEFAULT); /* let the handles finish closing */
    rv = uv_loop_close(&n->loop);
    if (rv != 0) {
        fprintf(stderr, "raftcompat: uv_loop_close: %s\n", uv_strerror(rv));
        exit(1);
    }
}

/* Free what io.load returned: entries loaded together share one batch
 * allocation, which is released once. */
static void free_loaded(struct raft_snapshot *snapshot,
                        struct raft_entry *entries,
                        size_t n_entries)
{
    void *last_batch = NULL;
    size_t i;
    for (i = 0; i < n_entries; i++) {
        if (entries[i].batch != NULL && entries[i].batch != last_batch) {
            last_batch = entries[i].batch;
            raft_free(last_batch);
        }
    }
    raft_free(entries);
    if (snapshot != NULL) {
        raft_configuration_close(&snapshot->configuration);
        for (i = 0; i < snapshot->n_bufs; i++) {
            raft_free(snapshot->bufs[i].base);
        }
        raft_free(snapshot->bufs);
        raft_free(snapshot);
    }
}

static void print_hex(const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t i;
    for (i = 0; i < len; i++) {
        printf("%02x", p[i]);
    }
}

/* "configuration": [{id, address, role}, ...] */
static void print_configuration(const struct raft_configuration *conf)
{
    unsigned i;
    printf("\"configuration\": [");
    for (i = 0; i < conf->n; i++) {
        printf("%s{\"id\": %" PRIu64 ", \"address\": \"%s\", \"role\": %d}",
               i == 0 ? "" : ", ", (uint64_t)conf->servers[i].id,
               conf->servers[i].address, conf->servers[i].role);
    }
    printf("]");
}

/* The configuration of the servers table above. */
static void default_configuration(struct raft_configuration *conf)
{
    size_t i;
    int rv;
    raft_configuration_init(conf);
    for (i = 0; i < N_SERVERS; i++) {
        rv = raft_configuration_add(conf, servers[i].id, servers[i].address,
                                    servers[i].role);
        if (rv != 0) {
            fail("raft_configuration_add", rv, NULL);
        }
    }
}

/* ---------------------------------------------------------------- load */

static int cmd_load(const char *dir)
{
    struct node n;
    raft_term term;
    raft_id vote;
    struct raft_snapshot *snapshot = NULL;
    raft_index start_index;
    struct raft_entry *entries = NULL;
    size_t n_entries = 0;
    size_t i;
    int rv;

    node_open(&n, dir);
    rv = n.io.load(&n.io, &term, &vote, &snapshot, &start_index, &entries,
                   &n_entries);
    if (rv != 0) {
        fail("io.load", rv, n.io.errmsg);
    }
    printf("{\"term\": %" PRIu64 ", \"vote\": %" PRIu64 ", \"snapshot\": ",
           (uint64_t)term, (uint64_t)vote);
    if (snapshot == NULL) {
        printf("null");
    } else {
        printf("{\"term\": %" PRIu64 ", \"index\": %" PRIu64 ", ",
               (uint64_t)snapshot->term, (uint64_t)snapshot->index);
        print_configuration(&snapshot->configuration);
        printf(", \"configuration_index\": %" PRIu64 ", \"data\": \"",
               (uint64_t)snapshot->configuration_index);
        for (i = 0; i < snapshot->n_bufs; i++) {
            print_hex(snapshot->bufs[i].base, snapshot->bufs[i].len);
        }
        printf("\"}");
    }
    printf(", \"start_index\": %" PRIu64 ", \"entries\": [",
           (uint64_t)start_index);
    for (i = 0; i < n_entries; i++) {
        printf("%s\n  {\"term\": %" PRIu64 ", \"type\": %u, \"payload\": \"",
               i == 0 ? "" : ",", (uint64_t)entries[i].term,
               (unsigned)entries[i].type);
        print_hex(entries[i].buf.base, entries[i].buf.len);
        printf("\"}");
    }
    printf("]}\n");
    free_loaded(snapshot, entries, n_entries);
    node_close(&n);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ------------------------------------------------------------ appending */

struct appender;

/* Snapshot data of index: SNAPSHOT_BASE_LEN bytes and a little more, more
 * than one LZ4 block (64 KiB) and compressible, given to io.snapshot_put in
 * two buffers.  test_store_interop.py's snapshot_data() must match. */
#define SNAPSHOT_BASE_LEN 70000
#define MAX_SNAPSHOTS 64

static size_t snapshot_len(uint64_t index)
{
    return SNAPSHOT_BASE_LEN + (size_t)(index % 16) * 8;
}

/* The first half repeats (LZ4 compresses it), the second half is noise
 * (LZ4 stores it). */
static uint8_t snapshot_byte(uint64_t index, size_t j)
{
    uint32_t x;
    if (j < snapshot_len(index) / 2) {
        return (uint8_t)(index * 13 + j * 5 + 3 + (j >> 12));
    }
    x = (uint32_t)(index * 2654435761u + j * 40503u);
    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    x ^= x >> 12;
    return (uint8_t)(x >> 24);
}

struct put
{
    struct raft_io_snapshot_put req;
    struct raft_snapshot snapshot;
    struct raft_buffer bufs[2];
    struct appender *appender;
    bool busy;
};

struct slot
{
    struct raft_io_append req;
    struct raft_entry entries[MAX_BATCH];
    struct appender *appender;
    unsigned n;
    uint64_t last_index;
    bool busy;
};

struct appender
{
    struct node *node;
    struct slot slots[WINDOW];
    uint64_t next_index;  /* index of the next entry to append */
    uint64_t acked_index; /* every entry up to here is durable */
    unsigned next_batch;  /* scripted batch number to append next */
    unsigned n_batches;   /* batches to append; 0 = without end */
    unsigned in_flight;
    bool print_acks;
    bool done;
    /* Snapshots: one put at a time, of the last acknowledged index. */
    unsigned snapshot_every; /* 0: no snapshots */
    unsigned trailing;
    struct put put;
    uint64_t snapshot_index; /* of the last one stored (0: none) */
    uint64_t snapshots[MAX_SNAPSHOTS];
    unsigned n_snapshots;
};

static void append_cb(struct raft_io_append *req, int status);

static bool more_batches(const struct appender *a)
{
    return a->n_batches == 0 || a->next_batch < a->n_batches;
}

static void maybe_done(struct appender *a)
{
    if (!more_batches(a) && a->in_flight == 0 && !a->put.busy) {
        a->done = true;
    }
}

static void put_cb(struct raft_io_snapshot_put *req, int status)
{
    struct put *p = req->data;
    struct appender *a = p->appender;
    unsigned i;

    if (status != 0) {
        fail("snapshot_put callback", status, a->node->io.errmsg);
    }
    for (i = 0; i < p->snapshot.n_bufs; i++) {
        free(p->bufs[i].base);
    }
    raft_configuration_close(&p->snapshot.configuration);
    p->busy = false;
    a->snapshot_index = p->snapshot.index;
    if (a->n_snapshots < MAX_SNAPSHOTS) {
        a->snapshots[a->n_snapshots++] = p->snapshot.index;
    }
    if (a->print_acks) {
        printf("snapshot %" PRIu64 "\n", (uint64_t)p->snapshot.index);
        fflush(stdout);
    }
    maybe_done(a);
}

/* Store a snapshot of the last acknowledged index (term TERM, the bootstrap
 * configuration committed at index 1) if it is time for one. */
static void maybe_snapshot(struct appender *a)
{
    struct put *p = &a->put;
    uint64_t index = a->acked_index;
    size_t len;
    size_t cut;
    size_t j;
    uint8_t *data;
    int rv;

    if (a->snapshot_every == 0 || p->busy ||
        index < a->snapshot_index + a->snapshot_every) {
        return;
    }
    len = snapshot_len(index);
    cut = len / 3;
    data = xmalloc(len);
    for (j = 0; j < len; j++) {
        data[j] = snapshot_byte(index, j);
    }
    p->bufs[0].base = data;
    p->bufs[0].len = cut;
    p->bufs[1].base = xmalloc(len - cut);
    p->bufs[1].len = len - cut;
    memcpy(p->bufs[1].base, data + cut, len - cut);
    p->snapshot.index = index;
    p->snapshot.term = TERM;
    default_configuration(&p->snapshot.configuration);
    p->snapshot.configuration_index = 1;
    p->snapshot.bufs = p->bufs;
    p->snapshot.n_bufs = 2;
    p->appender = a;
    p->busy = true;
    p->req.data = p;
    rv = a->node->io.snapshot_put(&a->node->io, a->trailing, &p->req,
                                  &p->snapshot, put_cb);
    if (rv != 0) {
        fail("io.snapshot_put", rv, a->node->io.errmsg);
    }
}

/* Append the next scripted batch using the free slot s. */
static void submit(struct appender *a, struct slot *s)
{
    uint8_t buf[96];
    unsigned i;
    int rv;

    s->n = batch_size(a->next_batch);
    for (i = 0; i < s->n; i++) {
        struct raft_entry *e = &s->entries[i];
        size_t len = entry_for(a->next_index + i, &e->type, buf);
        e->term = TERM;
        e->buf.len = len;
        e->buf.base = xmalloc(len);
        memcpy(e->buf.base, buf, len);
        e->batch = NULL;
    }
    s->last_index = a->next_index + s->n - 1;
    s->appender = a;
    s->busy = true;
    s->req.data = s;
    rv = a->node->io.append(&a->node->io, &s->req, s->entries, s->n, append_cb);
    if (rv != 0) {
        fail("io.append", rv, a->node->io.errmsg);
    }
    a->next_index += s->n;
    a->next_batch++;
    a->in_flight++;
}

static void append_cb(struct raft_io_append *req, int status)
{
    struct slot *s = req->data;
    struct appender *a = s->appender;
    unsigned i;

    if (status != 0) {
        fail("append callback", status, a->node->io.errmsg);
    }
    /* Appends complete in the order they were made. */
    if (s->last_index != a->acked_index + s->n) {
        fprintf(stderr,
                "raftcompat: append ending at %" PRIu64
                " completed after %" PRIu64 "\n",
                s->last_index, a->acked_index);
        exit(1);
    }
    a->acked_index = s->last_index;
    for (i = 0; i < s->n; i++) {
        free(s->entries[i].buf.base);
    }
    s->busy = false;
    a->in_flight--;
    if (a->print_acks) {
        printf("ack %" PRIu64 "\n", a->acked_index);
        fflush(stdout);
    }
    maybe_snapshot(a);
    if (more_batches(a)) {
        submit(a, s);
    }
    maybe_done(a);
}

/* Append the scripted batches (all of them, or without end if n_batches is
 * 0) after the bootstrap entry, WINDOW requests in flight at a time. */
struct options
{
    bool clean_close;
    unsigned batches;
    unsigned snapshot_every;
    unsigned trailing;
};

static void append_script(struct node *n, struct appender *a,
                          unsigned n_batches, bool print_acks,
                          const struct options *o)
{
    unsigned i;
    memset(a, 0, sizeof *a);
    a->node = n;
    a->next_index = 2;
    a->acked_index = 1;
    a->n_batches = n_batches;
    a->print_acks = print_acks;
    a->snapshot_every = o->snapshot_every;
    a->trailing = o->trailing;
    for (i = 0; i < WINDOW && more_batches(a); i++) {
        submit(a, &a->slots[i]);
    }
    node_run_until(n, &a->done);
}

/* ------------------------------------------------------------------ write */

/* First process lifetime: bootstrap (what raft_bootstrap does).  Second:
 * load, which must return the bootstrap entry, then term and vote. */
static void bootstrap_and_vote(struct node *n, const char *dir)
{
    struct raft_configuration conf;
    raft_term term;
    raft_id vote;
    struct raft_snapshot *snapshot = NULL;
    raft_index start_index;
    struct raft_entry *entries = NULL;
    size_t n_entries = 0;
    int rv;

    node_open(n, dir);
    default_configuration(&conf);
    rv = n->io.bootstrap(&n->io, &conf);
    if (rv != 0) {
        fail("io.bootstrap", rv, n->io.errmsg);
    }
    raft_configuration_close(&conf);
    node_close(n);

    node_open(n, dir);
    rv = n->io.load(&n->io, &term, &vote, &snapshot, &start_index, &entries,
                    &n_entries);
    if (rv != 0) {
        fail("io.load", rv, n->io.errmsg);
    }
    if (term != 1 || vote != 0 || snapshot != NULL || start_index != 1 ||
        n_entries != 1 || entries[0].type != RAFT_CHANGE) {
        fprintf(stderr, "raftcompat: unexpected state after bootstrap\n");
        exit(1);
    }
    free_loaded(snapshot, entries, n_entries);
    rv = n->io.set_term(&n->io, TERM);
    if (rv != 0) {
        fail("io.set_term", rv, n->io.errmsg);
    }
    rv = n->io.set_vote(&n->io, VOTE);
    if (rv != 0) {
        fail("io.set_vote", rv, n->io.errmsg);
    }
}

static void print_written(const struct appender *a)
{
    struct raft_configuration conf;
    uint64_t last_index = a->acked_index;
    uint8_t buf[96];
    unsigned short type;
    uint64_t index;
    size_t len;
    unsigned i;

    printf("{\"term\": %d, \"vote\": %d, ", TERM, VOTE);
    default_configuration(&conf);
    print_configuration(&conf);
    raft_configuration_close(&conf);
    printf(", \"snapshots\": [");
    for (i = 0; i < a->n_snapshots; i++) {
        printf("%s%" PRIu64, i == 0 ? "" : ", ", a->snapshots[i]);
    }
    printf("], \"entries\": [");
    for (index = 2; index <= last_index; index++) {
        len = entry_for(index, &type, buf);
        printf("%s\n  {\"index\": %" PRIu64 ", \"term\": %d, \"type\": %u, "
               "\"payload\": \"",
               index == 2 ? "" : ",", index, TERM, (unsigned)type);
        print_hex(buf, len);
        printf("\"}");
    }
    printf("]}\n");
}

static int cmd_write(const char *dir, const struct options *o)
{
    struct node n;
    struct appender a;

    bootstrap_and_vote(&n, dir);
    append_script(&n, &a, o->batches, false, o);
    print_written(&a);
    if (fflush(stdout) != 0) {
        return 1;
    }
    if (!o->clean_close) {
        _exit(0); /* as a crash would: open segments stay as they are */
    }
    node_close(&n);
    return 0;
}

static int cmd_write_forever(const char *dir, const struct options *o)
{
    struct node n;
    struct appender a;

    bootstrap_and_vote(&n, dir);
    printf("ready\n");
    fflush(stdout);
    append_script(&n, &a, 0, true, o);
    return 1; /* not reached: the script has no end */
}

/* ------------------------------------------------- bootstrap and recover */

/* Parse "ID,ADDRESS,ROLE" arguments into conf. */
static bool parse_configuration(struct raft_configuration *conf, int argc,
                                char *argv[])
{
    int k;
    int rv;
    raft_configuration_init(conf);
    for (k = 0; k < argc; k++) {
        char address[256];
        unsigned long long id;
        int role;
        int end = 0;
        if (sscanf(argv[k], "%llu,%255[^,],%d%n", &id, address, &role,
                   &end) != 3 ||
            argv[k][end] != '\0') {
            fprintf(stderr, "raftcompat: bad server '%s' (ID,ADDRESS,ROLE)\n",
                    argv[k]);
            return false;
        }
        rv = raft_configuration_add(conf, (raft_id)id, address, role);
        if (rv != 0) {
            fail("raft_configuration_add", rv, NULL);
        }
    }
    return true;
}

static int cmd_bootstrap_or_recover(const char *dir, bool recover, int argc,
                                    char *argv[])
{
    struct node n;
    struct raft_configuration conf;
    int rv;

    if (argc == 0 && !recover) {
        default_configuration(&conf);
    } else if (argc == 0 || !parse_configuration(&conf, argc, argv)) {
        return 2;
    }
    node_open(&n, dir);
    if (recover) {
        rv = n.io.recover(&n.io, &conf);
        if (rv != 0) {
            fail("io.recover", rv, n.io.errmsg);
        }
    } else {
        rv = n.io.bootstrap(&n.io, &conf);
        if (rv != 0) {
            fail("io.bootstrap", rv, n.io.errmsg);
        }
    }
    raft_configuration_close(&conf);
    node_close(&n);
    return 0;
}

/* ------------------------------------------------------------------ main */

static int usage(void)
{
    fprintf(stderr,
            "usage: raftcompat write DIR [--no-close] [OPTIONS] | "
            "write-forever DIR [OPTIONS] | load DIR |\n"
            "       bootstrap DIR [ID,ADDRESS,ROLE ...] | "
            "recover DIR ID,ADDRESS,ROLE ...\n"
            "OPTIONS: --batches N --snapshot-every K --trailing T "
            "--no-compression\n");
    return 2;
}

static bool parse_count(const char *arg, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v > 100000000UL) {
        return false;
    }
    *out = (unsigned)v;
    return true;
}

/* Parse the options of write and write-forever (argv[3] onwards). */
static bool parse_options(int argc, char *argv[], bool forever,
                          struct options *o)
{
    int k;
    o->clean_close = true;
    o->batches = WRITE_BATCHES;
    o->snapshot_every = 0;
    o->trailing = 100;
    for (k = 3; k < argc; k++) {
        const char *arg = argv[k];
        if (strcmp(arg, "--no-close") == 0 && !forever) {
            o->clean_close = false;
        } else if (strcmp(arg, "--no-compression") == 0) {
            snapshot_compression = false;
        } else if (k + 1 < argc && strcmp(arg, "--batches") == 0 && !forever) {
            if (!parse_count(argv[++k], &o->batches) || o->batches == 0) {
                return false;
            }
        } else if (k + 1 < argc && strcmp(arg, "--snapshot-every") == 0) {
            if (!parse_count(argv[++k], &o->snapshot_every)) {
                return false;
            }
        } else if (k + 1 < argc && strcmp(arg, "--trailing") == 0) {
            if (!parse_count(argv[++k], &o->trailing) || o->trailing == 0) {
                return false;
            }
        } else {
            return false;
        }
    }
    return true;
}

int main(int argc, char *argv[])
{
    struct options o;
    if (argc < 3) {
        return usage();
    }
    if (argc == 3 && strcmp(argv[1], "load") == 0) {
        return cmd_load(argv[2]);
    }
    if (strcmp(argv[1], "write") == 0 || strcmp(argv[1], "write-forever") == 0) {
        bool forever = strcmp(argv[1], "write-forever") == 0;
        if (!parse_options(argc, argv, forever, &o)) {
            return usage();
        }
        return forever ? cmd_write_forever(argv[2], &o) : cmd_write(argv[2], &o);
    }
    if (strcmp(argv[1], "bootstrap") == 0 || strcmp(argv[1], "recover") == 0) {
        int rv = cmd_bootstrap_or_recover(argv[2], strcmp(argv[1], "recover") == 0,
                                          argc - 3, argv + 3);
        return rv == 2 ? usage() : rv;
    }
    return usage();
}
