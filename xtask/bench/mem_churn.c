/* mem_churn MODE SECONDS: memory that is taken and given back, in a loop.
 *   mmap    - mmap 64 KiB anonymous, write one byte per page, munmap
 *   brk     - grow the heap by 64 KiB with brk, write one byte per page, shrink it back
 *   madvise - write one byte per page of a 64 KiB chunk, madvise(MADV_DONTNEED) it
 * Prints rounds per second. */
#include "common.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define PAGE 4096

static void touch(char *p)
{
    for (size_t off = 0; off < CHUNK; off += PAGE)
        ((volatile char *)p)[off] = 1;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    double secs = arg_seconds(argc, argv, 2);
    int m = !strcmp(mode, "mmap") ? 0 : !strcmp(mode, "brk") ? 1 : !strcmp(mode, "madvise") ? 2 : -1;
    if (m < 0) {
        fprintf(stderr, "usage: mem_churn mmap|brk|madvise SECONDS\n");
        return 2;
    }
    char *region = NULL;
    if (m == 2) {
        region = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region == MAP_FAILED)
            die("mmap");
    }
    /* Page-align the break so every round maps and unmaps the same whole pages. */
    if (m == 1) {
        uintptr_t cur = (uintptr_t)sbrk(0);
        if (sbrk((intptr_t)((cur + PAGE - 1) / PAGE * PAGE - cur)) == (void *)-1)
            die("sbrk");
    }

    unsigned long long ops = 0;
    double start = now_s(), end = start + secs, t = start;
    for (;;) {
        for (int i = 0; i < 16; i++) {
            if (m == 0) {
                char *p = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                    die("mmap");
                touch(p);
                if (munmap(p, CHUNK))
                    die("munmap");
            } else if (m == 1) {
                char *p = sbrk(CHUNK);
                if (p == (void *)-1)
                    die("sbrk grow");
                touch(p);
                if (sbrk(-CHUNK) == (void *)-1)
                    die("sbrk shrink");
            } else {
                touch(region);
                if (madvise(region, CHUNK, MADV_DONTNEED))
                    die("madvise");
            }
        }
        ops += 16;
        if ((t = now_s()) >= end)
            break;
    }
    report(ops, t - start);
    return 0;
}
