/* SPDX-License-Identifier: MIT */
/*
 * prakat-tower: the agent on the small computer inside each village broadcast tower (หอกระจายข่าว).
 * It follows its village's topics on the broker, keeps the schedule on disk, plays announcements on time
 * by its own clock even while the broker or the daemon is down, and acks every step.  See
 * man/prakat-tower.8 for the message contract.  Always in the foreground; systemd supervises it.
 */
#include <getopt.h>
#include <sysexits.h>

#include "log.h"
#include "tower/tower-agent.h"
#include "tower/tower-child.h"

#ifndef PRAKAT_TOWER_CONFIG
#define PRAKAT_TOWER_CONFIG "/etc/prakat/prakat-tower.conf"
#endif

static void help(void) {
        printf("Usage: prakat-tower [--config FILE] [--check] [--dry-run]\n\n"
               "Plays the announcements the prakat daemon schedules for this village's broadcast tower.\n\n"
               "  -c, --config FILE  configuration (default %s)\n"
               "      --check        check the configuration, then exit\n"
               "      --dry-run      log what would be played instead of playing it (acks as usual)\n"
               "  -h, --help         this help\n"
               "      --version      print the version\n",
               PRAKAT_TOWER_CONFIG);
}

/* The player and TTS programs should exist; a missing one is worth a warning, not a refusal. */
static void check_command(const char *key, const char *template) {
        _cleanup_(tower_strv_freep) char **argv = NULL;
        _cleanup_free_ char *path = NULL;

        if (tower_command_build(template, "x", "x", &argv) < 0)
                return;
        if (strchr(argv[0], '/')) {
                if (access(argv[0], X_OK) < 0)
                        fprintf(stderr, "warning: %s: %s is not an executable file.\n", key, argv[0]);
                return;
        }
        for (const char *p = getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin"; *p;) {
                size_t n = strcspn(p, ":");
                _cleanup_free_ char *dir = xstrndup(p, n);
                _cleanup_free_ char *candidate = path_join(dir, argv[0]);
                if (access(candidate, X_OK) == 0)
                        return;
                p += n + (p[n] == ':');
        }
        fprintf(stderr, "warning: %s: '%s' is not installed (not found in PATH).\n", key, argv[0]);
}

static int check_config(TowerConfig *config) {
        _cleanup_free_ char *password = NULL, *error = NULL;

        if (tower_config_read_password(config, &password, &error) < 0) {
                fprintf(stderr, "%s\n", error);
                return EX_CONFIG;
        }
        if (password)
                explicit_bzero(password, strlen(password));
        check_command("player", config->player);
        check_command("tts", config->tts);
        printf("%s: the configuration is fine (village %u, broker %s).\n", config->path, config->village,
               config->broker);
        return EX_OK;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' }, { "check", no_argument, NULL, 'C' },
                { "dry-run", no_argument, NULL, 'D' },     { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },     {},
        };
        const char *config_path = PRAKAT_TOWER_CONFIG;
        _cleanup_free_ char *error = NULL;
        TowerConfig *config = NULL;
        TowerAgent *agent = NULL;
        bool check = false, dry_run = false;
        int c, r;

        log_open("prakat-tower");
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case 'C':
                        check = true;
                        break;
                case 'D':
                        dry_run = true;
                        break;
                case 'h':
                        help();
                        return EX_OK;
                case 'V':
                        printf("prakat-tower %s\n", TOWER_VERSION);
                        return EX_OK;
                default:
                        return EX_USAGE;
                }
        if (optind < argc) {
                log_error("Unexpected argument '%s'. See prakat-tower --help.", argv[optind]);
                return EX_USAGE;
        }
        if (clock_init() < 0) {
                log_error("PRAKAT_NOW must look like 2026-11-25T03:00:00Z.");
                return EX_USAGE;
        }
        r = tower_config_load(config_path, &config, &error);
        if (r < 0) {
                if (check)
                        fprintf(stderr, "%s\n", error);
                else
                        log_error("%s", error);
                return r == -ENOENT || r == -EACCES ? EX_NOINPUT : EX_CONFIG;
        }
        if (check) {
                r = check_config(config);
                tower_config_free(config);
                return r;
        }
        r = tower_agent_new(config, dry_run, &agent);
        if (r < 0)
                return r == -EINVAL || r == -EPERM || r == -ENOENT || r == -EACCES ? EX_CONFIG : EX_SOFTWARE;
        r = tower_agent_run(agent);
        tower_agent_free(agent);
        return r < 0 ? EX_SOFTWARE : EX_OK;
}
