/* SPDX-License-Identifier: MIT */
/* prakatd: the daemon. Always in the foreground; systemd (or `make run`) supervises it. */
#include <getopt.h>
#include <sysexits.h>

#include "log.h"
#include "manager.h"

#ifndef PRAKAT_CONFIG
#define PRAKAT_CONFIG "/etc/prakat/prakat.conf"
#endif

static void help(void) {
        printf("Usage: prakatd [--config FILE] [--check]\n\n"
               "Publishes the announcements dropped into the spool to every configured channel.\n\n"
               "  -c, --config FILE  configuration (default %s)\n"
               "      --check        check the configuration and plugins, then exit\n"
               "  -h, --help         this help\n"
               "      --version      print the version\n",
               PRAKAT_CONFIG);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' }, { "check", no_argument, NULL, 'C' },
                { "help", no_argument, NULL, 'h' },          { "version", no_argument, NULL, 'V' },
                {},
        };
        const char *config = PRAKAT_CONFIG;
        bool check = false;
        Manager *m = NULL;
        int c, r;

        log_open("prakatd");
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 'C':
                        check = true;
                        break;
                case 'h':
                        help();
                        return EX_OK;
                case 'V':
                        printf("prakatd %s (plugin ABI %d)\n", PRAKAT_VERSION, PRAKAT_CHANNEL_ABI_VERSION);
                        return EX_OK;
                default:
                        return EX_USAGE;
                }
        if (optind < argc) {
                log_error("Unexpected argument '%s'. See prakatd --help.", argv[optind]);
                return EX_USAGE;
        }
        if (clock_init() < 0) {
                log_error("PRAKAT_NOW must look like 2026-11-25T03:00:00Z.");
                return EX_USAGE;
        }
        r = manager_new(config, check, &m);
        if (r < 0)
                return r == -EINVAL || r == -ENOENT || r == -EPROTO ? EX_CONFIG : EX_SOFTWARE;
        if (check) {
                printf("%s: configuration and plugins are fine.\n", config);
                manager_free(m);
                return EX_OK;
        }
        r = manager_run(m);
        manager_free(m);
        return r < 0 ? EX_SOFTWARE : EX_OK;
}
