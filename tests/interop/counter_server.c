/* counter_server: a libraft 0.15 server with example/server.py's counter, for
 * the mixed-cluster tests (tests/interop/test_mixed_cluster.py).
 *
 *   counter_server DIR ID --address A --control HOST:PORT --cluster "1=A,2=B"
 *                  [--join] [--snapshot-threshold N] [--snapshot-trailing N]
 *                  [--install-snapshot-timeout-ms MS]
 *
 * Real libraft I/O only: raft_uv_init + raft_uv_tcp_init on a libuv loop,
 * raft_init, raft_bootstrap with the --cluster configuration (unless --join;
 * already bootstrapped is fine), raft_start.  Pre-vote on, libraft's default
 * timeouts, as example/server.py.  IPv4 literal addresses only (libraft 0.15).
 *
 * State machine: one u64 counter; a command is an 8-byte little-endian
 * increment, its result the counter after it; a snapshot is the counter's 8
 * bytes.  The control port speaks example/server.py's protocol, one JSON
 * object per line and one reply line each, in order: status, apply n, barrier,
 * transfer id, add id address, assign id role, remove id.  The requests are
 * hand-parsed (flat objects with number and plain string values only; the
 * tests send nothing else): this is a test tool, not a JSON library.
 * A connection handles one request at a time; it is freed only once it is
 * closed and its request's callbacks have all fired (libraft owns the
 * request structs until then).
 *
 * Bench mode (benchmarks/cluster.py; --bench-in-flight W replaces --control):
 *
 *   counter_server DIR ID --address A --cluster "1=A,2=B,3=C"
 *                  --bench-in-flight W --bench-size BYTES --bench-warmup N
 *                  --bench-count N --bench-max-s S [--snapshot-...]
 *
 * The leader-local workload of cluster.py, inside this process: once a leader
 * is known, the leader keeps W raft_apply requests in flight (each callback
 * submits the next one), first a warm-up of N entries (bounded by 10 s), then
 * prints {"ev": "warm"}, waits for the line "go" on stdin and runs the counted
 * part (bounded by --bench-max-s), timing every request from raft_apply to its
 * callback with CLOCK_MONOTONIC, and prints {"ev": "result", ...} with the
 * same keys as cluster.py's Python nodes (percentiles by the same rule).  A
 * command is BYTES long: the 8-byte increment 1, then padding.  stdout carries
 * only these JSON lines; the server closes when its stdin ends.
 */
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE_MAX_BYTES 4096
#define APPLY_MAX 4096

static struct raft raft;
static uint64_t counter;
static unsigned long long self_id;
static uv_loop_t *loop;
static int bench_on; /* bench mode: commands are at least 8 bytes, padding ignored */

/* -- the state machine --------------------------------------------------- */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    uint64_t inc = 0;
    (void)fsm;
    if (buf->len != 8 && !(bench_on && buf->len > 8)) {
        return RAFT_MALFORMED;
    }
    for (int i = 7; i >= 0; i--) {
        inc = (inc << 8) | ((const uint8_t *)buf->base)[i];
    }
    counter += inc;
    *result = (void *)(uintptr_t)counter; /* 64-bit hosts: the value itself */
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    uint8_t *data = raft_malloc(8);
    (void)fsm;
    *bufs = raft_malloc(sizeof **bufs);
    if (data == NULL || *bufs == NULL) {
        return RAFT_NOMEM;
    }
    for (int i = 0; i < 8; i++) {
        data[i] = (uint8_t)(counter >> (8 * i));
    }
    (*bufs)[0].base = data;
    (*bufs)[0].len = 8;
    *n = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    uint64_t value = 0;
    (void)fsm;
    if (buf->len != 8) {
        return RAFT_MALFORMED;
    }
    for (int i = 7; i >= 0; i--) {
        value = (value << 8) | ((const uint8_t *)buf->base)[i];
    }
    counter = value;
    raft_free(buf->base); /* restore owns the buffer (raft.h) */
    return 0;
}

/* -- control connections -------------------------------------------------- */

struct conn {
    uv_tcp_t tcp;
    char line[LINE_MAX_BYTES];
    size_t used;
    int closed;
    int busy; /* a request is in flight: reading is paused */
};

struct op {
    struct conn *conn;
    unsigned total, done, failed_status;
    raft_id target;
    uint64_t values[APPLY_MAX];
    struct raft_apply applies[APPLY_MAX];
    struct raft_barrier barrier;
    struct raft_change change;
    struct raft_transfer transfer;
};

static void conn_free_if_done(struct conn *c);
static void conn_process(struct conn *c);

static void on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    c->closed = 2;
    conn_free_if_done(c);
}

static void conn_close(struct conn *c)
{
    if (c->closed == 0) {
        c->closed = 1;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

static void conn_free_if_done(struct conn *c)
{
    if (c->closed == 2 && !c->busy) {
        free(c);
    }
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

/* Send one reply line and go on with the next request, if any. */
static void reply(struct conn *c, const char *text)
{
    c->busy = 0;
    if (c->closed) {
        conn_free_if_done(c);
        return;
    }
    size_t len = strlen(text);
    uv_write_t *w = malloc(sizeof *w + len + 1);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    char *copy = (char *)(w + 1);
    memcpy(copy, text, len);
    copy[len] = '\n';
    uv_buf_t buf = uv_buf_init(copy, (unsigned)len + 1);
    if (uv_write(w, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
        free(w);
        conn_close(c);
        return;
    }
    conn_process(c);
}

static const char *error_name(int code)
{
    static const char *names[] = {
        "RaftError", "NoMemError", "BadIdError", "DuplicateIdError",
        "DuplicateAddressError", "BadRoleError", "MalformedError", "NotLeaderError",
        "LeadershipLostError", "ShutdownError", "CantBootstrapError", "CantChangeError",
        "CorruptError", "CanceledError", "NameTooLongError", "TooBigError",
        "NoConnectionError", "BusyError", "IOError", "NotFoundError", "InvalidError",
        "UnauthorizedError", "NoSpaceError", "TooManyError"};
    if (code > 0 && code < (int)(sizeof names / sizeof names[0])) {
        return names[code];
    }
    return "RaftError";
}

static void reply_error(struct conn *c, int code)
{
    char text[256];
    if (code == RAFT_NOTLEADER) {
        raft_id leader = 0;
        const char *address = NULL;
        raft_leader(&raft, &leader, &address);
        snprintf(text, sizeof text, "{\"ok\": false, \"error\": \"NotLeaderError\", "
                 "\"leader\": %llu}", (unsigned long long)leader);
    } else {
        snprintf(text, sizeof text, "{\"ok\": false, \"error\": \"%s\", \"message\": \"%s\"}",
                 error_name(code), raft_strerror(code));
    }
    reply(c, text);
}

static void reply_op_done(struct op *op, int status)
{
    struct conn *c = op->conn;
    free(op);
    if (status != 0) {
        reply_error(c, status);
    } else {
        reply(c, "{\"ok\": true}");
    }
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
    struct op *op = req->data;
    unsigned i = (unsigned)(req - op->applies);
    if (status != 0 && op->failed_status == 0) {
        op->failed_status = (unsigned)status;
    }
    op->values[i] = (uint64_t)(uintptr_t)result;
    if (++op->done < op->total) {
        return;
    }
    if (op->failed_status != 0) {
        reply_op_done(op, (int)op->failed_status);
        return;
    }
    size_t size = 32 + (size_t)op->total * 22;
    char *text = malloc(size);
    struct conn *c = op->conn;
    if (text == NULL) {
        free(op);
        reply_error(c, RAFT_NOMEM);
        return;
    }
    size_t at = (size_t)snprintf(text, size, "{\"ok\": true, \"values\": [");
    for (unsigned k = 0; k < op->total; k++) {
        at += (size_t)snprintf(text + at, size - at, "%s%" PRIu64, k ? ", " : "",
                               op->values[k]);
    }
    snprintf(text + at, size - at, "]}");
    free(op);
    reply(c, text);
    free(text);
}

/* n separate raft_apply calls of one entry each: each callback carries its own
 * entry's result (a request of n entries reports only its first one). */
static int do_apply(struct op *op, long long n)
{
    if (n < 1 || n > APPLY_MAX) {
        return RAFT_INVALID;
    }
    op->total = (unsigned)n;
    for (unsigned i = 0; i < op->total; i++) {
        struct raft_buffer buf = {raft_malloc(8), 8};
        if (buf.base == NULL) {
            return i == 0 ? RAFT_NOMEM : (op->total = i, op->failed_status = RAFT_NOMEM, 0);
        }
        memset(buf.base, 0, 8);
        ((uint8_t *)buf.base)[0] = 1;
        op->applies[i].data = op;
        int rv = raft_apply(&raft, &op->applies[i], &buf, 1, on_applied);
        if (rv != 0) {
            raft_free(buf.base);
            if (i == 0) {
                return rv;
            }
            op->total = i; /* the ones already submitted will answer */
            op->failed_status = (unsigned)rv;
            return 0;
        }
    }
    return 0;
}

static void on_barrier(struct raft_barrier *req, int status)
{
    reply_op_done(req->data, status);
}

static void on_change(struct raft_change *req, int status)
{
    reply_op_done(req->data, status);
}

static void on_transfer(struct raft_transfer *req)
{
    struct op *op = req->data;
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&raft, &leader, &address);
    int ok = op->target == 0 ? leader != self_id : leader == op->target;
    reply_op_done(op, ok ? 0 : RAFT_NOTLEADER);
}

/* The value after "key": in a flat JSON object: a pointer to it, or NULL. */
static const char *json_value(const char *line, const char *key)
{
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *p = strstr(line, quoted);
    if (p == NULL) {
        return NULL;
    }
    p += strlen(quoted);
    while (isspace((unsigned char)*p)) p++;
    if (*p != ':') {
        return NULL;
    }
    p++;
    while (isspace((unsigned char)*p)) p++;
    return p;
}

static int json_string(const char *line, const char *key, char *out, size_t size)
{
    const char *p = json_value(line, key);
    if (p == NULL || *p != '"') {
        return -1;
    }
    p++;
    size_t n = 0;
    while (*p && *p != '"' && *p != '\\' && n + 1 < size) {
        out[n++] = *p++;
    }
    out[n] = '\0';
    return *p == '"' ? 0 : -1;
}

static long long json_int(const char *line, const char *key, long long fallback)
{
    const char *p = json_value(line, key);
    if (p == NULL) {
        return fallback;
    }
    char *end = NULL;
    long long v = strtoll(p, &end, 10);
    return end == p ? fallback : v;
}

static const char *state_name(int state)
{
    switch (state) {
        case RAFT_FOLLOWER: return "FOLLOWER";
        case RAFT_CANDIDATE: return "CANDIDATE";
        case RAFT_LEADER: return "LEADER";
        default: return "UNAVAILABLE";
    }
}

static void reply_status(struct conn *c)
{
    char text[512];
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&raft, &leader, &address);
    snprintf(text, sizeof text,
             "{\"id\": %llu, \"state\": \"%s\", \"leader\": %llu, \"term\": %llu, "
             "\"commit\": %llu, \"applied\": %llu, \"counter\": %" PRIu64 "}",
             self_id, state_name(raft_state(&raft)), (unsigned long long)leader,
             (unsigned long long)raft.current_term, (unsigned long long)raft.commit_index,
             (unsigned long long)raft_last_applied(&raft), counter);
    reply(c, text);
}

static int role_code(const char *role)
{
    if (strcmp(role, "voter") == 0) return RAFT_VOTER;
    if (strcmp(role, "standby") == 0) return RAFT_STANDBY;
    if (strcmp(role, "spare") == 0) return RAFT_SPARE;
    return -1;
}

/* Start the request in line; 0 when a callback will reply, else an error. */
static int start_request(struct op *op, const char *line, const char *name)
{
    char text[128];
    raft_id id = (raft_id)json_int(line, "id", 0);
    if (strcmp(name, "apply") == 0) {
        return do_apply(op, json_int(line, "n", 1));
    }
    if (strcmp(name, "barrier") == 0) {
        op->barrier.data = op;
        return raft_barrier(&raft, &op->barrier, on_barrier);
    }
    if (strcmp(name, "transfer") == 0) {
        op->transfer.data = op;
        op->target = id;
        return raft_transfer(&raft, &op->transfer, id, on_transfer);
    }
    op->change.data = op;
    if (strcmp(name, "add") == 0) {
        if (json_string(line, "address", text, sizeof text) != 0) {
            return RAFT_INVALID;
        }
        return raft_add(&raft, &op->change, id, text, on_change);
    }
    if (strcmp(name, "assign") == 0) {
        if (json_string(line, "role", text, sizeof text) != 0 || role_code(text) < 0) {
            return RAFT_BADROLE;
        }
        return raft_assign(&raft, &op->change, id, role_code(text), on_change);
    }
    if (strcmp(name, "remove") == 0) {
        return raft_remove(&raft, &op->change, id, on_change);
    }
    return -1;
}

static void handle_line(struct conn *c, const char *line)
{
    char name[32];
    c->busy = 1;
    if (json_string(line, "op", name, sizeof name) != 0) {
        reply(c, "{\"ok\": false, \"error\": \"bad request\"}");
        return;
    }
    if (strcmp(name, "status") == 0) {
        reply_status(c);
        return;
    }
    struct op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        reply_error(c, RAFT_NOMEM);
        return;
    }
    op->conn = c;
    int rv = start_request(op, line, name);
    if (rv == -1) {
        free(op);
        reply(c, "{\"ok\": false, \"error\": \"unknown op\"}");
    } else if (rv != 0) {
        free(op);
        reply_error(c, rv);
    }
}

/* Handle the next complete line, unless a request is in flight. */
static void conn_process(struct conn *c)
{
    if (c->busy || c->closed) {
        return;
    }
    char *nl = memchr(c->line, '\n', c->used);
    if (nl == NULL) {
        return;
    }
    *nl = '\0';
    char line[LINE_MAX_BYTES];
    memcpy(line, c->line, (size_t)(nl - c->line) + 1);
    size_t rest = c->used - (size_t)(nl - c->line) - 1;
    memmove(c->line, nl + 1, rest);
    c->used = rest;
    handle_line(c, line);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    buf->base = c->line + c->used;
    buf->len = sizeof c->line - c->used - 1;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->used += (size_t)n;
    if (c->used >= sizeof c->line - 1 && memchr(c->line, '\n', c->used) == NULL) {
        conn_close(c); /* a line longer than we take */
        return;
    }
    conn_process(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status != 0) {
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return;
    }
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
    }
}

/* -- bench mode ------------------------------------------------------------ */

#define BENCH_START_TIMEOUT_S 20.0 /* cluster.py's START_TIMEOUT_S */
#define BENCH_WARMUP_MAX_S 10.0

enum bench_phase { WAIT_LEADER, WARMUP, WARM, RUN, DONE, IDLE };

struct bench_slot {
    struct raft_apply req; /* first: the callback's req is the slot */
    double submitted_s;
};

static struct {
    unsigned in_flight, warmup, count;
    size_t size;
    double max_s, started_s, deadline_s, wait_until_s;
    enum bench_phase phase;
    struct bench_slot *slots;
    double *latencies_s; /* one per entry of the counted part */
    unsigned target, issued, active, done, failed;
    int closing;
    uv_timer_t poll;
    uv_pipe_t in;
    char in_line[64];
    size_t in_used;
} bench;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void bench_applied(struct raft_apply *req, int status, void *result);

/* Submit one command on slot; 0 or libraft's error (then nothing is in flight). */
static int bench_submit(struct bench_slot *slot)
{
    struct raft_buffer buf = {raft_malloc(bench.size), bench.size};
    if (buf.base == NULL) {
        return RAFT_NOMEM;
    }
    memset(buf.base, 0, bench.size);
    ((uint8_t *)buf.base)[0] = 1;
    slot->submitted_s = now_s();
    int rv = raft_apply(&raft, &slot->req, &buf, 1, bench_applied);
    if (rv != 0) {
        raft_free(buf.base); /* libraft takes the buffer only on success */
        return rv;
    }
    bench.issued++;
    bench.active++;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* _common.percentile: the value at index round(p/100*(n-1)) of the sorted
 * values, rounding half to even as Python's round() does (in integers, so
 * exactly); 0 for no values (the entry count says there is nothing). */
static double percentile(const double *sorted, unsigned n, unsigned p)
{
    if (n == 0) {
        return 0;
    }
    unsigned long long num = (unsigned long long)p * (n - 1);
    unsigned long long k = num / 100, rest = num % 100;
    if (rest > 50 || (rest == 50 && (k & 1))) {
        k++;
    }
    return sorted[k];
}

static void bench_phase_ended(void)
{
    if (bench.phase == WARMUP) {
        bench.phase = WARM;
        printf("{\"ev\": \"warm\"}\n");
        return;
    }
    double elapsed = now_s() - bench.started_s;
    qsort(bench.latencies_s, bench.done, sizeof *bench.latencies_s, cmp_double);
    double p50 = percentile(bench.latencies_s, bench.done, 50) * 1e6;
    double p99 = percentile(bench.latencies_s, bench.done, 99) * 1e6;
    bench.phase = DONE;
    printf("{\"ev\": \"result\", \"entries\": %u, \"elapsed_s\": %.6f, \"p50_us\": %.3f, "
           "\"p99_us\": %.3f, \"timed_out\": %s, \"failed\": %u}\n",
           bench.done, elapsed, p50, p99, bench.done < bench.target ? "true" : "false",
           bench.failed);
}

static void bench_applied(struct raft_apply *req, int status, void *result)
{
    struct bench_slot *slot = (struct bench_slot *)req;
    double t = now_s();
    (void)result;
    bench.active--;
    if (status != 0) {
        bench.failed++;
    } else if (bench.phase == RUN) {
        bench.latencies_s[bench.done++] = t - slot->submitted_s;
    } else {
        bench.done++;
    }
    /* libraft has taken the request off its queue before this callback, so the
     * slot is free to carry the next one */
    if (!bench.closing && status == 0 && bench.issued < bench.target &&
        t < bench.deadline_s && bench_submit(slot) != 0) {
        bench.failed++;
    }
    if (bench.active == 0 && !bench.closing) {
        bench_phase_ended();
    }
}

static void bench_phase_start(enum bench_phase phase, unsigned target, double max_s)
{
    bench.phase = phase;
    bench.target = target;
    bench.issued = bench.active = bench.done = bench.failed = 0;
    bench.started_s = now_s();
    bench.deadline_s = bench.started_s + max_s;
    for (unsigned i = 0; i < bench.in_flight && i < target; i++) {
        if (bench_submit(&bench.slots[i]) != 0) {
            bench.failed++;
            break;
        }
    }
    if (bench.active == 0) {
        bench_phase_ended();
    }
}

/* Every 10 ms until a leader is known: the leader runs the warm-up. */
static void bench_poll(uv_timer_t *timer)
{
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&raft, &leader, &address);
    if (leader == 0 && now_s() < bench.wait_until_s) {
        return;
    }
    uv_timer_stop(timer);
    if (raft_state(&raft) == RAFT_LEADER) {
        bench_phase_start(WARMUP, bench.warmup, BENCH_WARMUP_MAX_S);
    } else {
        bench.phase = IDLE;
    }
}

static void close_raft(void);

static void bench_stdin_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n < 0) { /* end of stdin (or an error on it): the parent is done */
        uv_read_stop(s);
        uv_timer_stop(&bench.poll);
        close_raft();
        return;
    }
    bench.in_used += (size_t)n;
    char *nl = memchr(bench.in_line, '\n', bench.in_used);
    if (nl == NULL) {
        bench.in_used = bench.in_used >= sizeof bench.in_line - 1 ? 0 : bench.in_used;
        return;
    }
    *nl = '\0';
    if (strcmp(bench.in_line, "go") == 0 && bench.phase == WARM) {
        bench_phase_start(RUN, bench.count, bench.max_s);
    }
    bench.in_used = 0; /* the parent sends one line per case */
}

static void bench_stdin_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = bench.in_line + bench.in_used;
    buf->len = sizeof bench.in_line - bench.in_used - 1;
}

static void die(const char *what, const char *detail);

static void bench_start(void)
{
    if (bench.size < 8 || bench.in_flight == 0) {
        die("bench", "--bench-size must be at least 8 and --bench-in-flight at least 1");
    }
    bench.slots = calloc(bench.in_flight, sizeof *bench.slots);
    bench.latencies_s = calloc(bench.count ? bench.count : 1, sizeof *bench.latencies_s);
    if (bench.slots == NULL || bench.latencies_s == NULL) {
        die("bench", "out of memory");
    }
    bench.wait_until_s = now_s() + BENCH_START_TIMEOUT_S;
    if (uv_pipe_init(loop, &bench.in, 0) != 0 || uv_pipe_open(&bench.in, 0) != 0 ||
        uv_read_start((uv_stream_t *)&bench.in, bench_stdin_alloc, bench_stdin_read) != 0) {
        die("bench", "cannot read stdin (it must be a pipe)");
    }
    uv_timer_init(loop, &bench.poll);
    uv_timer_start(&bench.poll, bench_poll, 10, 10);
}

/* -- start up ------------------------------------------------------------- */

static void on_raft_closed(struct raft *r)
{
    (void)r;
    uv_stop(loop);
}

/* Close once: a signal and the end of stdin may both ask. */
static void close_raft(void)
{
    if (!bench.closing) {
        bench.closing = 1; /* also: the bench callbacks submit nothing more */
        raft_close(&raft, on_raft_closed);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    /* in bench mode stdout carries only the JSON lines */
    fprintf(bench_on ? stderr : stdout, "%llu: stopping (signal %d)\n", self_id, signum);
    fflush(stdout);
    close_raft();
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "%llu: %s: %s\n", self_id, what, detail);
    exit(1);
}

static void usage(void)
{
    die("usage", "counter_server DIR ID --address A --control HOST:PORT --cluster "
        "\"1=A,...\" [--join] [--snapshot-threshold N] [--snapshot-trailing N] "
        "[--install-snapshot-timeout-ms MS]; or with "
        "--bench-in-flight W --bench-size B --bench-warmup N --bench-count N --bench-max-s S "
        "instead of --control (see the top of counter_server.c)");
}

static void bootstrap(const char *cluster)
{
    struct raft_configuration conf;
    char copy[LINE_MAX_BYTES];
    raft_configuration_init(&conf);
    snprintf(copy, sizeof copy, "%s", cluster);
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (eq == NULL) {
            usage();
        }
        *eq = '\0';
        if (raft_configuration_add(&conf, strtoull(item, NULL, 10), eq + 1, RAFT_VOTER) != 0) {
            die("bad --cluster", cluster);
        }
    }
    int rv = raft_bootstrap(&raft, &conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        die("bootstrap", raft_errmsg(&raft));
    }
    raft_configuration_close(&conf);
}

static void listen_control(uv_tcp_t *server, const char *control)
{
    char host[64];
    const char *colon = strrchr(control, ':');
    struct sockaddr_in addr;
    if (colon == NULL || (size_t)(colon - control) >= sizeof host) {
        usage();
    }
    memcpy(host, control, (size_t)(colon - control));
    host[colon - control] = '\0';
    if (uv_ip4_addr(host, atoi(colon + 1), &addr) != 0 || uv_tcp_init(loop, server) != 0 ||
        uv_tcp_bind(server, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)server, 64, on_connection) != 0) {
        die("cannot listen on the control address", control);
    }
}

/* A decimal unsigned (up to UINT_MAX: the bench's "off" policy), or usage. */
static unsigned unsigned_arg(const char *text)
{
    char *end = NULL;
    unsigned long v = strtoul(text, &end, 10);
    if (end == text || *end != '\0' || v > UINT_MAX) {
        usage();
    }
    return (unsigned)v;
}

int main(int argc, char *argv[])
{
    const char *address = NULL, *control = NULL, *cluster = NULL;
    unsigned threshold = 64, trailing = 16, install_timeout_ms = 0;   /* 0: libraft's */
    int join = 0;
    if (argc < 3) {
        usage();
    }
    self_id = strtoull(argv[2], NULL, 10);
    for (int i = 3; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--join") == 0) { join = 1; continue; }
        if (next == NULL) usage();
        if (strcmp(argv[i], "--address") == 0) address = next;
        else if (strcmp(argv[i], "--control") == 0) control = next;
        else if (strcmp(argv[i], "--cluster") == 0) cluster = next;
        else if (strcmp(argv[i], "--snapshot-threshold") == 0) threshold = unsigned_arg(next);
        else if (strcmp(argv[i], "--snapshot-trailing") == 0) trailing = unsigned_arg(next);
        else if (strcmp(argv[i], "--install-snapshot-timeout-ms") == 0)
            install_timeout_ms = unsigned_arg(next);
        else if (strcmp(argv[i], "--bench-in-flight") == 0) bench.in_flight = unsigned_arg(next);
        else if (strcmp(argv[i], "--bench-size") == 0) bench.size = unsigned_arg(next);
        else if (strcmp(argv[i], "--bench-warmup") == 0) bench.warmup = unsigned_arg(next);
        else if (strcmp(argv[i], "--bench-count") == 0) bench.count = unsigned_arg(next);
        else if (strcmp(argv[i], "--bench-max-s") == 0) bench.max_s = strtod(next, NULL);
        else usage();
        i++;
    }
    bench_on = bench.in_flight > 0;
    if (self_id == 0 || address == NULL || (control == NULL) == !bench_on ||
        (cluster == NULL && !join)) {
        usage();
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* A control client gone before its reply must not kill the server. */
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    static struct raft_uv_transport transport;
    static struct raft_io io;
    static struct raft_fsm fsm = {1, NULL, fsm_apply, fsm_snapshot, fsm_restore, NULL, NULL};
    static uv_tcp_t control_server;
    static uv_signal_t sigterm, sigint;
    int rv = raft_uv_tcp_init(&transport, loop);
    if (rv != 0) die("raft_uv_tcp_init", raft_strerror(rv));
    rv = raft_uv_init(&io, loop, argv[1], &transport);
    if (rv != 0) die("raft_uv_init", io.errmsg);
    rv = raft_init(&raft, &io, &fsm, self_id, address);
    if (rv != 0) die("raft_init", raft_errmsg(&raft));
    raft_set_pre_vote(&raft, true);
    raft_set_snapshot_threshold(&raft, threshold);
    raft_set_snapshot_trailing(&raft, trailing);
    if (install_timeout_ms) raft_set_install_snapshot_timeout(&raft, install_timeout_ms);
    if (!join) {
        bootstrap(cluster);
    }
    if (!bench_on) {
        printf("%llu: starting\n", self_id);
    }
    rv = raft_start(&raft);
    if (rv != 0) {
        /* libraft 0.15 leaves errmsg empty when the listen address is taken. */
        fprintf(stderr, "%llu: raft_start: %s: %s\n", self_id, raft_strerror(rv),
                raft_errmsg(&raft));
        exit(1);
    }
    if (bench_on) {
        bench_start();
    } else {
        listen_control(&control_server, control);
    }
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
