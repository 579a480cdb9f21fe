/* A process that names itself, its threads and a file it waits on with what a hostile user
 * would use to attack an operator's terminal (issue 9):
 *   main thread  "\x1b]0;pwned\x07"   OSC 0: sets the terminal's window/pane title
 *   thread 2     "\x1b[2J\x1b[31m\r"  clears the screen, turns text red, returns the cursor
 *   thread 3     "\u202egpj.exe"     a bidi override: reads "exe.jpg"
 *   thread 4     "a\xff\xfe\x9bb"    invalid UTF-8 (and a raw C1 CSI byte)
 * Its command line is whatever the test passes (a newline that forges a report line).
 * Every thread blocks forever in read() on a FIFO whose path (argv[1], a directory) ends in
 * "\x1b]2;evil\x07\n✖ forged", so fd targets and decoded waits carry hostile text too.
 *
 * ready line: ready t2=<tid> t3=<tid> t4=<tid>
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fifo_fd;
static _Atomic long tids[3];

struct job {
	int i;
	const char *name;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	prctl(PR_SET_NAME, j->name);
	tids[j->i] = syscall(SYS_gettid);
	char c;
	for (;;)
		if (read(fifo_fd, &c, 1) < 0)
			return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: hostile_names DIR [ARGS...]\n");
		return 2;
	}
	char path[4096];
	snprintf(path, sizeof path, "%s/\x1b]2;evil\x07\n\xe2\x9c\x96 forged", argv[1]);
	unlink(path);
	if (mkfifo(path, 0600) != 0) {
		perror("mkfifo");
		return 1;
	}
	/* O_RDWR: the open does not wait for a writer, and reads block (we are the only writer). */
	fifo_fd = open(path, O_RDWR);
	if (fifo_fd < 0) {
		perror("open fifo");
		return 1;
	}
	static struct job jobs[3] = {
		{0, "\x1b[2J\x1b[31m\r"},
		{1, "\xe2\x80\xaegpj.exe"},
		{2, "a\xff\xfe\x9b" "b"},
	};
	pthread_t t;
	for (int i = 0; i < 3; i++)
		if (pthread_create(&t, NULL, worker, &jobs[i]) != 0)
			return 1;
	for (int i = 0; i < 3; i++)
		while (!tids[i])
			usleep(1000);
	prctl(PR_SET_NAME, "\x1b]0;pwned\x07");
	printf("ready t2=%ld t3=%ld t4=%ld\n", tids[0], tids[1], tids[2]);
	fflush(stdout);
	char c;
	for (;;)
		if (read(fifo_fd, &c, 1) < 0)
			return 1;
}
