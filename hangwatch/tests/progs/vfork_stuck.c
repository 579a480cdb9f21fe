/* A parent stuck in vfork(): its child neither execs nor exits, so the parent sleeps in
 * uninterruptible sleep (state D, kernel_clone / wait_for_vfork_done) for as long as the
 * child lives. The simplest way to hold a thread in D without a dead disk or NFS server.
 *
 * ready line (printed by the child, with write(2): the parent is blocked):
 *   ready parent=PID child=PID
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	pid_t parent = getpid();
	pid_t child = vfork();
	if (child == 0) {
		char line[64];
		int n = snprintf(line, sizeof line, "ready parent=%d child=%d\n", (int)parent,
				 (int)getpid());
		if (write(1, line, (size_t)n) != n)
			_exit(1);
		for (;;)
			pause();
	}
	return 0;
}
