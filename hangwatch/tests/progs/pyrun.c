// Runs a Python reproduction in the test harness: `pyrun SCRIPT ARGS...` execs
// `python3 -u SCRIPT ARGS...` in place (same pid), so the harness's Child (which builds and
// starts C programs) starts, reads and kills Python programs too. The script prints the ready
// line.
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: pyrun SCRIPT [ARGS...]\n");
        return 2;
    }
    char *args[64];
    int n = 0;
    args[n++] = "python3";
    args[n++] = "-u";
    for (int i = 1; i < argc && n < 63; i++) args[n++] = argv[i];
    args[n] = NULL;
    execvp("python3", args);
    perror("exec python3");
    return 127;
}
