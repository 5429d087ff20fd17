/* wirecompat: real libraft on the wire, for raftpy's wire-format tests
 * (tests/interop/test_wire_libraft.py).
 *
 * Uses only libraft's public API (raft.h, raft/uv.h, libraft 0.15+):
 * raft_uv_tcp_init + raft_uv_init, then io.init, io.load, io.start,
 * io.send and io.close on a libuv loop.
 *
 *   wirecompat send DIR ID ADDRESS TO_ID TO_ADDRESS
 *       io.send the seven messages of spec §4.9 (RequestVote, RequestVoteResult,
 *       AppendEntries with two entries, a heartbeat, AppendEntriesResult,
 *       InstallSnapshot, TimeoutNow) in that order to TO_ID at TO_ADDRESS,
 *       wait for every send callback, print "sent N" and close.
 *   wirecompat recv DIR ID ADDRESS COUNT
 *       io.start (listening on ADDRESS), print "ready", then print one JSON
 *       line per message received (what libraft decoded, with the sender id
 *       and address from the handshake) until COUNT messages, then close.
 *
 * A guard timer ends the process with status 2 after 20 s whatever happens.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#define GUARD_MS 20000

static uv_loop_t loop;
static struct raft_uv_transport transport;
static struct raft_io io;
static uv_timer_t guard;
static bool closed;
static unsigned pending;
static unsigned wanted;
static unsigned received;

static void fail(const char *what, int rv)
{
    fprintf(stderr, "wirecompat: %s: %s (%d): %s\n", what, raft_strerror(rv), rv, io.errmsg);
    exit(1);
}

static void guard_cb(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "wirecompat: guard timer expired\n");
    exit(2);
}

static void open_io(const char *dir, raft_id id, const char *address)
{
    int rv;
    struct raft_snapshot *snapshot;
    raft_term term;
    raft_id vote;
    raft_index start;
    struct raft_entry *entries;
    size_t n;
    if (uv_loop_init(&loop) != 0) exit(1);
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, guard_cb, GUARD_MS, 0);
    uv_unref((uv_handle_t *)&guard);
    if ((rv = raft_uv_tcp_init(&transport, &loop)) != 0) fail("raft_uv_tcp_init", rv);
    if ((rv = raft_uv_init(&io, &loop, dir, &transport)) != 0) fail("raft_uv_init", rv);
    if ((rv = io.init(&io, id, address)) != 0) fail("io.init", rv);
    if ((rv = io.load(&io, &term, &vote, &snapshot, &start, &entries, &n)) != 0)
        fail("io.load", rv);
}

static void close_cb(struct raft_io *p)
{
    (void)p;
    closed = true;
}

static void close_io(void)
{
    io.close(&io, close_cb);
    while (!closed) uv_run(&loop, UV_RUN_ONCE);
    raft_uv_close(&io);
    raft_uv_tcp_close(&transport);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
}

/* ------------------------------------------------------------------ send */

static uint8_t command[8];
static char change[16] = "0123456789abcde"; /* 15 characters and the NUL */
static char snapshot_data[24] = "snapshot-payload-bytes!";
static struct raft_entry two_entries[2];
static struct raft_io_send reqs[7];
static struct raft_message messages[7];

static void send_cb(struct raft_io_send *req, int status)
{
    (void)req;
    if (status != 0) fail("send callback", status);
    pending--;
}

static void build_messages(raft_id to, const char *to_address, struct raft_configuration *conf)
{
    memset(command, 0xaa, sizeof command);
    two_entries[0] = (struct raft_entry){5, RAFT_COMMAND, {command, 8}, NULL};
    two_entries[1] = (struct raft_entry){5, RAFT_CHANGE, {change, 16}, NULL};
    struct raft_message *m = messages;
    m[0].type = RAFT_IO_REQUEST_VOTE;
    m[0].request_vote = (struct raft_request_vote){5, 1, 7, 4, true, true};
    m[1].type = RAFT_IO_REQUEST_VOTE_RESULT;
    m[1].request_vote_result = (struct raft_request_vote_result){5, true, raft_tribool_true};
    m[2].type = RAFT_IO_APPEND_ENTRIES;
    m[2].append_entries = (struct raft_append_entries){5, 6, 4, 6, two_entries, 2};
    m[3].type = RAFT_IO_APPEND_ENTRIES;
    m[3].append_entries = (struct raft_append_entries){5, 6, 4, 6, NULL, 0};
    m[4].type = RAFT_IO_APPEND_ENTRIES_RESULT;
    m[4].append_entries_result = (struct raft_append_entries_result){5, 0, 8};
    m[5].type = RAFT_IO_INSTALL_SNAPSHOT;
    m[5].install_snapshot.term = 5;
    m[5].install_snapshot.last_index = 9;
    m[5].install_snapshot.last_term = 4;
    m[5].install_snapshot.conf = *conf;
    m[5].install_snapshot.conf_index = 1;
    m[5].install_snapshot.data = (struct raft_buffer){snapshot_data, 24};
    m[6].type = RAFT_IO_TIMEOUT_NOW;
    m[6].timeout_now = (struct raft_timeout_now){5, 9, 4};
    for (int i = 0; i < 7; i++) {
        m[i].server_id = to;
        m[i].server_address = to_address;
    }
}

static int cmd_send(const char *dir, raft_id id, const char *address, raft_id to,
                    const char *to_address)
{
    struct raft_configuration conf;
    int rv;
    open_io(dir, id, address);
    raft_configuration_init(&conf);
    const char *addrs[3] = {"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"};
    for (unsigned i = 0; i < 3; i++)
        if ((rv = raft_configuration_add(&conf, i + 1, addrs[i], RAFT_VOTER)) != 0)
            fail("raft_configuration_add", rv);
    build_messages(to, to_address, &conf);
    for (int i = 0; i < 7; i++) {
        if ((rv = io.send(&io, &reqs[i], &messages[i], send_cb)) != 0) fail("io.send", rv);
        pending++;
    }
    while (pending > 0) uv_run(&loop, UV_RUN_ONCE);
    printf("sent 7\n");
    fflush(stdout);
    close_io();
    raft_configuration_close(&conf);
    return 0;
}

/* ------------------------------------------------------------------ recv */

static void print_hex(const void *data, size_t len)
{
    const uint8_t *p = data;
    putchar('"');
    for (size_t i = 0; i < len; i++) printf("%02x", p[i]);
    putchar('"');
}

static void print_message(const struct raft_message *m)
{
    printf("{\"type\": %u, \"from_id\": %llu, \"from_address\": \"%s\"",
           m->type, m->server_id, m->server_address);
    switch (m->type) {
    case RAFT_IO_REQUEST_VOTE: {
        const struct raft_request_vote *r = &m->request_vote;
        printf(", \"term\": %llu, \"candidate_id\": %llu"
               ", \"last_log_index\": %llu, \"last_log_term\": %llu"
               ", \"disrupt_leader\": %d, \"pre_vote\": %d", r->term, r->candidate_id,
               r->last_log_index, r->last_log_term, r->disrupt_leader, r->pre_vote);
        break;
    }
    case RAFT_IO_REQUEST_VOTE_RESULT: {
        const struct raft_request_vote_result *r = &m->request_vote_result;
        printf(", \"term\": %llu, \"vote_granted\": %d, \"pre_vote\": %d", r->term,
               r->vote_granted, (int)r->pre_vote);
        break;
    }
    case RAFT_IO_APPEND_ENTRIES: {
        const struct raft_append_entries *r = &m->append_entries;
        printf(", \"term\": %llu, \"prev_log_index\": %llu"
               ", \"prev_log_term\": %llu, \"leader_commit\": %llu"
               ", \"entries\": [", r->term, r->prev_log_index, r->prev_log_term,
               r->leader_commit);
        for (unsigned i = 0; i < r->n_entries; i++) {
            const struct raft_entry *e = &r->entries[i];
            printf("%s{\"term\": %llu, \"type\": %u, \"payload\": ", i ? ", " : "",
                   e->term, e->type);
            print_hex(e->buf.base, e->buf.len);
            putchar('}');
        }
        putchar(']');
        break;
    }
    case RAFT_IO_APPEND_ENTRIES_RESULT: {
        const struct raft_append_entries_result *r = &m->append_entries_result;
        printf(", \"term\": %llu, \"rejected\": %llu, \"last_log_index\": %llu",
               r->term, r->rejected, r->last_log_index);
        break;
    }
    case RAFT_IO_INSTALL_SNAPSHOT: {
        const struct raft_install_snapshot *r = &m->install_snapshot;
        printf(", \"term\": %llu, \"last_index\": %llu, \"last_term\": %llu"
               ", \"conf_index\": %llu, \"servers\": [", r->term, r->last_index,
               r->last_term, r->conf_index);
        for (unsigned i = 0; i < r->conf.n; i++)
            printf("%s[%llu, \"%s\", %d]", i ? ", " : "", r->conf.servers[i].id,
                   r->conf.servers[i].address, r->conf.servers[i].role);
        printf("], \"data\": ");
        print_hex(r->data.base, r->data.len);
        break;
    }
    case RAFT_IO_TIMEOUT_NOW: {
        const struct raft_timeout_now *r = &m->timeout_now;
        printf(", \"term\": %llu, \"last_log_index\": %llu"
               ", \"last_log_term\": %llu", r->term, r->last_log_index, r->last_log_term);
        break;
    }
    default:
        break;
    }
    printf("}\n");
    fflush(stdout);
}

static void tick_cb(struct raft_io *p)
{
    (void)p;
}

static void recv_cb(struct raft_io *p, struct raft_message *m)
{
    (void)p;
    print_message(m);
    received++;
}

static int cmd_recv(const char *dir, raft_id id, const char *address, unsigned count)
{
    int rv;
    wanted = count;
    open_io(dir, id, address);
    if ((rv = io.start(&io, 1000, tick_cb, recv_cb)) != 0) fail("io.start", rv);
    printf("ready\n");
    fflush(stdout);
    while (received < wanted) uv_run(&loop, UV_RUN_ONCE);
    close_io();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "send") == 0)
        return cmd_send(argv[2], strtoull(argv[3], NULL, 10), argv[4],
                        strtoull(argv[5], NULL, 10), argv[6]);
    if (argc == 6 && strcmp(argv[1], "recv") == 0)
        return cmd_recv(argv[2], strtoull(argv[3], NULL, 10), argv[4],
                        (unsigned)strtoul(argv[5], NULL, 10));
    fprintf(stderr, "usage: wirecompat send DIR ID ADDRESS TO_ID TO_ADDRESS\n"
                    "       wirecompat recv DIR ID ADDRESS COUNT\n");
    return 64;
}
