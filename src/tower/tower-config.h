/* SPDX-License-Identifier: MIT */
/*
 * tower-config: /etc/prakat/prakat-tower.conf, the tower agent's one [tower] section.  Every error
 * names the file, the line and the fix; an unknown key is an error, so a misspelt key never silently
 * falls back to a default.
 */
#pragma once

#include "util.h"

#define TOWER_VILLAGE_MAX 999u

typedef struct TowerConfig {
        char *path;
        unsigned village;
        char *broker;    /* as written: mqtt://host[:port] or mqtts://host[:port] */
        char *host;      /* parsed from broker; an IPv6 address without brackets */
        unsigned port;   /* 1883 for mqtt://, 8883 for mqtts:// unless given */
        bool tls;
        char *topic_prefix; /* no leading or trailing '/', no wildcards */
        char *state_dir;
        char *player; /* command template with {file} */
        char *tts;    /* command template with {text}, and optionally {file} to render into */
        char *ca_file, *cert_file, *key_file;
        char *username, *password_file;
        usec_t late_limit;
        usec_t max_play_time;
        uint64_t audio_cache_size;
} TowerConfig;

/*
 * Loads and checks a config file.  Relative paths are relative to the file's folder.  Returns 0, or a
 * negative errno with *ret_error set to "FILE:LINE: what is wrong. How to fix it." (malloc'd).
 */
int tower_config_load(const char *path, TowerConfig **ret_config, char **ret_error);
void tower_config_free(TowerConfig *config);

/*
 * Reads the password from password_file (one line; the trailing newline is dropped).  Returns 0 with
 * *ret_password NULL when no password_file is configured; -EPERM when the file is readable by other
 * users; another negative errno when it cannot be read.  *ret_error says what to do.
 */
int tower_config_read_password(const TowerConfig *config, char **ret_password, char **ret_error);
