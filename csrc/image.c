/* Whole-file images for load: a file read into memory of its own, in one C
 * call (open, size, allocate, read, close), so that load's reader thread
 * takes the GIL back once per file, not once per system call: each time it
 * does, it may wait a switch interval for the thread that decodes.
 *
 * A large file goes into a private anonymous mapping made with MAP_POPULATE,
 * so that the kernel allocates its pages in one pass rather than one fault at
 * a time during the copy; a small one into malloc'd memory (a mapping each
 * would use up vm.max_map_count on a log of many small segments).  This is C
 * and not Python's mmap module because that one holds the GIL in mmap(),
 * which with MAP_POPULATE is the whole page allocation.  cffi releases the
 * GIL around these calls.  Not MADV_HUGEPAGE: with THP "madvise" a huge page
 * may compact memory first (reads of 1 GiB took 0.5 s one run, 1.8-3.1 s the
 * next).  Not a mapping of the file itself: a file that shrinks under its
 * mapping faults (SIGBUS), and the log must not change under its reader. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "native.h"

static uint8_t *image_alloc(size_t cap)
{
    if (cap < RP_IMAGE_MAP_MIN) return malloc(cap);
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void rp_image_free(uint8_t *p, size_t cap)
{
    if (cap < RP_IMAGE_MAP_MIN) free(p);
    else munmap(p, cap);
}

static int64_t read_all(int fd, uint8_t *p, size_t cap)
{
    size_t done = 0;
    while (done < cap) {
        ssize_t rv = pread(fd, p + done, cap - done, (off_t)done);
        if (rv < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (rv == 0) break;                 /* the file shrank: what it holds */
        done += (size_t)rv;
    }
    return (int64_t)done;
}

uint8_t *rp_image_read(const char *path, uint64_t *cap, int64_t *got)
{
    *cap = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *got = -errno;
        return NULL;
    }
    struct stat st;
    uint8_t *p = NULL;
    if (fstat(fd, &st) < 0) {
        *got = -errno;
    } else if (st.st_size == 0) {
        *got = 0;
    } else if ((p = image_alloc((size_t)st.st_size)) == NULL) {
        *got = -ENOMEM;
    } else {
        *got = read_all(fd, p, (size_t)st.st_size);
        if (*got < 0) {
            rp_image_free(p, (size_t)st.st_size);
            p = NULL;
        } else {
            *cap = (uint64_t)st.st_size;
        }
    }
    close(fd);
    return p;
}

uint8_t *rp_image_scan(const char *path, uint64_t *cap, int64_t *got,
                       struct rp_entries *out, struct rp_result *res, int *status)
{
    uint8_t *p = rp_image_read(path, cap, got);
    *status = p != NULL ? rp_scan_segment(p, (size_t)*got, 0, out, res) : RP_OK;
    return p;
}
