/*
 * ECOSYSTEM pitfall 20: a program that starts, says "ready", and waits for its standard
 * input to close, so the test can read /proc/PID/task/ * /status of every thread in it
 * (threads a preload starts must block every asynchronous signal). Unmodified.
 */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    return 0;
}
