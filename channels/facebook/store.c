/* SPDX-License-Identifier: MIT */
/*
 * store.c: what the Facebook channel must remember across restarts, one small file per
 * announcement and kind, under host->state_dir:
 *
 *   posts/ID     "this announcement is the post P (link L)": written as soon as Facebook answered
 *                with the post's id (or reconciliation found it), without fsync; store_settle()
 *                syncs a batch of them before their pending/ID goes.  Replaces and Cancel look here.
 *   pending/ID   "a create request for ID may have reached Facebook": written durably BEFORE the
 *                request leaves, removed once the answer is clear.  While it exists, every attempt
 *                reads the Page's recent posts before it may post again.
 *   photos/ID    the unpublished photos already uploaded for a several-photo post, so that a retry
 *                attaches them instead of uploading them again.
 *
 * Each file is "key=value" lines after a magic line, written whole by plugin_write_file() (temporary
 * file, rename; pending/ and photos/ also fsync the file and the folder).  No secret ever goes into them.
 */
#include "facebook.h"
#include "plugin-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_MAGIC_POST "prakat-facebook-post 1"
#define STORE_MAGIC_PENDING "prakat-facebook-pending 1"
#define STORE_MAGIC_PHOTOS "prakat-facebook-photos 1"
#define STORE_MAX_FILE (64 * 1024)
#define STORE_MAX_PHOTOS 64

static const char *const store_kinds[] = { "posts", "pending", "photos" };

static void settle_leftovers(const char *state_dir);

/* Leftovers of a write cut off by a crash are only ever temporary files: remove them. */
static void purge_tmp(const char *dir) {
        DIR *d = opendir(dir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0)
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
}

int store_init(const char *state_dir) {
        char path[4096];
        for (size_t i = 0; i < sizeof store_kinds / sizeof store_kinds[0]; i++) {
                snprintf(path, sizeof path, "%s/%s", state_dir, store_kinds[i]);
                if (mkdir(path, 0700) < 0 && errno != EEXIST)
                        return -errno;
                purge_tmp(path);
        }
        settle_leftovers(state_dir);
        return 0;
}

static int store_path(char *out, size_t size, const char *state_dir, const char *kind, const char *id) {
        if (!plugin_id_is_safe(id))
                return -EINVAL;
        if ((size_t) snprintf(out, size, "%s/%s/%s", state_dir, kind, id) >= size)
                return -ENAMETOOLONG;
        return 0;
}

/* Reads a store file; checks its magic line; returns the text after it. */
static int store_read(const char *state_dir, const char *kind, const char *id, const char *magic, char **ret) {
        char path[4096];
        int r = store_path(path, sizeof path, state_dir, kind, id);
        if (r < 0)
                return r;
        char *data = NULL;
        r = plugin_read_small_file(path, STORE_MAX_FILE, &data, NULL);
        if (r < 0)
                return r;
        size_t m = strlen(magic);
        if (strncmp(data, magic, m) != 0 || data[m] != '\n') {
                free(data);
                return -EBADMSG;
        }
        memmove(data, data + m + 1, strlen(data + m + 1) + 1);
        *ret = data;
        return 0;
}

/* The value of "key=" in a store file's text, as a new string; NULL when absent. */
static char *store_value(const char *text, const char *key) {
        size_t n = strlen(key);
        for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                if (strncmp(line, key, n) == 0 && line[n] == '=') {
                        const char *v = line + n + 1;
                        return strndup(v, strcspn(v, "\n"));
                }
        }
        return NULL;
}

/* A value must stay on its line. */
static bool value_is_plain(const char *v) {
        return v && !strchr(v, '\n') && !strchr(v, '\r');
}

static int store_write(const char *state_dir, const char *kind, const char *id, PluginBuf *text, bool durable) {
        char path[4096];
        int r = store_path(path, sizeof path, state_dir, kind, id);
        if (r < 0) {
                plugin_buf_free(text);
                return r;
        }
        size_t size = 0;
        char *data = plugin_buf_steal(text, &size);
        if (!data)
                return -ENOMEM;
        r = plugin_write_file(path, data, size, durable);
        free(data);
        return r;
}

int store_read_post(const char *state_dir, const char *id, char **ret_post_id, char **ret_link) {
        char *text = NULL;
        int r = store_read(state_dir, "posts", id, STORE_MAGIC_POST, &text);
        if (r < 0)
                return r;
        char *post = store_value(text, "post");
        char *link = store_value(text, "link");
        free(text);
        if (!post || !plugin_id_is_safe(post)) {
                free(post);
                free(link);
                return -EBADMSG;
        }
        *ret_post_id = post;
        if (ret_link)
                *ret_link = link;
        else
                free(link);
        return 0;
}

int store_write_post(const char *state_dir, const char *id, const char *post_id, const char *link) {
        if (!plugin_id_is_safe(post_id) || (link && !value_is_plain(link)))
                return -EINVAL;
        PluginBuf b = {};
        plugin_buf_printf(&b, "%s\npost=%s\n", STORE_MAGIC_POST, post_id);
        if (link)
                plugin_buf_printf(&b, "link=%s\n", link);
        /* Not fsynced: pending/ID stays until store_settle() has synced this (see there). */
        return store_write(state_dir, "posts", id, &b, false);
}

int store_read_pending(const char *state_dir, const char *id, StorePending *ret) {
        char *text = NULL;
        int r = store_read(state_dir, "pending", id, STORE_MAGIC_PENDING, &text);
        if (r < 0)
                return r;
        char *since = store_value(text, "since"), *failures = store_value(text, "failures");
        free(text);
        *ret = (StorePending) {
                .since = since ? strtoull(since, NULL, 10) : 0,
                .failures = failures ? (unsigned) strtoul(failures, NULL, 10) : 0,
        };
        free(since);
        free(failures);
        return 0;
}

int store_write_pending(const char *state_dir, const char *id, const StorePending *p) {
        PluginBuf b = {};
        plugin_buf_printf(&b, "%s\nsince=%" PRIu64 "\nfailures=%u\n", STORE_MAGIC_PENDING, (uint64_t) p->since,
                     p->failures);
        return store_write(state_dir, "pending", id, &b, true);
}

int store_read_photos(const char *state_dir, const char *id, char ***ret_ids, size_t *ret_n) {
        char *text = NULL;
        int r = store_read(state_dir, "photos", id, STORE_MAGIC_PHOTOS, &text);
        if (r < 0)
                return r;
        char **ids = calloc(STORE_MAX_PHOTOS, sizeof(char *));
        size_t n = 0;
        if (!ids) {
                free(text);
                return -ENOMEM;
        }
        for (size_t i = 0; i < STORE_MAX_PHOTOS; i++) {
                char key[16];
                snprintf(key, sizeof key, "%zu", i);
                char *v = store_value(text, key);
                if (!v)
                        break;
                if (!plugin_id_is_safe(v)) {
                        free(v);
                        break;
                }
                ids[n++] = v;
        }
        free(text);
        *ret_ids = ids;
        *ret_n = n;
        return 0;
}

int store_write_photos(const char *state_dir, const char *id, char *const *ids, size_t n) {
        PluginBuf b = {};
        plugin_buf_printf(&b, "%s\n", STORE_MAGIC_PHOTOS);
        for (size_t i = 0; i < n && i < STORE_MAX_PHOTOS && ids[i]; i++) {
                if (!plugin_id_is_safe(ids[i])) {
                        plugin_buf_free(&b);
                        return -EINVAL;
                }
                plugin_buf_printf(&b, "%zu=%s\n", i, ids[i]);
        }
        return store_write(state_dir, "photos", id, &b, true);
}

/*
 * The posts/ID of these announcements were written without fsync: one syncfs() makes them all durable,
 * and only then is their pending/ID removed.  Until then a power cut leaves pending/ID in place, and a
 * resumed job reads the Page before it may post: never twice.
 */
void store_settle(const char *state_dir, char *const *ids, size_t n) {
        if (n == 0)
                return;
        int fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        int r = syncfs(fd);
        close(fd);
        if (r < 0)
                return; /* pending/ID stays: careful, never wrong */
        for (size_t i = 0; i < n; i++)
                (void) store_remove(state_dir, "pending", ids[i]);
}

/* At start: a pending/ID whose post is recorded is a leftover of a stop before store_settle(). */
static void settle_leftovers(const char *state_dir) {
        char path[4096], *post = NULL;
        size_t n = 0, cap = 0;
        char **ids = NULL;

        snprintf(path, sizeof path, "%s/pending", state_dir);
        DIR *d = opendir(path);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' || !plugin_id_is_safe(de->d_name) ||
                    store_read_post(state_dir, de->d_name, &post, NULL) < 0)
                        continue;
                free(post);
                post = NULL;
                if (n == cap) {
                        char **more = realloc(ids, (cap = cap ? cap * 2 : 16) * sizeof(char *));
                        if (!more)
                                break;
                        ids = more;
                }
                if ((ids[n] = strdup(de->d_name)))
                        n++;
        }
        closedir(d);
        store_settle(state_dir, ids, n);
        for (size_t i = 0; i < n; i++)
                free(ids[i]);
        free(ids);
}

int store_remove(const char *state_dir, const char *kind, const char *id) {
        char path[4096];
        int r = store_path(path, sizeof path, state_dir, kind, id);
        if (r < 0)
                return r;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}
