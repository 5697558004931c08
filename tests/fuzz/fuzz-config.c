/* SPDX-License-Identifier: MIT */
/*
 * The config parser (src/config.c over src/inifile.c and libinih) on arbitrary file contents: it
 * loads, or refuses with one message naming the file, and never crashes or leaks.
 */
#include "config.h"
#include "fuzz-file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *path = fuzz_file(data, size);
        char *error = NULL;
        Config *config = NULL;
        int r = config_load(path, &config, &error);

        if (r < 0) {
                FUZZ_CHECK(!config && error && strncmp(error, path, strlen(path)) == 0);
                free(error);
        } else {
                FUZZ_CHECK(config && !error && config->spool && config->state && config->timezone);
                for (size_t i = 0; i < config->n_channels; i++)
                        FUZZ_CHECK(config_find_channel(config, config->channels[i].name));
                free(config_channel_list(config));
                config_free(config);
        }
        return 0;
}
