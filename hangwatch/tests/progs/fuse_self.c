// A FUSE filesystem served straight from /dev/fuse (no libfuse) that deadlocks on itself, a
// classic FUSE bug: its single-threaded server, asked to look a name up, first stats a path in
// its own mount, a request only it could answer. A client process waits in stat() on it too.
// Prints "ready client=PID mnt=DIR" once the server has received the client's request.
// The test unmounts DIR (the program is killed, so it cannot).
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static char buf[1 << 20];

int main(void) {
    char dir[] = "/tmp/hangwatch-fuse-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0) return 3;
    char opts[128];
    snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
    if (mount("hangwatch", dir, "fuse.hangwatch", MS_NOSUID | MS_NODEV, opts) != 0) return 4;
    pid_t client = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < (ssize_t)sizeof(struct fuse_in_header)) return 5;
        struct fuse_in_header *in = (struct fuse_in_header *)buf;
        if (in->opcode == FUSE_INIT) {
            struct fuse_init_in *ii = (struct fuse_init_in *)(in + 1);
            struct {
                struct fuse_out_header h;
                struct fuse_init_out o;
            } r;
            memset(&r, 0, sizeof r);
            r.h.len = sizeof r;
            r.h.unique = in->unique;
            r.o.major = FUSE_KERNEL_VERSION;
            r.o.minor = ii->minor < FUSE_KERNEL_MINOR_VERSION ? ii->minor : FUSE_KERNEL_MINOR_VERSION;
            r.o.max_readahead = ii->max_readahead;
            r.o.max_background = 16;
            r.o.congestion_threshold = 12;
            r.o.max_write = 4096;
            r.o.time_gran = 1;
            if (write(fd, &r, sizeof r) != sizeof r) return 6;
            client = fork();
            if (client == 0) {
                close(fd);
                char p[128];
                snprintf(p, sizeof p, "%s/asked", dir);
                struct stat st;
                return stat(p, &st);
            }
            continue;
        }
        if (in->opcode == FUSE_LOOKUP) {
            printf("ready client=%d mnt=%s\n", client, dir);
            fflush(stdout);
            char p[128];
            snprintf(p, sizeof p, "%s/needed-first", dir);
            struct stat st;
            return stat(p, &st); // a request to itself: never answered
        }
        // Anything else: ENOSYS.
        struct fuse_out_header h = {.len = sizeof h, .error = -38, .unique = in->unique};
        if (write(fd, &h, sizeof h) != sizeof h) return 7;
    }
}
