/* Shared by the benchmark workloads (cargo xtask bench). Each workload runs for a fixed
 * duration and prints its rate, ops per second, as one number on stdout. */
#ifndef HANGWATCH_BENCH_COMMON_H
#define HANGWATCH_BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void die(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    exit(1);
}

/* argv[i] as a positive number of seconds. */
static inline double arg_seconds(int argc, char **argv, int i)
{
    double s = argc > i ? atof(argv[i]) : 0.0;
    if (s <= 0.0) {
        fprintf(stderr, "usage: %s ... SECONDS\n", argv[0]);
        exit(2);
    }
    return s;
}

static inline void report(unsigned long long ops, double elapsed)
{
    printf("%.1f\n", (double)ops / elapsed);
    fflush(stdout);
}

#endif
