/* SPDX-License-Identifier: MIT */
/*
 * fuzz_file() for the targets whose parsers read a path (the config, LINE's key records); #included
 * by those targets only.  The parsers refuse symlinks, so /proc/self/fd/N of a memfd will not do: one
 * real file per process, in /dev/shm when there is one, rewritten for every input, removed at exit.
 */
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include "fuzz.h"

static char fuzz_file_path[64];

static void fuzz_file_remove(void) {
        unlink(fuzz_file_path);
}

/* Writes the input to the process's file and returns its path. */
static const char *fuzz_file(const uint8_t *data, size_t size) {
        int fd;

        if (!fuzz_file_path[0]) {
                snprintf(fuzz_file_path, sizeof fuzz_file_path, "%s/prakat-fuzz-XXXXXX",
                         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
                fd = mkstemp(fuzz_file_path);
                if (fd < 0)
                        abort();
                close(fd);
                atexit(fuzz_file_remove);
        }
        fd = open(fuzz_file_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0)
                abort();
        for (size_t done = 0; done < size;) {
                ssize_t n = write(fd, data + done, size - done);
                if (n <= 0)
                        abort();
                done += (size_t) n;
        }
        close(fd);
        return fuzz_file_path;
}
