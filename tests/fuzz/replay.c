/* SPDX-License-Identifier: MIT */
/*
 * replay: the driver that stands in for libFuzzer in `make check`.  Runs the target once over every
 * file of its corpus (the folder compiled in as FUZZ_CORPUS, or the folders and files given as
 * arguments) and reports the result as one cmocka-style test, which tests/run-all.sh counts.  A
 * crash is a crash of this program; a corpus that cannot be read is a failure.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "fuzz.h"

static int replay_file(const char *path, size_t *count) {
        FILE *f = fopen(path, "rbe");
        uint8_t *data = NULL;
        size_t size = 0, allocated = 0;

        if (!f) {
                fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
                return -1;
        }
        for (;;) {
                if (size == allocated) {
                        allocated = allocated ? allocated * 2 : 4096;
                        data = realloc(data, allocated);
                        if (!data)
                                abort();
                }
                size_t n = fread(data + size, 1, allocated - size, f);
                if (n == 0)
                        break;
                size += n;
        }
        fclose(f);
        /* Exactly `size` bytes, as libFuzzer gives them: a read past the end is caught under ASan. */
        uint8_t *exact = malloc(size ? size : 1);
        if (!exact)
                abort();
        memcpy(exact, data, size);
        free(data);
        LLVMFuzzerTestOneInput(exact, size);
        free(exact);
        (*count)++;
        return 0;
}

static int replay_path(const char *path, size_t *count) {
        struct stat st;
        struct dirent **names;
        int n, r = 0;

        if (stat(path, &st) < 0) {
                fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
                return -1;
        }
        if (!S_ISDIR(st.st_mode))
                return replay_file(path, count);
        n = scandir(path, &names, NULL, alphasort);
        if (n < 0) {
                fprintf(stderr, "cannot list %s: %s\n", path, strerror(errno));
                return -1;
        }
        for (int i = 0; i < n; i++) {
                char child[4096];
                if (names[i]->d_name[0] != '.' && r == 0) {
                        snprintf(child, sizeof child, "%s/%s", path, names[i]->d_name);
                        r = replay_path(child, count);
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char **argv) {
        const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        const char *fallback[] = { FUZZ_CORPUS };
        const char *const *paths = argc > 1 ? (const char *const *) argv + 1 : fallback;
        size_t n_paths = argc > 1 ? (size_t) argc - 1 : 1, count = 0;
        int r = 0;

        printf("[==========] Running 1 test(s).\n[ RUN      ] %s\n", name);
        fflush(stdout);
        for (size_t i = 0; i < n_paths && r == 0; i++)
                r = replay_path(paths[i], &count);
        if (r == 0 && count == 0) {
                fprintf(stderr, "no inputs to replay\n");
                r = -1;
        }
        if (r < 0) {
                printf("[  FAILED  ] %s\n[==========] 1 test(s) run.\n[  FAILED  ] 1 test(s), listed below:\n"
                       "[  FAILED  ] %s\n", name, name);
                return 1;
        }
        printf("[       OK ] %s: %zu inputs replayed\n[==========] 1 test(s) run.\n[  PASSED  ] 1 test(s).\n",
               name, count);
        return 0;
}
