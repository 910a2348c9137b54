/* files.c - see files.h. */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

bool file_readable(const char *path, char *why, size_t whylen)
{
    char byte;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || read(fd, &byte, 1) < 0) {
        snprintf(why, whylen, "cannot read '%s': %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    close(fd);
    return true;
}
