/* SPDX-License-Identifier: MIT */
#include "tower-config.h"

#include "inifile.h"

#include <sys/stat.h>

#define TOWER_TOPIC_PREFIX_MAX 128

typedef struct Parser {
        IniFile ini;
        TowerConfig *config;
        unsigned seen_line[32]; /* line of each known key once set, to refuse a key set twice */
} Parser;

/* "mqtt://host", "mqtts://host:8883", "mqtt://[::1]:1883".  No user, path or query. */
static int parse_broker(const char *url, char **ret_host, unsigned *ret_port, bool *ret_tls) {
        _cleanup_free_ char *host = NULL;
        const char *rest, *end, *colon;
        unsigned port;
        bool tls;

        if (startswith_nocase(url, "mqtt://")) {
                tls = false;
                rest = url + 7;
        } else if (startswith_nocase(url, "mqtts://")) {
                tls = true;
                rest = url + 8;
        } else
                return -EPROTONOSUPPORT;
        port = tls ? 8883 : 1883;
        if (*rest == '[') {
                end = strchr(rest, ']');
                if (!end || end == rest + 1)
                        return -EINVAL;
                host = xstrndup(rest + 1, (size_t) (end - rest - 1));
                colon = end[1] == ':' ? end + 1 : NULL;
                if (!colon && end[1] != 0)
                        return -EINVAL;
        } else {
                colon = strchr(rest, ':');
                host = colon ? xstrndup(rest, (size_t) (colon - rest)) : xstrdup(rest);
        }
        if (isempty(host) || strpbrk(host, "/?#@ \t"))
                return -EINVAL;
        if (colon && parse_unsigned(colon + 1, 1, 65535, &port) < 0)
                return -EINVAL;
        *ret_host = TAKE_PTR(host);
        *ret_port = port;
        *ret_tls = tls;
        return 0;
}

static bool topic_prefix_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > TOWER_TOPIC_PREFIX_MAX || s[0] == '/' || s[n - 1] == '/' || strstr(s, "//"))
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '/' || *s == '-' || *s == '_' || *s == '.'))
                        return false;
        return true;
}

/* A command template: split on blanks into at most 32 words, the first being the program. */
static bool command_valid(const char *s) {
        size_t words = 0;
        bool in_word = false;

        for (; *s; s++) {
                bool blank = *s == ' ' || *s == '\t';
                if (!blank && !in_word)
                        words++;
                in_word = !blank;
        }
        return words > 0 && words <= 32;
}

typedef enum Key {
        KEY_VILLAGE,
        KEY_BROKER,
        KEY_TOPIC_PREFIX,
        KEY_STATE_DIR,
        KEY_PLAYER,
        KEY_TTS,
        KEY_CA_FILE,
        KEY_CERT_FILE,
        KEY_KEY_FILE,
        KEY_USERNAME,
        KEY_PASSWORD_FILE,
        KEY_LATE_LIMIT,
        KEY_MAX_PLAY_TIME,
        KEY_AUDIO_CACHE_SIZE,
        _KEY_MAX,
} Key;

static const char *const key_names[_KEY_MAX] = {
        [KEY_VILLAGE] = "village",
        [KEY_BROKER] = "broker",
        [KEY_TOPIC_PREFIX] = "topic_prefix",
        [KEY_STATE_DIR] = "state_dir",
        [KEY_PLAYER] = "player",
        [KEY_TTS] = "tts",
        [KEY_CA_FILE] = "ca_file",
        [KEY_CERT_FILE] = "cert_file",
        [KEY_KEY_FILE] = "key_file",
        [KEY_USERNAME] = "username",
        [KEY_PASSWORD_FILE] = "password_file",
        [KEY_LATE_LIMIT] = "late_limit",
        [KEY_MAX_PLAY_TIME] = "max_play_time",
        [KEY_AUDIO_CACHE_SIZE] = "audio_cache_size",
};

static char *key_list(void) {
        StrBuf b = {};

        for (size_t i = 0; i < _KEY_MAX; i++)
                strbuf_printf(&b, "%s%s", i ? ", " : "", key_names[i]);
        return strbuf_steal(&b);
}

static bool set_string(char **target, const char *value) {
        free(*target);
        *target = xstrdup(value);
        return true;
}

static bool set_path(Parser *p, char **target, const char *name, const char *value) {
        if (isempty(value))
                return ini_fail(&p->ini, p->ini.line, "%s is empty. Give a path, or remove the line.", name);
        free(*target);
        *target = ini_resolve_path(p->config->path, value);
        return true;
}

static bool set_duration(Parser *p, const char *name, const char *value, usec_t min, usec_t *ret) {
        usec_t v;

        if (parse_duration(value, &v) < 0)
                return ini_fail(&p->ini, p->ini.line, "%s = %s is not a duration. Write a number with a unit, for "
                                   "example 30s, 10m or 1h.", name, value);
        if (v < min)
                return ini_fail(&p->ini, p->ini.line, "%s = %s is too short. Write at least %llu seconds.", name, value,
                                   (unsigned long long) (min / USEC_PER_SEC));
        *ret = v;
        return true;
}

static bool handle_key(Parser *p, Key key, const char *name, const char *value) {
        TowerConfig *c = p->config;
        int r;

        switch (key) {
        case KEY_VILLAGE:
                if (parse_unsigned(value, 1, TOWER_VILLAGE_MAX, &c->village) < 0)
                        return ini_fail(&p->ini, p->ini.line, "village = %s is not a village number. Write the หมู่ "
                                           "number of this tower, from 1 to %u, for example village = 3.", value,
                                           TOWER_VILLAGE_MAX);
                return true;
        case KEY_BROKER:
                free(c->host);
                c->host = NULL;
                r = parse_broker(value, &c->host, &c->port, &c->tls);
                if (r == -EPROTONOSUPPORT)
                        return ini_fail(&p->ini, p->ini.line, "broker = %s: start it with mqtt:// (or mqtts:// for "
                                           "TLS), for example broker = mqtts://broker.bokaeo.go.th:8883.", value);
                if (r < 0)
                        return ini_fail(&p->ini, p->ini.line, "broker = %s is not a broker address. Write "
                                           "mqtt://HOST or mqtt://HOST:PORT (port 1-65535), nothing after it.",
                                           value);
                return set_string(&c->broker, value);
        case KEY_TOPIC_PREFIX:
                if (!topic_prefix_valid(value))
                        return ini_fail(&p->ini, p->ini.line, "topic_prefix = %s is not allowed. Use letters, digits, "
                                           "'-', '_', '.' and '/' between parts (at most %u bytes, no '/' at "
                                           "either end), the same as the daemon's, for example bokaeo/tower.",
                                           value, TOWER_TOPIC_PREFIX_MAX);
                return set_string(&c->topic_prefix, value);
        case KEY_STATE_DIR:
                return set_path(p, &c->state_dir, name, value);
        case KEY_PLAYER:
        case KEY_TTS:
                if (!command_valid(value))
                        return ini_fail(&p->ini, p->ini.line, "%s = %s: give a command of at most 32 words, for "
                                           "example %s", name, value, key == KEY_PLAYER ? "mpg123 -q {file}" :
                                           "espeak-ng -v th {text}");
                if (key == KEY_PLAYER && !strstr(value, "{file}"))
                        return ini_fail(&p->ini, p->ini.line, "player = %s has no {file}. Write where the audio file "
                                           "goes, for example player = mpg123 -q {file}.", value);
                if (key == KEY_TTS && !strstr(value, "{text}"))
                        return ini_fail(&p->ini, p->ini.line, "tts = %s has no {text}. Write where the text goes, for "
                                           "example tts = espeak-ng -v th {text}.", value);
                return set_string(key == KEY_PLAYER ? &c->player : &c->tts, value);
        case KEY_CA_FILE:
                return set_path(p, &c->ca_file, name, value);
        case KEY_CERT_FILE:
                return set_path(p, &c->cert_file, name, value);
        case KEY_KEY_FILE:
                return set_path(p, &c->key_file, name, value);
        case KEY_PASSWORD_FILE:
                return set_path(p, &c->password_file, name, value);
        case KEY_USERNAME:
                if (isempty(value))
                        return ini_fail(&p->ini, p->ini.line, "username is empty. Give the broker user name, or remove "
                                           "the line.");
                return set_string(&c->username, value);
        case KEY_LATE_LIMIT:
                return set_duration(p, name, value, USEC_PER_SEC, &c->late_limit);
        case KEY_MAX_PLAY_TIME:
                return set_duration(p, name, value, USEC_PER_SEC, &c->max_play_time);
        case KEY_AUDIO_CACHE_SIZE:
                if (parse_size(value, &c->audio_cache_size) < 0 || c->audio_cache_size < 1024 * 1024)
                        return ini_fail(&p->ini, p->ini.line, "audio_cache_size = %s is not a size of at least 1M. "
                                           "Write for example 200M or 1G.", value);
                return true;
        case _KEY_MAX:
                break;
        }
        abort();
}

static int config_handler(void *userdata, const char *section, const char *name, const char *value) {
        Parser *p = userdata;
        _cleanup_free_ char *known = NULL;

        if (p->ini.error)
                return 0;
        if (isempty(section))
                return ini_fail(&p->ini, p->ini.line, "'%s' comes before [tower]. Put a line [tower] above it.", name);
        if (!streq(section, "tower"))
                return ini_fail(&p->ini, p->ini.line, "unknown section [%s]. This file has one section, [tower].",
                                   section);
        for (Key k = 0; k < _KEY_MAX; k++) {
                if (!streq(name, key_names[k]))
                        continue;
                if (p->seen_line[k])
                        return ini_fail(&p->ini, p->ini.line, "%s is set twice (first on line %u). Keep one.", name,
                                           p->seen_line[k]);
                p->seen_line[k] = p->ini.line;
                return handle_key(p, k, name, value);
        }
        known = key_list();
        return ini_fail(&p->ini, p->ini.line, "unknown key '%s' in [tower]. Known keys: %s. Check the spelling.", name,
                           known);
}

static TowerConfig *config_new_defaults(const char *path) {
        TowerConfig *c = xcalloc(1, sizeof(TowerConfig));

        c->path = xstrdup(path);
        c->state_dir = xstrdup("/var/lib/prakat-tower");
        c->player = xstrdup("mpg123 -q {file}");
        c->tts = xstrdup("espeak-ng -v th {text}");
        c->late_limit = 30 * USEC_PER_MINUTE;
        c->max_play_time = 15 * USEC_PER_MINUTE;
        c->audio_cache_size = 200ULL * 1024 * 1024;
        return c;
}

static bool config_check(Parser *p) {
        TowerConfig *c = p->config;

        if (!c->village)
                return ini_fail(&p->ini, 0, "village is missing. Add village = N to [tower], N being the หมู่ number "
                                   "of this tower.");
        if (!c->host)
                return ini_fail(&p->ini, 0, "broker is missing. Add for example broker = mqtts://broker.example:8883 "
                                   "to [tower].");
        if (!c->topic_prefix)
                return ini_fail(&p->ini, 0, "topic_prefix is missing. Add the daemon's topic_prefix to [tower], for "
                                   "example topic_prefix = bokaeo/tower.");
        if (!!c->cert_file != !!c->key_file)
                return ini_fail(&p->ini, p->seen_line[c->cert_file ? KEY_CERT_FILE : KEY_KEY_FILE],
                                   "cert_file and key_file go together. Give both (a client certificate and its "
                                   "key) or neither.");
        if ((c->ca_file || c->cert_file) && !c->tls)
                return ini_fail(&p->ini, p->seen_line[c->ca_file ? KEY_CA_FILE : KEY_CERT_FILE],
                                   "TLS files are set but broker = %s is not TLS. Write mqtts:// in broker, or "
                                   "remove the TLS lines.", c->broker);
        if (c->password_file && !c->username)
                return ini_fail(&p->ini, p->seen_line[KEY_PASSWORD_FILE], "password_file is set without username. "
                                   "Add username = NAME.");
        return true;
}

int tower_config_load(const char *path, TowerConfig **ret_config, char **ret_error) {
        Parser p = {};
        int r;

        p.config = config_new_defaults(path);
        r = ini_file_parse(&p.ini, path, 64 * 1024, "[tower]", config_handler, &p);
        if (r >= 0)
                config_check(&p);
        if (p.ini.error) {
                tower_config_free(p.config);
                *ret_error = p.ini.error;
                return r < 0 ? r : -EINVAL;
        }
        *ret_config = p.config;
        return 0;
}

void tower_config_free(TowerConfig *c) {
        if (!c)
                return;
        free(c->path);
        free(c->broker);
        free(c->host);
        free(c->topic_prefix);
        free(c->state_dir);
        free(c->player);
        free(c->tts);
        free(c->ca_file);
        free(c->cert_file);
        free(c->key_file);
        free(c->username);
        free(c->password_file);
        free(c);
}

int tower_config_read_password(const TowerConfig *c, char **ret_password, char **ret_error) {
        _cleanup_free_ char *data = NULL;
        struct stat st;
        char *nl;
        int r;

        *ret_password = NULL;
        if (!c->password_file)
                return 0;
        if (stat(c->password_file, &st) < 0) {
                r = -errno;
                *ret_error = xasprintf("%s: cannot read password_file: %s. Create it, readable only by the agent.",
                                       c->password_file, strerror(errno));
                return r;
        }
        if (st.st_mode & S_IROTH) {
                *ret_error = xasprintf("%s: password_file is readable by every user. Run chmod 0600 (or 0640 "
                                       "with the agent's group) on it.", c->password_file);
                return -EPERM;
        }
        r = read_file(c->password_file, 4096, &data, NULL);
        if (r < 0) {
                *ret_error = xasprintf("%s: cannot read password_file: %s.", c->password_file, strerror(-r));
                return r;
        }
        nl = strpbrk(data, "\r\n");
        if (nl)
                *nl = 0;
        if (isempty(data)) {
                *ret_error = xasprintf("%s: password_file is empty. Write the broker password on its first line.",
                                       c->password_file);
                return -EINVAL;
        }
        *ret_password = TAKE_PTR(data);
        return 0;
}
