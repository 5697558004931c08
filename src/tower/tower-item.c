/* SPDX-License-Identifier: MIT */
#include "tower-item.h"

#include "thaidate.h"

static const char *const priority_names[_TOWER_PRIORITY_MAX] = {
        [TOWER_PRIORITY_NORMAL] = "normal",
        [TOWER_PRIORITY_URGENT] = "urgent",
        [TOWER_PRIORITY_EMERGENCY] = "emergency",
};

static const char *const action_names[_TOWER_ACTION_MAX] = {
        [TOWER_ACTION_ADD] = "add",
        [TOWER_ACTION_UPDATE] = "update",
        [TOWER_ACTION_CANCEL] = "cancel",
};

static const char *const slot_state_names[_TOWER_SLOT_STATE_MAX] = {
        [TOWER_SLOT_PENDING] = "pending",
        [TOWER_SLOT_PLAYED] = "played",
        [TOWER_SLOT_FAILED] = "failed",
        [TOWER_SLOT_SKIPPED] = "skipped",
};

const char *tower_priority_to_string(TowerPriority p) {
        return p < _TOWER_PRIORITY_MAX ? priority_names[p] : "?";
}

const char *tower_action_to_string(TowerAction a) {
        return a < _TOWER_ACTION_MAX ? action_names[a] : "?";
}

const char *tower_slot_state_to_string(TowerSlotState s) {
        return s < _TOWER_SLOT_STATE_MAX ? slot_state_names[s] : "?";
}

static int lookup(const char *const *names, size_t n, const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (streq(names[i], s))
                        return (int) i;
        return -EINVAL;
}

int tower_slot_state_from_string(const char *s) {
        return lookup(slot_state_names, _TOWER_SLOT_STATE_MAX, s);
}

bool tower_id_valid(const char *id) {
        size_t n;

        if (!id)
                return false;
        n = strlen(id);
        if (n == 0 || n > TOWER_ID_MAX || id[0] == '.' || strstr(id, ".."))
                return false;
        for (const char *s = id; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '-' || *s == '_' || *s == '.'))
                        return false;
        return true;
}

const char *tower_format_utc(usec_t usec, char buffer[static 21]) {
        if (thaidate_format_utc(usec, buffer, 21) < 0)
                snprintf(buffer, 21, "?");
        return buffer;
}

TowerItem *tower_item_free(TowerItem *item) {
        if (!item)
                return NULL;
        free(item->id);
        free(item->title);
        free(item->text);
        free(item->audio_url);
        free(item->play_at);
        free(item->slots);
        free(item);
        return NULL;
}

/* ---- parsing ---- */

typedef struct ItemParser {
        const json_t *o;
        char *error;
} ItemParser;

static bool item_fail(ItemParser *p, const char *format, ...) _printf_(2, 3);
static bool item_fail(ItemParser *p, const char *format, ...) {
        va_list ap;

        if (p->error)
                return false;
        va_start(ap, format);
        if (vasprintf(&p->error, format, ap) < 0)
                abort();
        va_end(ap);
        return false;
}

/* A string field of at most `max` bytes; a missing field or null gives NULL when `nullable`. */
static bool get_string(ItemParser *p, const char *key, size_t max, bool nullable, char **ret) {
        const json_t *v = json_object_get(p->o, key);

        *ret = NULL;
        if (!v || json_is_null(v)) {
                if (nullable)
                        return true;
                return item_fail(p, "\"%s\" is missing", key);
        }
        if (!json_is_string(v))
                return item_fail(p, "\"%s\" is not a string", key);
        if (json_string_length(v) > max)
                return item_fail(p, "\"%s\" is longer than %zu bytes", key, max);
        *ret = xstrndup(json_string_value(v), json_string_length(v));
        return true;
}

static bool get_integer(ItemParser *p, const char *key, long long min, long long max, long long fallback,
                        unsigned *ret) {
        const json_t *v = json_object_get(p->o, key);
        long long n;

        if (!v || json_is_null(v)) {
                *ret = (unsigned) fallback;
                return true;
        }
        if (!json_is_integer(v))
                return item_fail(p, "\"%s\" is not a whole number", key);
        n = json_integer_value(v);
        if (n < min || n > max)
                return item_fail(p, "\"%s\" is %lld, outside %lld..%lld", key, n, min, max);
        *ret = (unsigned) n;
        return true;
}

static bool get_instant(ItemParser *p, const json_t *v, const char *what, usec_t *ret) {
        if (!json_is_string(v) || thaidate_parse_utc(json_string_value(v), ret) < 0)
                return item_fail(p, "%s is not an instant like \"2026-11-26T00:00:00Z\" (UTC, whole seconds)",
                                 what);
        return true;
}

static int compare_usec(const void *a, const void *b) {
        usec_t x = *(const usec_t *) a, y = *(const usec_t *) b;
        return x < y ? -1 : x > y;
}

static bool get_play_at(ItemParser *p, TowerItem *item) {
        const json_t *v = json_object_get(p->o, "play_at"), *e;
        size_t i, n;

        if (!v || json_is_null(v))
                return true;
        if (!json_is_array(v))
                return item_fail(p, "\"play_at\" is not an array");
        if (json_array_size(v) > TOWER_PLAY_AT_MAX)
                return item_fail(p, "\"play_at\" has more than %d instants", TOWER_PLAY_AT_MAX);
        item->play_at = xcalloc(json_array_size(v), sizeof(usec_t));
        json_array_foreach(v, i, e)
                if (!get_instant(p, e, "an element of \"play_at\"", &item->play_at[i]))
                        return false;
        qsort(item->play_at, json_array_size(v), sizeof(usec_t), compare_usec);
        n = 0;
        for (i = 0; i < json_array_size(v); i++)
                if (n == 0 || item->play_at[n - 1] != item->play_at[i])
                        item->play_at[n++] = item->play_at[i];
        item->n_play_at = n;
        return true;
}

static bool url_valid(const char *url) {
        if (!startswith_nocase(url, "https://") && !startswith_nocase(url, "http://"))
                return false;
        for (const char *s = url; *s; s++)
                if ((unsigned char) *s <= ' ' || *s == 0x7f)
                        return false;
        return true;
}

static bool parse_fields(ItemParser *p, TowerItem *item) {
        const json_t *v;
        _cleanup_free_ char *priority = NULL;
        int k;

        if (!get_string(p, "title", TOWER_TITLE_MAX, true, &item->title) ||
            !get_string(p, "text", TOWER_TEXT_MAX, true, &item->text) ||
            !get_string(p, "audio_url", TOWER_URL_MAX, true, &item->audio_url) ||
            !get_string(p, "priority", 16, true, &priority) || !get_play_at(p, item) ||
            !get_integer(p, "repeat", 1, TOWER_REPEAT_MAX, 1, &item->repeat) ||
            !get_integer(p, "gap", 0, TOWER_GAP_MAX, 5, &item->gap))
                return false;
        if (!item->title)
                item->title = xstrdup("");
        if (!item->text)
                item->text = xstrdup("");
        if (item->audio_url && isempty(item->audio_url)) {
                free(item->audio_url);
                item->audio_url = NULL;
        }
        if (item->audio_url && !url_valid(item->audio_url))
                return item_fail(p, "\"audio_url\" is not an http:// or https:// address");
        k = priority ? lookup(priority_names, _TOWER_PRIORITY_MAX, priority) : TOWER_PRIORITY_NORMAL;
        if (k < 0)
                return item_fail(p, "\"priority\" is \"%s\", not normal, urgent or emergency", priority);
        item->priority = (TowerPriority) k;
        v = json_object_get(p->o, "expires");
        if (v && !json_is_null(v) && !get_instant(p, v, "\"expires\"", &item->expires))
                return false;
        if (isempty(item->title) && isempty(item->text) && !item->audio_url)
                return item_fail(p, "there is nothing to play: no title, text or audio_url");
        if (item->n_play_at == 0 && item->priority != TOWER_PRIORITY_EMERGENCY)
                return item_fail(p, "\"play_at\" is empty; only an emergency plays without a slot");
        return true;
}

int tower_item_from_json(const json_t *o, bool with_action, TowerAction *ret_action, TowerItem **ret_item,
                         char **ret_id, char **ret_error) {
        _cleanup_(tower_item_freep) TowerItem *item = NULL;
        _cleanup_free_ char *action = NULL;
        ItemParser p = { .o = o };
        const json_t *v, *id;
        int k = TOWER_ACTION_ADD;

        *ret_item = NULL;
        *ret_id = NULL;
        if (!json_is_object(o)) {
                *ret_error = xstrdup("the item is not a JSON object");
                return -EINVAL;
        }
        id = json_object_get(o, "id");
        if (!json_is_string(id) || !tower_id_valid(json_string_value(id))) {
                *ret_error = xstrdup("\"id\" is missing or not an id (1-64 of A-Z a-z 0-9 . _ -, no \"..\")");
                return -EINVAL;
        }
        item = xcalloc(1, sizeof(TowerItem));
        item->id = xstrdup(json_string_value(id));
        v = json_object_get(o, "v");
        if (v && !(json_is_integer(v) && json_integer_value(v) == 1))
                item_fail(&p, "\"v\" is not 1: this agent speaks version 1 of the tower messages");
        if (with_action && !p.error && get_string(&p, "action", 16, false, &action)) {
                k = lookup(action_names, _TOWER_ACTION_MAX, action);
                if (k < 0)
                        item_fail(&p, "\"action\" is \"%s\", not add, update or cancel", action);
        }
        if (!p.error && k != TOWER_ACTION_CANCEL)
                parse_fields(&p, item);
        if (p.error) {
                *ret_id = TAKE_PTR(item->id);
                *ret_error = p.error;
                return -EINVAL;
        }
        if (ret_action)
                *ret_action = (TowerAction) k;
        if (k == TOWER_ACTION_CANCEL) {
                *ret_id = TAKE_PTR(item->id);
                return 0;
        }
        *ret_id = xstrdup(item->id);
        *ret_item = TAKE_PTR(item);
        return 0;
}

json_t *tower_item_to_json(const TowerItem *item) {
        char buf[21];
        json_t *o = json_object(), *play_at = json_array();

        for (size_t i = 0; i < item->n_play_at; i++)
                json_array_append_new(play_at, json_string(tower_format_utc(item->play_at[i], buf)));
        json_object_set_new(o, "v", json_integer(1));
        json_object_set_new(o, "id", json_string(item->id));
        json_object_set_new(o, "title", json_string(item->title));
        json_object_set_new(o, "text", json_string(item->text));
        json_object_set_new(o, "audio_url", item->audio_url ? json_string(item->audio_url) : json_null());
        json_object_set_new(o, "play_at", play_at);
        json_object_set_new(o, "repeat", json_integer(item->repeat));
        json_object_set_new(o, "gap", json_integer(item->gap));
        json_object_set_new(o, "priority", json_string(tower_priority_to_string(item->priority)));
        json_object_set_new(o, "expires", item->expires ? json_string(tower_format_utc(item->expires, buf))
                                                        : json_null());
        return o;
}

bool tower_item_same_content(const TowerItem *a, const TowerItem *b) {
        if (!streq(a->id, b->id) || !streq(a->title, b->title) || !streq(a->text, b->text) ||
            !streq_ptr(a->audio_url, b->audio_url) || a->repeat != b->repeat || a->gap != b->gap ||
            a->priority != b->priority || a->expires != b->expires || a->n_play_at != b->n_play_at)
                return false;
        for (size_t i = 0; i < a->n_play_at; i++)
                if (a->play_at[i] != b->play_at[i])
                        return false;
        return true;
}

char *tower_item_speech(const TowerItem *item) {
        if (isempty(item->text))
                return xstrdup(item->title);
        if (isempty(item->title))
                return xstrdup(item->text);
        return xasprintf("%s\n%s", item->title, item->text);
}
