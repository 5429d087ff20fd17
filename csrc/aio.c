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
#include <sys/eventfd.h>
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
