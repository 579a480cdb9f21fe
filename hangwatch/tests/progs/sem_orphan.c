/* A parent waits on a process-shared POSIX semaphore that its worker child was to post.
 *
 *   sem_orphan        the worker exits without posting: nobody else maps the semaphore, the
 *                     parent's sem_wait can never return (orphaned);
 *   sem_orphan live   the worker stays alive (in pause()) still mapping it: it could post.
 *
 * The semaphore is unlinked at once (no file is left behind); both keep it mapped.
 * ready line: ready child=PID sem=NAME
 */
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int live = argc > 1 && strcmp(argv[1], "live") == 0;
	char name[64];
	snprintf(name, sizeof name, "/hangwatch-test-sem-%d", (int)getpid());
	sem_t *sem = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
	if (sem == SEM_FAILED)
		return 1;
	sem_unlink(name);
	pid_t child = fork();
	if (child == 0) {
		if (live)
			for (;;)
				pause();
		_exit(0); /* dies without sem_post */
	}
	if (!live)
		waitpid(child, NULL, 0);
	printf("ready child=%d sem=%s\n", (int)child, name + 1);
	fflush(stdout);
	sem_wait(sem);
	return 0;
}
