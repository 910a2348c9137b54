/* files.c - see files.h. */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool file_readable(const char *path, char *why, size_t whylen)
{
    char byte;
    struct stat st;
    /* Not blocking: opening a FIFO would wait for a writer, silently. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    if (fd >= 0 && fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        snprintf(why, whylen, "cannot read '%s': a %s, not a file (it would wait for a writer)",
                 path, S_ISFIFO(st.st_mode) ? "named pipe" : "socket");
        close(fd);
        return false;
    }
    if (fd < 0 || read(fd, &byte, 1) < 0) {
        snprintf(why, whylen, "cannot read '%s': %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    close(fd);
    return true;
}
