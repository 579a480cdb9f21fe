// A parent waits for its child to exit before reading the child's output; the child fills
// the pipe and blocks writing it. Neither can move: a wait-for cycle across two processes.
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int p[2];
    if (pipe(p) != 0) return 1;
    struct stat st;
    fstat(p[0], &st);
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        static char buf[1 << 20];
        memset(buf, 'x', sizeof buf);
        for (;;) {
            if (write(p[1], buf, sizeof buf) < 0) return 1;
        }
    }
    close(p[1]);
    printf("ready child=%d inode=%lu\n", child, (unsigned long)st.st_ino);
    fflush(stdout);
    int status;
    waitpid(child, &status, 0); // reads only after the child is done: never
    return 0;
}
