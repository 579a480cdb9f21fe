/* Parent forks a child that sleeps forever, then blocks in wait4(child).
 * The child dies with the parent (PR_SET_PDEATHSIG) and shares its process
 * group, so killing the group cleans up both.
 *
 * ready line: ready syscall=wait4 child=<child pid>
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	pid_t parent = getpid();
	fflush(stdout);
	pid_t child = fork();
	if (child < 0) {
		perror("wait4_child: fork");
		return 1;
	}
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		for (;;)
			pause();
	}
	printf("ready syscall=wait4 child=%d\n", (int)child);
	fflush(stdout);
	int status;
	for (;;) {
		long r = syscall(SYS_wait4, child, &status, 0, NULL);
		if (r == child)
			return 0; /* child was killed: nothing left to wait for */
	}
}
