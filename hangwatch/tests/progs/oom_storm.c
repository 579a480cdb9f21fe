/* An OOM storm: after SIGUSR1, keeps PARALLEL children allocating memory
 * until N of them have been killed by SIGKILL (the OOM killer, when the
 * test has put this process in a memory-limited cgroup). The parent makes
 * itself unkillable (oom_score_adj -1000); each child sets its own back to 0.
 * At the end it writes the killed children's pids, one per line, to OUTFILE
 * (atomically: OUTFILE.tmp then rename) and idles.
 *
 * usage: oom_storm N PARALLEL OUTFILE
 * ready line: ready
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK (1024 * 1024)
#define SAFETY (1024UL * 1024 * 1024)

static void set_adj(const char *v)
{
	FILE *f = fopen("/proc/self/oom_score_adj", "w");
	if (f) {
		fputs(v, f);
		fclose(f);
	}
}

static void hog(void)
{
	set_adj("0");
	for (unsigned long done = 0; done < SAFETY; done += CHUNK) {
		char *p = malloc(CHUNK);
		if (!p)
			_exit(2);
		memset(p, 1, CHUNK);
	}
	_exit(3); /* no limit applied */
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: oom_storm N PARALLEL OUTFILE\n");
		return 2;
	}
	int n = atoi(argv[1]), par = atoi(argv[2]);
	const char *out = argv[3];
	sigset_t set;
	int sig;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	printf("ready\n");
	fflush(stdout);
	if (sigwait(&set, &sig) != 0)
		return 1;
	set_adj("-1000");
	pid_t *killed = calloc(n, sizeof *killed);
	int nkilled = 0, running = 0, other = 0;
	while (nkilled < n && other == 0) {
		while (running < par && nkilled + running < n) {
			pid_t c = fork();
			if (c == 0)
				hog();
			if (c < 0)
				break;
			running++;
		}
		int st;
		pid_t c = wait(&st);
		if (c < 0)
			break;
		running--;
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
			killed[nkilled++] = c;
		else
			other++;
	}
	while (running > 0 && wait(NULL) > 0)
		running--;
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", out);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return 1;
	for (int i = 0; i < nkilled; i++)
		fprintf(f, "%d\n", killed[i]);
	if (other)
		fprintf(f, "other %d\n", other);
	fclose(f);
	rename(tmp, out);
	for (;;)
		pause();
}
