// File lock waits whose holder is another process (the files are unlinked once open):
//   deadlock  the parent holds a flock on file 1 and waits in fcntl(F_SETLKW) for a range of
//             file 2 that its child holds (F_SETLK); the child waits in flock for file 1.
//             flock and POSIX locks are separate, so the kernel's EDEADLK check cannot see it.
//   stopped   the parent holds a flock; the child does 0.5 s of work and waits for it; the
//             parent then stops itself (SIGSTOP): the releaser cannot run.
//   ofd       the parent holds an OFD lock (pid -1 in /proc/locks) and idles in pause(); the
//             child does 0.5 s of work and waits in F_OFD_SETLKW on its own open of the file.
// Prints "ready child=PID" (and the files' inodes) once the child is about to wait.
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int tmpfile_fd(char *path, int *second) {
    int fd = mkstemp(path);
    if (fd < 0) exit(1);
    *second = open(path, O_RDWR);
    if (*second < 0) exit(1);
    unlink(path);
    return fd;
}

static void burn(void) {
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    volatile unsigned long x = 0;
    do {
        for (int i = 0; i < 1000000; i++) x += i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 500000000L);
}

static int setlk(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    return fcntl(fd, cmd, &fl);
}

static unsigned long ino(int fd) {
    struct stat st;
    fstat(fd, &st);
    return (unsigned long)st.st_ino;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "deadlock";
    char p1[] = "/tmp/hangwatch-lock1-XXXXXX", p2[] = "/tmp/hangwatch-lock2-XXXXXX";
    int a1, a2, b1, b2;
    a1 = tmpfile_fd(p1, &b1);
    a2 = tmpfile_fd(p2, &b2);
    int sync[2];
    if (pipe(sync) != 0) return 1;
    char c = 0;
    if (strcmp(mode, "deadlock") == 0) {
        if (flock(a1, LOCK_EX) != 0) return 1;
        pid_t child = fork();
        if (child == 0) {
            close(a1); // a1's open file holds the parent's flock
            if (setlk(b2, F_SETLK, F_WRLCK, 10, 5) != 0) return 1;
            if (write(sync[1], "x", 1) != 1) return 1;
            return flock(b1, LOCK_EX);
        }
        if (read(sync[0], &c, 1) != 1) return 1;
        printf("ready child=%d file1=%lu file2=%lu\n", child, ino(a1), ino(a2));
        fflush(stdout);
        return setlk(a2, F_SETLKW, F_WRLCK, 0, 100);
    }
    if (strcmp(mode, "stopped") == 0) {
        if (flock(a1, LOCK_EX) != 0) return 1;
        pid_t child = fork();
        if (child == 0) {
            close(a1);
            burn();
            if (write(sync[1], "x", 1) != 1) return 1;
            return flock(b1, LOCK_EX);
        }
        if (read(sync[0], &c, 1) != 1) return 1;
        printf("ready child=%d file1=%lu\n", child, ino(a1));
        fflush(stdout);
        for (;;) raise(SIGSTOP);
    }
    if (strcmp(mode, "ofd") == 0) {
        if (setlk(a1, F_OFD_SETLK, F_WRLCK, 0, 0) != 0) return 1;
        pid_t child = fork();
        if (child == 0) {
            close(a1);
            burn();
            if (write(sync[1], "x", 1) != 1) return 1;
            return setlk(b1, F_OFD_SETLKW, F_RDLCK, 0, 0);
        }
        if (read(sync[0], &c, 1) != 1) return 1;
        printf("ready child=%d file1=%lu\n", child, ino(a1));
        fflush(stdout);
        for (;;) pause();
    }
    return 2;
}
