/* SPDX-License-Identifier: MIT */
/*
 * upload: mirrors the website's output folder to the office's web host (`upload = sftp://…` or
 * `ftps://…`), through host->transfer_upload(), never blocking the loop.
 *
 * What the host has is kept in a manifest (state_dir/upload-manifest): one line per file with the
 * content hash and the size and mtime the local file had when it went up.  A file is sent when
 * website.c says it wrote it, or when at start its size or mtime differ from the manifest, and
 * then only if its content hash differs; a file the manifest lists but the output no longer has
 * is removed from the host.  An entry is written only after the host confirmed the file, so a
 * crash or a failed round leaves the manifest behind the host, never ahead of it: the next round
 * sends again whatever may differ.
 *
 * Each file goes to a temporary name (UPLOAD_TMP_PREFIX + name) in its folder and is renamed over
 * the old one once complete, so a reader on the host never sees half a page; a connection cut
 * mid-file leaves only the temporary file, which the retry overwrites and renames.  Folders are
 * created on the way.  Attachments and articles go first, the pages that link to them after.
 */
#include "upload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_MAGIC "prakat-upload-manifest 1"
#define MANIFEST_NAME "upload-manifest"
#define MAX_MANIFEST_BYTES (64u * 1024 * 1024)
#define UPLOAD_TMP_PREFIX ".prakat-up-"
#define UPLOAD_PARALLEL 4
#define DEFAULT_TIMEOUT_USEC (5ULL * 60 * 1000000)
#define MAX_TIMEOUT_USEC (60ULL * 60 * 1000000)

typedef struct ManifestEntry {
        char *path; /* relative to output; first, for path_position() */
        uint64_t size;
        int64_t mtime_ns; /* of the local file when it went up: the quick check at start */
        uint64_t hash;    /* FNV-1a 64 of the content: tells a rewrite from a change */
        bool seen;        /* scratch, for the scan */
} ManifestEntry;

/* One file on its way. */
typedef struct Transfer {
        Upload *upload;
        char *path;
        bool remove;
        uint64_t size;
        int64_t mtime_ns;
        uint64_t hash;
        prakat_http_call *call;
} Transfer;

struct Upload {
        const prakat_host *host;

        /* Settings */
        char *url; /* as configured */
        unsigned url_line;
        char *key_file;
        char *password_file;
        char *password_credential;
        char *known_hosts;
        char *ca_file;
        prakat_usec_t timeout;

        char *base;      /* sftp://user@host[:port]/path or ftp://…, no trailing '/' */
        char *host_name; /* "host[:port]", for messages */
        bool ftps;
        char *password;
        char *output;
        char *manifest_path;

        ManifestEntry *entries; /* sorted by path */
        size_t n_entries, entries_allocated;
        char **todo; /* sorted, unique: files that may differ from the host */
        size_t n_todo, todo_allocated;

        /* The round in flight */
        bool busy;
        char **round;
        size_t n_round, next;
        Transfer *in_flight[UPLOAD_PARALLEL];
        unsigned n_in_flight;
        int round_error;
        size_t round_sent;
        upload_done_fn done;
        void *userdata;

        char *last_error;
};

/* ------------------------------------------------------------------------------------------------ */
/* Small helpers */

static char *join_path(const char *a, const char *b) {
        char *s = NULL;
        return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

/* A relative path is relative to the config file's folder. */
static char *config_path(const prakat_host *host, const char *value) {
        if (value[0] == '/' || !host->config_dir)
                return strdup(value);
        return join_path(host->config_dir, value);
}

static int64_t stat_mtime_ns(const struct stat *st) {
        return (int64_t) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* FNV-1a 64 of a file's content, read in chunks. */
static int hash_file(const char *path, uint64_t *ret_hash, uint64_t *ret_size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        uint64_t h = 0xcbf29ce484222325ULL, size = 0;
        unsigned char chunk[64 * 1024];
        for (;;) {
                ssize_t n = read(fd, chunk, sizeof chunk);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
                if (n == 0)
                        break;
                for (ssize_t i = 0; i < n; i++)
                        h = (h ^ chunk[i]) * 0x100000001b3ULL;
                size += (uint64_t) n;
        }
        close(fd);
        *ret_hash = h;
        *ret_size = size;
        return 0;
}

/* Percent-encodes all but unreserved characters and '/'. */
static void buf_put_url_path(PluginBuf *b, const char *path) {
        for (const unsigned char *p = (const unsigned char *) path; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    strchr("-._~/", *p))
                        plugin_buf_put(b, p, 1);
                else
                        plugin_buf_printf(b, "%%%02X", *p);
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* The manifest and the list of files to check */

/*
 * The position of `path` in a sorted array of `n` elements of `size` bytes that each start with
 * their path (a char *), or where it would go; *ret_found says which.  Serves both the manifest
 * and the list of files to check.
 */
static size_t path_position(const void *array, size_t n, size_t size, const char *path, bool *ret_found) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int c = strcmp(path, *(char *const *) ((const char *) array + mid * size));
                if (c == 0) {
                        *ret_found = true;
                        return mid;
                }
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        *ret_found = false;
        return lo;
}

/*
 * Inserts a zeroed element holding a copy of `path` at position `at` of such an array (*array,
 * *n elements, room for *allocated).
 */
static int path_array_insert(void *array, size_t *n, size_t *allocated, size_t size, size_t at, const char *path) {
        char **base = array;
        if (*n == *allocated) {
                size_t more = *allocated ? *allocated * 2 : 64;
                char *grown = realloc(*base, more * size);
                if (!grown)
                        return -ENOMEM;
                *base = grown;
                *allocated = more;
        }
        char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        char *element = *base + at * size;
        memmove(element + size, element, (*n - at) * size);
        memset(element, 0, size);
        memcpy(element, &copy, sizeof copy);
        (*n)++;
        return 0;
}

static size_t entry_position(const Upload *u, const char *path, bool *ret_found) {
        return path_position(u->entries, u->n_entries, sizeof(ManifestEntry), path, ret_found);
}

static ManifestEntry *manifest_find(Upload *u, const char *path) {
        bool found;
        size_t i = entry_position(u, path, &found);
        return found ? &u->entries[i] : NULL;
}

static int manifest_set(Upload *u, const char *path, uint64_t size, int64_t mtime_ns, uint64_t hash) {
        bool found;
        size_t i = entry_position(u, path, &found);
        if (!found) {
                int r = path_array_insert(&u->entries, &u->n_entries, &u->entries_allocated, sizeof(ManifestEntry), i,
                                          path);
                if (r < 0)
                        return r;
        }
        ManifestEntry *e = &u->entries[i];
        e->size = size;
        e->mtime_ns = mtime_ns;
        e->hash = hash;
        return 0;
}

static void manifest_remove(Upload *u, const char *path) {
        bool found;
        size_t i = entry_position(u, path, &found);
        if (!found)
                return;
        free(u->entries[i].path);
        memmove(&u->entries[i], &u->entries[i + 1], (u->n_entries - i - 1) * sizeof(ManifestEntry));
        u->n_entries--;
}

static void manifest_clear(Upload *u) {
        for (size_t i = 0; i < u->n_entries; i++)
                free(u->entries[i].path);
        u->n_entries = 0;
}

/* Adds `path` to the files to check (a copy); already there is fine. */
static int todo_add(Upload *u, const char *path) {
        bool found;
        size_t lo = path_position(u->todo, u->n_todo, sizeof(char *), path, &found);
        return found ? 0 : path_array_insert(&u->todo, &u->n_todo, &u->todo_allocated, sizeof(char *), lo, path);
}

/*
 * "HASH SIZE MTIME_NS PATH" lines under a first line naming the upload URL: a manifest written
 * for another host or folder says nothing about this one and is ignored.
 */
static int manifest_load(Upload *u) {
        char *data = NULL;
        int r = plugin_read_small_file(u->manifest_path, MAX_MANIFEST_BYTES, &data, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        char *line = data, *next;
        size_t magic_length = strlen(MANIFEST_MAGIC);
        if (strncmp(line, MANIFEST_MAGIC " ", magic_length + 1) != 0 || !(next = strchr(line, '\n')) ||
            (size_t) (next - line) != magic_length + 1 + strlen(u->url) ||
            strncmp(line + magic_length + 1, u->url, strlen(u->url)) != 0) {
                free(data);
                return 0;
        }
        for (line = next + 1; *line; line = next) {
                next = strchr(line, '\n');
                if (!next)
                        break; /* a cut-off last line: that file is simply sent again */
                *next++ = 0;
                uint64_t hash, size;
                int64_t mtime;
                int offset = 0;
                if (sscanf(line, "%" SCNx64 " %" SCNu64 " %" SCNd64 " %n", &hash, &size, &mtime, &offset) != 3 ||
                    offset == 0 || !line[offset])
                        continue;
                r = manifest_set(u, line + offset, size, mtime, hash);
                if (r < 0)
                        break;
        }
        free(data);
        return r < 0 ? r : 0;
}

static int manifest_save(Upload *u) {
        PluginBuf b = {};
        plugin_buf_printf(&b, MANIFEST_MAGIC " %s\n", u->url);
        for (size_t i = 0; i < u->n_entries; i++) {
                const ManifestEntry *e = &u->entries[i];
                plugin_buf_printf(&b, "%016" PRIx64 " %" PRIu64 " %" PRId64 " %s\n", e->hash, e->size, e->mtime_ns,
                                  e->path);
        }
        int r = b.failed ? -ENOMEM : plugin_write_file_durable(u->manifest_path, b.data, b.size);
        plugin_buf_free(&b);
        return r;
}

/*
 * Lists every file of `dir` (relative `rel`) whose size or mtime differ from the manifest.
 * Names starting with '.' are website.c's temporary files and probes, never published.
 */
static int scan_dir(Upload *u, const char *dir, const char *rel) {
        DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        int r = 0;
        struct dirent *de;
        while (r == 0 && (de = readdir(d))) {
                if (de->d_name[0] == '.' || strchr(de->d_name, '\n'))
                        continue;
                char *full = join_path(dir, de->d_name);
                char *relative = rel[0] ? join_path(rel, de->d_name) : strdup(de->d_name);
                struct stat st;
                if (!full || !relative)
                        r = -ENOMEM;
                else if (lstat(full, &st) < 0)
                        r = errno == ENOENT ? 0 : -errno;
                else if (S_ISDIR(st.st_mode))
                        r = scan_dir(u, full, relative);
                else if (S_ISREG(st.st_mode)) {
                        ManifestEntry *e = manifest_find(u, relative);
                        if (e)
                                e->seen = true;
                        if (!e || e->size != (uint64_t) st.st_size || e->mtime_ns != stat_mtime_ns(&st))
                                r = todo_add(u, relative);
                }
                free(full);
                free(relative);
        }
        closedir(d);
        return r;
}

/* Everything that may differ between output and the manifest: changed files, and files gone. */
static int upload_scan(Upload *u) {
        for (size_t i = 0; i < u->n_entries; i++)
                u->entries[i].seen = false;
        int r = scan_dir(u, u->output, "");
        for (size_t i = 0; r == 0 && i < u->n_entries; i++)
                if (!u->entries[i].seen)
                        r = todo_add(u, u->entries[i].path);
        return r;
}

/* ------------------------------------------------------------------------------------------------ */
/* Configuration */

bool upload_key_is_known(const char *key) {
        return strcmp(key, "upload") == 0 || strncmp(key, "upload_", 7) == 0;
}

static int set_path(char **slot, const prakat_host *host, const char *value) {
        char *p = config_path(host, value);
        if (!p)
                return -ENOMEM;
        free(*slot);
        *slot = p;
        return 0;
}

int upload_apply_entry(Upload **upload, const prakat_host *host, const prakat_config_entry *e,
                       PluginConfigError *err) {
        const char *key = e->key, *value = e->value ? e->value : "";
        if (!*upload) {
                *upload = calloc(1, sizeof(Upload));
                if (!*upload)
                        return -ENOMEM;
                **upload = (Upload) {.host = host, .timeout = DEFAULT_TIMEOUT_USEC};
        }
        Upload *u = *upload;
        if (strcmp(key, "upload") == 0) {
                u->url_line = e->line;
                return plugin_set_string(&u->url, value);
        }
        if (!value[0])
                return plugin_config_fail(err, e->line, "%s must not be empty", key);
        /* DESIGN §6 names it upload_key; upload_key_file says what it is, like the other *_file keys. */
        if (strcmp(key, "upload_key_file") == 0 || strcmp(key, "upload_key") == 0) {
                if (u->key_file)
                        return plugin_config_fail(err, e->line, "upload_key and upload_key_file name the same key: "
                                                                "give one");
                return set_path(&u->key_file, host, value);
        }
        if (strcmp(key, "upload_password_file") == 0)
                return set_path(&u->password_file, host, value);
        if (strcmp(key, "upload_password_credential") == 0)
                return plugin_set_string(&u->password_credential, value);
        if (strcmp(key, "upload_known_hosts") == 0)
                return set_path(&u->known_hosts, host, value);
        if (strcmp(key, "upload_ca_file") == 0)
                return set_path(&u->ca_file, host, value);
        if (strcmp(key, "upload_timeout") == 0) {
                if (plugin_parse_duration(value, &u->timeout) < 0 || u->timeout < 1000000 ||
                    u->timeout > MAX_TIMEOUT_USEC)
                        return plugin_config_fail(err, e->line,
                                                  "upload_timeout must be a duration from 1s to 1h, not '%s'", value);
                return 0;
        }
        return plugin_config_fail(err, e->line, "unknown key '%s' (known upload keys: " UPLOAD_KEYS ")", key);
}

/*
 * sftp://user@host[:port]/path or ftps://user@host[:port]/path, nothing that would need escaping,
 * no password in it.  Sets base (ftps:// becomes ftp:// with TLS required: explicit FTPS) and
 * host_name.
 */
static int upload_parse_url(Upload *u, PluginConfigError *err) {
        const char *url = u->url, *rest;
        if (strncmp(url, "sftp://", 7) == 0)
                rest = url + 7;
        else if (strncmp(url, "ftps://", 7) == 0)
                rest = url + 7, u->ftps = true;
        else
                return plugin_config_fail(err, u->url_line,
                                          "upload must start with sftp:// or ftps:// (got '%s'), e.g. "
                                          "upload = sftp://prakat@host.example/var/www/news",
                                          url);
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f || strchr("\"'\\?#<>`{}|^", *p))
                        return plugin_config_fail(err, u->url_line,
                                                  "upload must not contain spaces, quotes, '?' or '#' (got '%s')", url);
        const char *path = strchr(rest, '/');
        const char *at = path ? memchr(rest, '@', (size_t) (path - rest)) : NULL;
        if (!path || !at || at == rest || at + 1 == path || !path[1])
                return plugin_config_fail(err, u->url_line,
                                          "upload must name a user, a host and a folder: %s://USER@HOST[:PORT]/FOLDER "
                                          "(got '%s')",
                                          u->ftps ? "ftps" : "sftp", url);
        if (memchr(rest, ':', (size_t) (at - rest)))
                return plugin_config_fail(err, u->url_line,
                                          "upload must not hold a password: put it in upload_password_file");
        size_t length = strlen(path);
        while (length > 1 && path[length - 1] == '/')
                length--;
        if (asprintf(&u->base, "%s://%.*s%.*s", u->ftps ? "ftp" : "sftp", (int) (path - rest), rest, (int) length,
                     path) < 0)
                return -ENOMEM;
        u->host_name = strndup(at + 1, (size_t) (path - at - 1));
        return u->host_name ? 0 : -ENOMEM;
}

/* The key must be readable by the daemon alone, like every secret (libcurl reads it itself). */
static int upload_check_key_file(Upload *u, PluginConfigError *err) {
        struct stat st;
        int fd = open(u->key_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return plugin_config_fail(err, u->url_line, "cannot read the upload key %s: %s", u->key_file,
                                          strerror(errno));
        int r = fstat(fd, &st);
        close(fd);
        if (r < 0 || !S_ISREG(st.st_mode))
                return plugin_config_fail(err, u->url_line, "the upload key %s is not a regular file", u->key_file);
        if (st.st_mode & 077)
                return plugin_config_fail(err, u->url_line,
                                          "the upload key %s may be read by group or others (mode %04o); "
                                          "fix: chmod 600 %s",
                                          u->key_file, (unsigned) (st.st_mode & 07777), u->key_file);
        return 0;
}

static int upload_check_settings(Upload *u, PluginConfigError *err) {
        if (!u->url)
                return plugin_config_fail(err, 0, "upload_* keys are set but not upload (e.g. upload = "
                                                  "sftp://prakat@host.example/var/www/news)");
        int r = upload_parse_url(u, err);
        if (r < 0)
                return r == -ENOMEM ? plugin_config_fail(err, u->url_line, "out of memory") : r;
        bool has_password = u->password_file || u->password_credential;
        if (u->ftps && (u->key_file || u->known_hosts))
                return plugin_config_fail(err, u->url_line,
                                          "upload_key_file and upload_known_hosts are for sftp://; FTPS logs in with "
                                          "upload_password_file and checks the certificate (upload_ca_file)");
        if (!u->ftps && u->ca_file)
                return plugin_config_fail(err, u->url_line,
                                          "upload_ca_file is for ftps://; SFTP checks the host key "
                                          "(upload_known_hosts)");
        if (u->ftps ? !has_password : !u->key_file && !has_password)
                return plugin_config_fail(err, u->url_line,
                                          u->ftps ? "ftps:// needs upload_password_file (or upload_password_credential)"
                                                  : "sftp:// needs upload_key_file (a private key, mode 0600) or "
                                                    "upload_password_file");
        if (u->key_file && (r = upload_check_key_file(u, err)) < 0)
                return r;
        if (!u->ftps && !u->known_hosts && set_path(&u->known_hosts, u->host, "known_hosts") < 0)
                return plugin_config_fail(err, u->url_line, "out of memory");
        if (u->known_hosts && access(u->known_hosts, R_OK) < 0)
                return plugin_config_fail(err, u->url_line,
                                          "the SSH known_hosts file %s cannot be read (%s): create it with the host's "
                                          "key, checked against the fingerprint the hosting company gives: "
                                          "ssh-keyscan [-p PORT] HOST > %s (or set upload_known_hosts)",
                                          u->known_hosts, strerror(errno), u->known_hosts);
        if (u->ca_file && access(u->ca_file, R_OK) < 0)
                return plugin_config_fail(err, u->url_line, "cannot read upload_ca_file %s: %s", u->ca_file,
                                          strerror(errno));
        if (has_password) {
                char reason[512] = "";
                r = plugin_read_secret(u->host, u->password_file, u->password_credential, &u->password, reason,
                                       sizeof reason);
                if (r < 0)
                        return plugin_config_fail(err, u->url_line, "upload password: %s", reason);
        }
        return 0;
}

int upload_check(Upload *u, PluginConfigError *err) {
        int r = upload_check_settings(u, err);
        if (r < 0)
                return r;
        if (!PRAKAT_HOST_HAS(u->host, transfer_upload))
                return plugin_config_fail(err, u->url_line, "this prakatd cannot upload files (it is older than the "
                                                            "website plugin): update prakatd");
        return 0;
}

int upload_prepare(Upload *u, const char *output, PluginConfigError *err) {
        int r = upload_check(u, err);
        if (r < 0)
                return r;
        u->output = strdup(output);
        u->manifest_path = join_path(u->host->state_dir, MANIFEST_NAME);
        if (!u->output || !u->manifest_path)
                return plugin_config_fail(err, 0, "out of memory");
        r = manifest_load(u);
        if (r == 0)
                r = upload_scan(u);
        if (r < 0)
                return plugin_config_fail(err, 0, "cannot compare %s with the upload manifest %s: %s", output,
                                          u->manifest_path, strerror(-r));
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Rounds */

void upload_note_path(Upload *u, const char *path) {
        if (!u || !u->output)
                return;
        size_t n = strlen(u->output);
        if (strncmp(path, u->output, n) != 0 || path[n] != '/' || !path[n + 1])
                return;
        if (todo_add(u, path + n + 1) < 0)
                u->host->log(u->host, PRAKAT_LOG_WARNING, NULL,
                             "Out of memory noting %s for upload; it goes up at the next start or site sync", path);
}

bool upload_has_work(const Upload *u) {
        return u && u->n_todo > 0;
}

bool upload_is_busy(const Upload *u) {
        return u && u->busy;
}

const char *upload_last_error(const Upload *u) {
        return u ? u->last_error : NULL;
}

/* Attachments first, then articles, then the pages that link to them. */
static int path_rank(const char *path) {
        return strncmp(path, "files/", 6) == 0 ? 0 : strncmp(path, "a/", 2) == 0 ? 1 : 2;
}

static int round_compare(const void *a, const void *b) {
        const char *x = *(char *const *) a, *y = *(char *const *) b;
        int rx = path_rank(x), ry = path_rank(y);
        return rx != ry ? rx - ry : strcmp(x, y);
}

__attribute__((format(printf, 3, 4))) static void upload_fail(Upload *u, int error, const char *format, ...) {
        if (u->round_error)
                return; /* the first failure is the one to report */
        u->round_error = error;
        free(u->last_error);
        va_list ap;
        va_start(ap, format);
        if (vasprintf(&u->last_error, format, ap) < 0)
                u->last_error = NULL;
        va_end(ap);
}

static void transfer_free(Transfer *t) {
        if (!t)
                return;
        t->upload->host->http_cancel(t->call);
        free(t->path);
        free(t);
}

static void upload_pump(Upload *u);

static void on_transfer_done(void *userdata, const prakat_http_response *response) {
        Transfer *t = userdata;
        Upload *u = t->upload;
        for (unsigned i = 0; i < u->n_in_flight; i++)
                if (u->in_flight[i] == t) {
                        u->in_flight[i] = u->in_flight[--u->n_in_flight];
                        break;
                }
        t->call = NULL; /* the core frees it after this callback */

        int r = response->error;
        if (r == 0 && t->remove)
                manifest_remove(u, t->path);
        else if (r == 0)
                r = manifest_set(u, t->path, t->size, t->mtime_ns, t->hash);
        if (r == 0)
                u->round_sent++;
        else {
                (void) todo_add(u, t->path);
                upload_fail(u, r, "%s %s: %s", t->remove ? "removing" : "uploading", t->path,
                            response->error_text ? response->error_text : strerror(-r));
        }
        transfer_free(t);
        upload_pump(u);
}

/*
 * What the host needs for `path` (its local file is `full`): 1 to send it (t->size, mtime and hash
 * set) or to remove it (t->remove), 0 when the host already has it, or a negative errno.
 */
static int upload_compare(Upload *u, const char *path, const char *full, Transfer *t) {
        struct stat st;
        if (lstat(full, &st) < 0) {
                if (errno != ENOENT)
                        return -errno;
                t->remove = true;
                return manifest_find(u, path) ? 1 : 0;
        }
        if (!S_ISREG(st.st_mode))
                return 0;
        /* Hashed just before the core opens the file: the manifest records what went up. */
        t->mtime_ns = stat_mtime_ns(&st);
        int r = hash_file(full, &t->hash, &t->size);
        if (r < 0)
                return r;
        ManifestEntry *e = manifest_find(u, path);
        if (e && e->hash == t->hash && e->size == t->size) {
                e->mtime_ns = t->mtime_ns;
                return 0;
        }
        return 1;
}

/* The URL of `path` on the host, at its temporary name when `temporary`; NULL when out of memory. */
static char *upload_url(Upload *u, const char *path, bool temporary) {
        const char *slash = strrchr(path, '/');
        const char *name = slash ? slash + 1 : path;
        PluginBuf url = {};
        plugin_buf_printf(&url, "%s/", u->base);
        if (slash) {
                char *dir = strndup(path, (size_t) (slash + 1 - path));
                if (dir)
                        buf_put_url_path(&url, dir);
                url.failed = url.failed || !dir;
                free(dir);
        }
        if (temporary)
                plugin_buf_puts(&url, UPLOAD_TMP_PREFIX);
        buf_put_url_path(&url, name);
        plugin_buf_put(&url, "", 1);
        if (url.failed) {
                plugin_buf_free(&url);
                return NULL;
        }
        return plugin_buf_steal(&url, NULL);
}

/* Starts one file: 1 when a transfer started, 0 when the host already has it, or a negative errno. */
static int upload_start_one(Upload *u, const char *path) {
        Transfer t = {.upload = u};
        char *full = join_path(u->output, path);
        int r = full ? upload_compare(u, path, full, &t) : -ENOMEM;
        if (r <= 0) {
                if (r < 0)
                        upload_fail(u, r, "cannot read %s to upload it: %s", full ? full : path, strerror(-r));
                free(full);
                return r;
        }

        const char *slash = strrchr(path, '/');
        char *url = upload_url(u, path, !t.remove);
        prakat_transfer request = {
                .url = url,
                .require_tls = u->ftps,
                .local_path = t.remove ? NULL : full,
                .rename_to = t.remove ? NULL : slash ? slash + 1 : path,
                .create_dirs = true,
                .password = u->password,
                .private_key_file = u->key_file,
                .known_hosts_file = u->known_hosts,
                .ca_file = u->ca_file,
                .timeout_ms = (unsigned) (u->timeout / 1000),
        };
        Transfer *copy = url ? malloc(sizeof(Transfer)) : NULL;
        if (copy) {
                *copy = t;
                copy->path = strdup(path);
        }
        r = !copy || !copy->path ? -ENOMEM
                                 : u->host->transfer_upload(u->host, &request, on_transfer_done, copy, &copy->call);
        free(url);
        free(full);
        if (r < 0) {
                transfer_free(copy); /* copy->call is still NULL */
                upload_fail(u, r, "cannot start uploading %s to %s: %s", path, u->host_name, strerror(-r));
                return r;
        }
        u->in_flight[u->n_in_flight++] = copy;
        return 1;
}

/* The round is over: what was not tried goes back to the list, the manifest is saved. */
static void upload_end_round(Upload *u) {
        for (size_t i = u->next; i < u->n_round; i++)
                (void) todo_add(u, u->round[i]);
        for (size_t i = 0; i < u->n_round; i++)
                free(u->round[i]);
        free(u->round);
        u->round = NULL;
        u->n_round = u->next = 0;
        u->busy = false;
        int r = manifest_save(u);
        if (r < 0)
                u->host->log(u->host, PRAKAT_LOG_WARNING, NULL,
                             "Failed to save the upload manifest %s: %s; changed files are compared again at the next "
                             "start, ignoring",
                             u->manifest_path, strerror(-r));
        if (u->round_error == 0) {
                free(u->last_error);
                u->last_error = NULL;
                if (u->round_sent > 0)
                        u->host->log(u->host, PRAKAT_LOG_INFO, NULL, "Uploaded %zu changed file(s) to %s",
                                     u->round_sent, u->host_name);
        }
}

/*
 * Starts transfers while there is room and no failure; returns true while some are in flight.
 * Once none is, the round is over: every file was tried, or one failed.
 */
static bool upload_launch(Upload *u) {
        while (u->round_error == 0 && u->n_in_flight < UPLOAD_PARALLEL && u->next < u->n_round)
                (void) upload_start_one(u, u->round[u->next++]);
        return u->n_in_flight > 0;
}

static void upload_pump(Upload *u) {
        if (upload_launch(u))
                return;
        upload_end_round(u);
        u->done(u->userdata, u->round_error, u->last_error);
}

int upload_run(Upload *u, upload_done_fn done, void *userdata) {
        if (u->busy)
                return -EBUSY;
        u->round = u->todo;
        u->n_round = u->n_todo;
        u->todo = NULL;
        u->n_todo = u->todo_allocated = 0;
        u->next = 0;
        u->round_error = 0;
        u->round_sent = 0;
        u->done = done;
        u->userdata = userdata;
        if (u->n_round > 1)
                qsort(u->round, u->n_round, sizeof(char *), round_compare);

        u->busy = true;
        if (upload_launch(u))
                return 1; /* on_transfer_done() goes on with upload_pump() */
        upload_end_round(u);
        return u->round_error;
}

int upload_forget_all(Upload *u, char *reply, size_t reply_size) {
        manifest_clear(u);
        int r = upload_scan(u);
        if (r < 0) {
                snprintf(reply, reply_size, "cannot list %s: %s", u->output, strerror(-r));
                return r;
        }
        snprintf(reply, reply_size, "uploading all %zu file(s) of %s to %s again; prakat status shows when it is done",
                 u->n_todo, u->output, u->host_name);
        return 0;
}

int upload_health(const Upload *u, char *buffer, size_t buffer_size) {
        if (u->last_error) {
                snprintf(buffer, buffer_size, "upload to %s failing: %s", u->host_name, u->last_error);
                return -EIO;
        }
        if (u->busy)
                snprintf(buffer, buffer_size, "ok; uploading to %s (%zu file(s) left)", u->host_name,
                         u->n_round - u->next + u->n_in_flight);
        else if (u->n_todo > 0)
                snprintf(buffer, buffer_size, "ok; %zu file(s) wait for upload to %s", u->n_todo, u->host_name);
        else
                snprintf(buffer, buffer_size, "ok; %s up to date", u->host_name);
        return 0;
}

void upload_free(Upload *u) {
        if (!u)
                return;
        for (unsigned i = 0; i < u->n_in_flight; i++)
                transfer_free(u->in_flight[i]);
        for (size_t i = 0; i < u->n_round; i++)
                free(u->round[i]);
        free(u->round);
        for (size_t i = 0; i < u->n_todo; i++)
                free(u->todo[i]);
        free(u->todo);
        manifest_clear(u);
        free(u->entries);
        plugin_free_secret(u->password);
        free(u->url);
        free(u->key_file);
        free(u->password_file);
        free(u->password_credential);
        free(u->known_hosts);
        free(u->ca_file);
        free(u->base);
        free(u->host_name);
        free(u->output);
        free(u->manifest_path);
        free(u->last_error);
        free(u);
}
