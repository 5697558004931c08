/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <grp.h>
#include <limits.h>

#include "inifile.h"
#include "textenc.h"
#include "thaidate.h"

typedef struct Parser {
        IniFile ini; /* first: on_line() gets it back as the Parser */
        Config *config;
        char *section; /* the section the current line belongs to */
        unsigned section_line;
} Parser;

/* Remembers where sections start, so that a section-wide error can name its line. */
static void config_on_line(IniFile *f, const char *buffer) {
        Parser *p = (Parser *) f;
        const char *s = buffer;
        while (*s == ' ' || *s == '\t')
                s++;
        if (*s == '[') {
                const char *e = strchr(s, ']');
                free(p->section);
                p->section = e ? xstrndup(s + 1, (size_t) (e - s - 1)) : xstrdup("");
                p->section_line = p->ini.line;
        }
}

static char *config_resolve_path(const Config *c, const char *value) {
        return ini_resolve_path(c->path, value);
}

static bool set_duration(Parser *p, const char *name, const char *value, usec_t *ret) {
        if (parse_duration(value, ret) < 0)
                return ini_fail(&p->ini, p->ini.line, "%s = %s is not a duration. Write a number with a unit, "
                                   "for example 30s, 5m, 1h or 3d.", name, value);
        return true;
}

static bool handle_prakat(Parser *p, const char *name, const char *value) {
        Config *c = p->config;
        char **path_target = NULL;
        int b;

        if (streq(name, "spool"))
                path_target = &c->spool;
        else if (streq(name, "state"))
                path_target = &c->state;
        else if (streq(name, "plugin_dir"))
                path_target = &c->plugin_dir;
        else if (streq(name, "runtime_dir"))
                path_target = &c->runtime_dir;
        if (path_target) {
                if (isempty(value))
                        return ini_fail(&p->ini, p->ini.line, "%s is empty. Give a directory.", name);
                free(*path_target);
                *path_target = config_resolve_path(c, value);
                return true;
        }
        if (streq(name, "timezone")) {
                free(c->timezone);
                c->timezone = xstrdup(value);
                return true;
        }
        if (streq(name, "default_category")) {
                if (isempty(value))
                        return ini_fail(&p->ini, p->ini.line, "default_category is empty. Name a category, "
                                           "for example ข่าวประชาสัมพันธ์.");
                free(c->default_category);
                c->default_category = xstrdup(value);
                return true;
        }
        if (streq(name, "settle"))
                return set_duration(p, name, value, &c->settle);
        if (streq(name, "retry_min"))
                return set_duration(p, name, value, &c->retry_min);
        if (streq(name, "retry_max"))
                return set_duration(p, name, value, &c->retry_max);
        if (streq(name, "give_up_after"))
                return set_duration(p, name, value, &c->give_up_after);
        if (streq(name, "max_file_size")) {
                if (parse_size(value, &c->max_file_size) < 0 || c->max_file_size == 0)
                        return ini_fail(&p->ini, p->ini.line, "max_file_size = %s is not a size. "
                                           "Write for example 20M or 512K.", value);
                return true;
        }
        if (streq(name, "max_attachments")) {
                if (parse_unsigned(value, 0, 100, &c->max_attachments) < 0)
                        return ini_fail(&p->ini, p->ini.line, "max_attachments = %s is not a number from 0 to 100.",
                                           value);
                return true;
        }
        if (streq(name, "control_group")) {
                struct group gr, *result = NULL;
                char buf[4096];

                if (getgrnam_r(value, &gr, buf, sizeof buf, &result) != 0 || !result)
                        return ini_fail(&p->ini, p->ini.line, "control_group = %s: there is no such group on this "
                                           "machine. Create it (groupadd %s) and add the people who run prakat "
                                           "commands to it, or remove the line.", value, value);
                free(c->control_group);
                c->control_group = xstrdup(value);
                c->control_gid = result->gr_gid;
                return true;
        }
        if (streq(name, "require_approval")) {
                b = parse_boolean(value);
                if (b < 0)
                        return ini_fail(&p->ini, p->ini.line, "require_approval = %s: write yes or no.", value);
                c->require_approval = b;
                return true;
        }
        return ini_fail(&p->ini, p->ini.line, "unknown key '%s' in [prakat]. Known keys: spool, state, timezone, "
                           "settle, max_file_size, max_attachments, retry_min, retry_max, give_up_after, "
                           "require_approval, plugin_dir, runtime_dir, control_group, default_category. Check "
                           "the spelling.",
                           name);
}

static bool handle_village(Parser *p, const char *name, const char *value) {
        Config *c = p->config;
        _cleanup_free_ char *number = xstrdup(name);
        unsigned n;

        thai_digits_to_ascii(number);
        if (parse_unsigned(number, 1, VILLAGE_MAX, &n) < 0)
                return ini_fail(&p->ini, p->ini.line, "'%s' is not a village number. Write the หมู่ number "
                                   "from 1 to %u, then = and the village name, for example: 1 = บ้านบ่อแก้ว",
                                   name, VILLAGE_MAX);
        if (c->village_names[n])
                return ini_fail(&p->ini, p->ini.line, "village %u is listed twice. Keep one line for it.", n);
        if (isempty(value))
                return ini_fail(&p->ini, p->ini.line, "village %u has no name. Write its name after the =.", n);
        c->village_names[n] = xstrdup(value);
        c->n_villages++;
        return true;
}

static ChannelConfig *parser_channel(Parser *p, const char *channel_name) {
        Config *c = p->config;

        for (size_t i = 0; i < c->n_channels; i++)
                if (streq(c->channels[i].name, channel_name))
                        return &c->channels[i];
        c->channels = xrealloc(c->channels, (c->n_channels + 1) * sizeof(ChannelConfig));
        c->channels[c->n_channels] = (ChannelConfig) {
                .name = xstrdup(channel_name),
                .enabled = true,
                .line = p->section_line,
        };
        return &c->channels[c->n_channels++];
}

static bool channel_name_valid(const char *s) {
        if (isempty(s) || strlen(s) > 32)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
                        return false;
        return true;
}

static bool handle_channel(Parser *p, const char *channel_name, const char *name, const char *value) {
        ChannelConfig *ch;
        int b;

        if (!channel_name_valid(channel_name))
                return ini_fail(&p->ini, p->section_line, "channel name '%s' is not allowed. Use lower-case "
                                   "letters, digits, '-' and '_' (at most 32), for example [channel website].",
                                   channel_name);
        ch = parser_channel(p, channel_name);
        if (streq(name, "plugin")) {
                if (!channel_name_valid(value))
                        return ini_fail(&p->ini, p->ini.line, "plugin = %s is not a plugin name. Write for example "
                                           "plugin = website.", value);
                free(ch->plugin);
                ch->plugin = xstrdup(value);
                return true;
        }
        if (streq(name, "enabled")) {
                b = parse_boolean(value);
                if (b < 0)
                        return ini_fail(&p->ini, p->ini.line, "enabled = %s: write yes or no.", value);
                ch->enabled = b;
                return true;
        }
        for (size_t i = 0; i < ch->n_entries; i++)
                if (streq(ch->entries[i].key, name))
                        return ini_fail(&p->ini, p->ini.line, "'%s' is set twice in [channel %s] (first on line %u). "
                                           "Keep one.", name, ch->name, ch->entries[i].line);
        ch->entries = xrealloc(ch->entries, (ch->n_entries + 1) * sizeof(prakat_config_entry));
        ch->entries[ch->n_entries++] = (prakat_config_entry) {
                .key = xstrdup(name),
                .value = xstrdup(value),
                .line = p->ini.line,
        };
        return true;
}

static int config_handler(void *userdata, const char *section, const char *name, const char *value) {
        Parser *p = userdata;

        if (p->ini.error)
                return 0;
        if (streq(section, "prakat"))
                return handle_prakat(p, name, value);
        if (streq(section, "villages"))
                return handle_village(p, name, value);
        if (strncmp(section, "channel ", 8) == 0)
                return handle_channel(p, section + 8 + strspn(section + 8, " "), name, value);
        return ini_fail(&p->ini, p->section_line, "unknown section [%s]. Sections are [prakat], [villages] and "
                           "[channel NAME].", section);
}

static Config *config_new_defaults(const char *path) {
        Config *c = xcalloc(1, sizeof(Config));

        c->path = xstrdup(path);
        c->spool = xstrdup("/var/spool/prakat");
        c->state = xstrdup("/var/lib/prakat");
        c->runtime_dir = xstrdup("/run/prakat");
        c->timezone = xstrdup("Asia/Bangkok");
        c->default_category = xstrdup("ข่าวประชาสัมพันธ์");
        c->settle = 2 * USEC_PER_SEC;
        c->max_file_size = 20ULL * 1024 * 1024;
        c->max_attachments = 20;
        c->retry_min = 30 * USEC_PER_SEC;
        c->retry_max = USEC_PER_HOUR;
        c->give_up_after = 3 * USEC_PER_DAY;
        return c;
}

static bool config_check(Parser *p) {
        Config *c = p->config;

        if (c->retry_min == 0 || c->retry_min > c->retry_max)
                return ini_fail(&p->ini, 0, "retry_min must be more than 0 and not more than retry_max. "
                                   "Fix them in [prakat].");
        if (c->give_up_after < c->retry_min)
                return ini_fail(&p->ini, 0, "give_up_after is shorter than retry_min. Fix them in [prakat].");
        if (thaidate_set_timezone(c->timezone) < 0)
                return ini_fail(&p->ini, 0, "timezone = %s is not a known time zone. Write for example "
                                   "timezone = Asia/Bangkok.", c->timezone);
        for (size_t i = 0; i < c->n_channels; i++)
                if (!c->channels[i].plugin)
                        return ini_fail(&p->ini, c->channels[i].line, "[channel %s] has no plugin = line. Add "
                                           "one, for example plugin = %s.", c->channels[i].name,
                                           c->channels[i].name);
        return true;
}

int config_load(const char *path, Config **ret_config, char **ret_error) {
        Parser p = { .ini.on_line = config_on_line };
        int r;

        p.config = config_new_defaults(path);
        r = ini_file_parse(&p.ini, path, 1024 * 1024, "a [section]", config_handler, &p);
        if (r >= 0)
                config_check(&p);
        free(p.section);
        if (p.ini.error) {
                config_free(p.config);
                *ret_error = p.ini.error;
                return r < 0 ? r : -EINVAL;
        }
        *ret_config = p.config;
        return 0;
}

static void channel_config_done(ChannelConfig *ch) {
        for (size_t i = 0; i < ch->n_entries; i++) {
                free((char *) ch->entries[i].key);
                free((char *) ch->entries[i].value);
        }
        free(ch->entries);
        free(ch->name);
        free(ch->plugin);
}

void config_free(Config *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_channels; i++)
                channel_config_done(&c->channels[i]);
        free(c->channels);
        for (unsigned i = 0; i <= VILLAGE_MAX; i++)
                free(c->village_names[i]);
        free(c->path);
        free(c->spool);
        free(c->state);
        free(c->runtime_dir);
        free(c->control_group);
        free(c->timezone);
        free(c->plugin_dir);
        free(c->default_category);
        free(c);
}

const ChannelConfig *config_find_channel(const Config *c, const char *name) {
        for (size_t i = 0; i < c->n_channels; i++)
                if (streq(c->channels[i].name, name))
                        return &c->channels[i];
        return NULL;
}

char *config_channel_list(const Config *c) {
        StrBuf b = {};

        for (size_t i = 0; i < c->n_channels; i++)
                strbuf_printf(&b, "%s%s%s", i ? ", " : "", c->channels[i].name,
                              c->channels[i].enabled ? "" : " (disabled)");
        if (c->n_channels == 0)
                strbuf_append(&b, "(none)");
        return strbuf_steal(&b);
}

bool channel_config_equal(const ChannelConfig *a, const ChannelConfig *b) {
        if (!streq(a->name, b->name) || !streq_ptr(a->plugin, b->plugin) || a->enabled != b->enabled ||
            a->n_entries != b->n_entries)
                return false;
        for (size_t i = 0; i < a->n_entries; i++)
                if (!streq(a->entries[i].key, b->entries[i].key) || !streq(a->entries[i].value, b->entries[i].value))
                        return false;
        return true;
}
