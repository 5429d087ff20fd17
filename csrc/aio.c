/* Linux kernel AIO for durable segment writes.
 *
 * One context per writer (io_setup), completions signalled on an eventfd
 * (IOCB_FLAG_RESFD) that Python registers with its event loop, so the loop
 * sleeps in epoll and wakes when a write is durable.  We call the syscalls
 * directly: no libaio, no libuv.  RWF_DSYNC makes each write durable on
 * completion; RWF_NOWAIT makes the kernel answer -EAGAIN instead of blocking
 * the submitting thread (then Python re-runs the write in a thread). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "native.h"

#ifndef RWF_DSYNC
#define RWF_DSYNC 0x00000002
#endif
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

static long sys_io_setup(unsigned nr, aio_context_t *ctx)
{
    return syscall(SYS_io_setup, nr, ctx);
}

static long sys_io_destroy(aio_context_t ctx)
{
    return syscall(SYS_io_destroy, ctx);
}

static long sys_io_submit(aio_context_t ctx, long n, struct iocb **iocbs)
{
    return syscall(SYS_io_submit, ctx, n, iocbs);
}

static long sys_io_getevents(aio_context_t ctx, long min, long max, struct io_event *ev,
                             struct timespec *timeout)
{
    return syscall(SYS_io_getevents, ctx, min, max, ev, timeout);
}

int rp_aio_init(struct rp_aio *aio, unsigned depth)
{
    aio_context_t ctx = 0;
    memset(aio, 0, sizeof *aio);
    aio->efd = -1;
    if (depth == 0) return -EINVAL;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) return -errno;
    if (sys_io_setup(depth, &ctx) < 0) {
        int err = errno;
        close(efd);
        return -err;
    }
    aio->ctx = ctx;
    aio->efd = efd;
    aio->depth = depth;
    return 0;
}

void rp_aio_close(struct rp_aio *aio)
{
    if (aio->ctx) sys_io_destroy((aio_context_t)aio->ctx);
    if (aio->efd >= 0) close(aio->efd);
    aio->ctx = 0;
    aio->efd = -1;
}

static void prepare(struct iocb *cb, int fd, const void *buf, size_t len, uint64_t offset,
                    uint64_t user_data, int flags)
{
    memset(cb, 0, sizeof *cb);
    cb->aio_lio_opcode = IOCB_CMD_PWRITE;
    cb->aio_fildes = (uint32_t)fd;
    cb->aio_buf = (uint64_t)(uintptr_t)buf;
    cb->aio_nbytes = len;
    cb->aio_offset = (int64_t)offset;
    cb->aio_data = user_data;
    cb->aio_rw_flags = ((flags & RP_AIO_DSYNC) ? RWF_DSYNC : 0) |
                       ((flags & RP_AIO_NOWAIT) ? RWF_NOWAIT : 0);
}

int rp_aio_submit(struct rp_aio *aio, int fd, const void *buf, size_t len, uint64_t offset,
                  uint64_t user_data, int flags)
{
    /* The kernel copies the iocb during io_submit, so a stack iocb is enough. */
    struct iocb cb;
    struct iocb *cbs[1] = {&cb};
    prepare(&cb, fd, buf, len, offset, user_data, flags);
    cb.aio_flags = IOCB_FLAG_RESFD;
    cb.aio_resfd = (uint32_t)aio->efd;
    long rv = sys_io_submit((aio_context_t)aio->ctx, 1, cbs);
    if (rv < 0) return -errno;
    if (rv != 1) return -EAGAIN;
    return 0;
}

int rp_aio_reap(struct rp_aio *aio, uint64_t *user_data, int64_t *results, unsigned max)
{
    struct io_event events[64];
    struct timespec zero = {0, 0};
    uint64_t counter;
    /* Reset the eventfd first: a completion landing after this read sets it again. */
    if (read(aio->efd, &counter, sizeof counter) < 0 && errno != EAGAIN) return -errno;
    unsigned got = 0;
    while (got < max) {
        unsigned want = max - got;
        if (want > 64) want = 64;
        long rv = sys_io_getevents((aio_context_t)aio->ctx, 0, want, events, &zero);
        if (rv < 0) {
            if (errno == EINTR) continue;
            return got ? (int)got : -errno;
        }
        for (long i = 0; i < rv; i++) {
            user_data[got] = events[i].data;
            results[got] = events[i].res;
            got++;
        }
        if ((unsigned)rv < want) break;
    }
    return (int)got;
}

int rp_aio_probe(int fd, const void *buf, size_t len)
{
    aio_context_t ctx = 0;
    struct iocb cb;
    struct iocb *cbs[1] = {&cb};
    struct io_event ev;
    if (sys_io_setup(1, &ctx) < 0) return -errno;
    prepare(&cb, fd, buf, len, 0, 0, RP_AIO_DSYNC | RP_AIO_NOWAIT);
    int answer;
    long rv = sys_io_submit(ctx, 1, cbs);
    if (rv < 0) {
        int err = errno;
        answer = (err == EOPNOTSUPP || err == EINVAL || err == EAGAIN) ? 0 : -err;
    } else {
        do {
            rv = sys_io_getevents(ctx, 1, 1, &ev, NULL);
        } while (rv < 0 && errno == EINTR);
        if (rv < 0) answer = -errno;
        else answer = (ev.res > 0 || ev.res == -EAGAIN) ? 1 : 0;
    }
    sys_io_destroy(ctx);
    return answer;
}

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The benchmark's floor for one durable write at a time, in C: n writes of
 * len bytes at offsets 0, len, 2*len ... of an O_DIRECT fd, each waited for
 * before the next, either synchronously (pwritev2 with RWF_DSYNC) or as the
 * AIO writer does it without Python (io_submit with RWF_DSYNC, epoll_wait on
 * the eventfd, the eventfd read, io_getevents).  lat[i] gets each write's
 * seconds.  Returns 0 or -errno. */
int rp_durable_write_loop(int fd, const void *buf, size_t len, unsigned n, int use_aio,
                          double *lat)
{
    struct rp_aio aio;
    int ep = -1, rv = 0;
    if (use_aio) {
        if ((rv = rp_aio_init(&aio, 1)) < 0) return rv;
        ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event want = {.events = EPOLLIN};
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, aio.efd, &want) < 0) {
            rv = -errno;
            goto out;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        uint64_t offset = (uint64_t)i * len;
        double start = seconds_now();
        if (!use_aio) {
            struct iovec iov = {(void *)(uintptr_t)buf, len};
            ssize_t w = pwritev2(fd, &iov, 1, (off_t)offset, RWF_DSYNC);
            if (w < 0) { rv = -errno; goto out; }
            if ((size_t)w != len) { rv = -ENOSPC; goto out; }
        } else {
            if ((rv = rp_aio_submit(&aio, fd, buf, len, offset, i, RP_AIO_DSYNC)) < 0) goto out;
            uint64_t ud;
            int64_t res;
            int got = 0;
            while (got == 0) {
                struct epoll_event ev;
                if (epoll_wait(ep, &ev, 1, -1) < 0 && errno != EINTR) { rv = -errno; goto out; }
                got = rp_aio_reap(&aio, &ud, &res, 1);
                if (got < 0) { rv = got; goto out; }
            }
            if (res < 0) { rv = (int)res; goto out; }
            if ((size_t)res != len) { rv = -ENOSPC; goto out; }
        }
        lat[i] = seconds_now() - start;
    }
out:
    if (use_aio) {
        if (ep >= 0) close(ep);
        rp_aio_close(&aio);
    }
    return rv;
}

int rp_pwrite_sync(int fd, const void *buf, size_t len, uint64_t offset)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t rv = pwrite(fd, p, len, (off_t)offset);
        if (rv < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (rv == 0) return -ENOSPC;
        p += rv;
        len -= (size_t)rv;
        offset += (uint64_t)rv;
    }
    if (fdatasync(fd) < 0) return -errno;
    return 0;
}

int64_t rp_fs_type(int fd)
{
    struct statfs st;
    if (fstatfs(fd, &st) < 0) return -errno;
    return (int64_t)(uint64_t)(uint32_t)st.f_type;
}
