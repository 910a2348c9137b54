/* signals.c - the stop signals; see signals.h. */
#include "signals.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t signals_stop;
static int wake[2] = {-1, -1};

static void on_stop(int signo)
{
    (void)signo;
    if (signals_stop)
        _exit(EXIT_FAILURE);
    signals_stop = 1;
    if (wake[1] >= 0) {
        ssize_t ignored = write(wake[1], "s", 1);
        (void)ignored;
    }
}

int signals_install(bool wake_pipe)
{
    struct sigaction sa;

    if (wake_pipe) {
        if (pipe(wake) != 0)
            return -1;
        for (int i = 0; i < 2; i++) {
            fcntl(wake[i], F_SETFL, O_NONBLOCK);
            fcntl(wake[i], F_SETFD, FD_CLOEXEC);
        }
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    return 0;
}

int signals_wake_fd(void)
{
    return wake[0];
}
