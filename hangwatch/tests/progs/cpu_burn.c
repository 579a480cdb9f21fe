/* One thread spinning in user space forever: always runnable, never in a
 * blocking syscall.
 *
 * ready line: ready
 */
#include <stdio.h>

int main(void)
{
	volatile unsigned long x = 0;
	printf("ready\n");
	fflush(stdout);
	for (;;)
		x++;
}
