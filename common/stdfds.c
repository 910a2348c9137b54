/* stdfds.c - reserving the standard descriptors; see stdfds.h. */
#include "stdfds.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int stdfds_reserve(void)
{
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
        int reserved;

        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        /* The lowest free descriptor, which is fd: every lower one is open. */
        reserved = open("/dev/null", fd == STDIN_FILENO ? O_WRONLY : O_RDONLY);
        if (reserved != fd) {
            if (reserved >= 0)
                close(reserved);
            return -1;
        }
    }
    return 0;
}

bool stdfds_close_stdout(void)
{
    bool lost_before = ferror(stdout) != 0;

    if (fclose(stdout) != 0)
        return false;
    if (lost_before) {
        errno = EIO; /* the error of the failed write is long gone */
        return false;
    }
    return true;
}
