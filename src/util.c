/* SPDX-License-Identifier: MIT */
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>

void *xmalloc(size_t size) {
        void *p = malloc(size ? size : 1);
        if (!p)
                abort();
        return p;
}

void *xcalloc(size_t n, size_t size) {
        void *p = calloc(n ? n : 1, size ? size : 1);
        if (!p)
                abort();
        return p;
}

void *xrealloc(void *p, size_t size) {
        p = realloc(p, size ? size : 1);
        if (!p)
                abort();
        return p;
}

char *xstrdup(const char *s) {
        return s ? xstrndup(s, strlen(s)) : NULL;
}

char *xstrndup(const char *s, size_t n) {
        char *p = xmalloc(n + 1);
        memcpy(p, s, n);
        p[n] = 0;
        return p;
}

/* Most results (paths, ids, log lines) fit the first try: one format and one exact allocation,
 * where vasprintf() grows a buffer and shrinks it again. */
char *xasprintf(const char *format, ...) {
        char first[256], *s;
        va_list ap;
        int n;

        va_start(ap, format);
        n = vsnprintf(first, sizeof first, format, ap);
        va_end(ap);
        if (n < 0)
                abort();
        s = xmalloc((size_t) n + 1);
        if ((size_t) n < sizeof first)
                memcpy(s, first, (size_t) n + 1);
        else {
                va_start(ap, format);
                vsnprintf(s, (size_t) n + 1, format, ap);
                va_end(ap);
        }
        return s;
}

static void strbuf_reserve(StrBuf *b, size_t extra) {
        if (b->len + extra + 1 <= b->cap)
                return;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + extra + 1)
                cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
}

void strbuf_appendn(StrBuf *b, const char *s, size_t n) {
        strbuf_reserve(b, n);
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = 0;
}

void strbuf_append(StrBuf *b, const char *s) {
        strbuf_appendn(b, s, strlen(s));
}

void strbuf_printf(StrBuf *b, const char *format, ...) {
        va_list ap;
        int n;

        strbuf_reserve(b, 128); /* most pieces fit: formatted once, straight into the buffer */
        va_start(ap, format);
        n = vsnprintf(b->data + b->len, b->cap - b->len, format, ap);
        va_end(ap);
        if (n < 0)
                abort();
        if ((size_t) n >= b->cap - b->len) {
                strbuf_reserve(b, (size_t) n);
                va_start(ap, format);
                vsnprintf(b->data + b->len, (size_t) n + 1, format, ap);
                va_end(ap);
        }
        b->len += (size_t) n;
}

char *strbuf_steal(StrBuf *b) {
        char *s = b->data ? b->data : xstrdup("");
        *b = (StrBuf) {};
        return s;
}

void strbuf_free(StrBuf *b) {
        free(b->data);
        *b = (StrBuf) {};
}

char *strstrip(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
                e--;
        *e = 0;
        return s;
}

bool startswith_nocase(const char *s, const char *prefix) {
        return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

bool endswith_nocase(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* Parses "<number><unit>" where the unit comes from a table; shared by durations and sizes. */
struct unit {
        const char *suffix;
        uint64_t factor;
};

static int parse_with_units(const char *s, const struct unit *units, size_t n_units, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (isempty(s) || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0)
                return -EINVAL;
        while (*end == ' ')
                end++;
        for (size_t i = 0; i < n_units; i++)
                if (strcasecmp(end, units[i].suffix) == 0) {
                        if (units[i].factor && v > UINT64_MAX / units[i].factor)
                                return -ERANGE;
                        *ret = v * units[i].factor;
                        return 0;
                }
        return -EINVAL;
}

int parse_duration(const char *s, usec_t *ret) {
        static const struct unit units[] = {
                { "", USEC_PER_SEC },       { "s", USEC_PER_SEC },      { "sec", USEC_PER_SEC },
                { "ms", USEC_PER_MSEC },    { "m", USEC_PER_MINUTE },   { "min", USEC_PER_MINUTE },
                { "h", USEC_PER_HOUR },     { "d", USEC_PER_DAY },      { "w", 7 * USEC_PER_DAY },
        };
        return parse_with_units(s, units, ELEMENTSOF(units), ret);
}

int parse_size(const char *s, uint64_t *ret) {
        static const struct unit units[] = {
                { "", 1 },           { "B", 1 },          { "K", 1024ULL },   { "KB", 1024ULL },
                { "M", 1024ULL * 1024 }, { "MB", 1024ULL * 1024 }, { "G", 1024ULL * 1024 * 1024 },
                { "GB", 1024ULL * 1024 * 1024 },
        };
        return parse_with_units(s, units, ELEMENTSOF(units), ret);
}

int parse_boolean(const char *s) {
        static const char *const yes[] = { "yes", "true", "on", "1", "y" };
        static const char *const no[] = { "no", "false", "off", "0", "n" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

int parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret) {
        char *end;
        unsigned long v;

        if (isempty(s) || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end != 0)
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

uint64_t hash_fnv1a(const void *data, size_t size, uint64_t seed) {
        const unsigned char *p = data;
        uint64_t h = seed;

        for (size_t i = 0; i < size; i++) {
                h ^= p[i];
                h *= 0x100000001b3ULL;
        }
        return h;
}

char *path_join(const char *a, const char *b) {
        size_t n = strlen(a), m = strlen(b), slash = n > 0 && a[n - 1] == '/' ? 0 : 1;
        char *p = xmalloc(n + slash + m + 1);

        memcpy(p, a, n);
        p[n] = '/';
        memcpy(p + n + slash, b, m + 1);
        return p;
}

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = xstrdup(path);

        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* Opens a regular file for reading, not following a final symlink; its fd, or -EBADFD for anything else. */
static int open_regular(const char *path, struct stat *ret_st) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);

        if (fd < 0)
                return -errno;
        int r = fstat(fd, ret_st) < 0 ? -errno : !S_ISREG(ret_st->st_mode) ? -EBADFD : 0;
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

int read_file(const char *path, size_t max, char **ret_data, size_t *ret_size) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *data = NULL;
        struct stat st;
        size_t size = 0;

        fd = open_regular(path, &st);
        if (fd < 0)
                return fd;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        data = xmalloc((size_t) st.st_size + 1);
        /* The file may grow while we read it; never read more than we sized for, and say so. */
        for (;;) {
                ssize_t n = read(fd, data + size, (size_t) st.st_size + 1 - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > (size_t) st.st_size)
                        return -EAGAIN;
        }
        data[size] = 0;
        *ret_data = TAKE_PTR(data);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int fsync_path(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                return -errno;
        return 0;
}

int fsync_parent(const char *path) {
        _cleanup_free_ char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');

        if (!slash)
                return fsync_path(".");
        if (slash == dir)
                slash[1] = 0;
        else
                *slash = 0;
        return fsync_path(dir);
}

int write_full(int fd, const void *data, size_t size) {
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

int write_new_file(const char *path, const void *data, size_t size, mode_t mode) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);

        return fd < 0 ? -errno : write_full(fd, data, size);
}

/* Creates "<path>.tmp-XXXXXX" beside path, writes data and, if `sync`, fsyncs it. */
static int write_temporary(const char *path, const void *data, size_t size, mode_t mode, bool sync,
                           char **ret_temp) {
        _cleanup_free_ char *temp = xasprintf("%s.tmp-XXXXXX", path);
        _cleanup_close_ int fd = mkostemp(temp, O_CLOEXEC);
        int r;

        if (fd < 0)
                return -errno;
        r = write_full(fd, data, size);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && sync && fsync(fd) < 0)
                r = -errno;
        if (r < 0) {
                unlink(temp);
                return r;
        }
        *ret_temp = TAKE_PTR(temp);
        return 0;
}

int sync_filesystem(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

        if (fd < 0 || syncfs(fd) < 0)
                return -errno;
        return 0;
}

int sync_tree(const char *path) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        struct stat st;

        if (lstat(path, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return S_ISREG(st.st_mode) ? fsync_path(path) : 0;
        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                _cleanup_free_ char *p = path_join(path, de->d_name);
                int r = sync_tree(p);
                if (r < 0)
                        return r;
        }
        return fsync_path(path);
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode) {
        _cleanup_free_ char *temp = NULL;
        int r;

        r = write_temporary(path, data, size, mode, true, &temp);
        if (r < 0)
                return r;
        if (rename(temp, path) < 0) {
                r = -errno;
                unlink(temp);
                return r;
        }
        return fsync_parent(path);
}

int copy_file(const char *from, const char *to, mode_t mode) {
        _cleanup_close_ int in = -1, out = -1;
        struct stat st;
        char buf[65536];
        int r;

        in = open_regular(from, &st);
        if (in < 0)
                return in;
        out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (out < 0)
                return -errno;
        for (;;) {
                ssize_t n = read(in, buf, sizeof buf);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                r = write_full(out, buf, (size_t) n);
                if (r < 0)
                        return r;
        }
        return 0;
}

int copy_tree(const char *from, const char *to) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int r;

        if (mkdir(to, 0750) < 0 && errno != EEXIST)
                return -errno;
        d = opendir(from);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *src = NULL, *dst = NULL;
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                src = path_join(from, de->d_name);
                dst = path_join(to, de->d_name);
                if (lstat(src, &st) < 0)
                        return -errno;
                if (S_ISDIR(st.st_mode))
                        r = copy_tree(src, dst);
                else if (S_ISREG(st.st_mode))
                        r = copy_file(src, dst, 0640);
                else
                        r = S_ISLNK(st.st_mode) ? -ELOOP : -EPERM;
                if (r < 0)
                        return r;
        }
        return 0;
}

int mkdir_empty(const char *path, mode_t mode) {
        if (mkdir(path, mode) == 0)
                return 0;
        if (errno != EEXIST)
                return -errno;
        (void) remove_tree(path);
        return mkdir(path, mode) < 0 ? -errno : 0;
}

int remove_tree(const char *path) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        struct stat st;
        int r;

        /* Most calls remove a file: try that first (Linux says EISDIR for a folder, POSIX allows EPERM). */
        if (unlink(path) == 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return -errno;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode))
                return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                p = path_join(path, de->d_name);
                r = remove_tree(p);
                if (r < 0)
                        return r;
        }
        return rmdir(path) < 0 && errno != ENOENT ? -errno : 0;
}

/* ---- write batches ---- */

typedef struct WriteBatchEntry {
        char *temp, *path; /* temp: NULL for a file written in place (write_batch_add_new()) */
} WriteBatchEntry;

struct WriteBatch {
        WriteBatchEntry *entries;
        size_t n, cap;
};

WriteBatch *write_batch_new(void) {
        return xcalloc(1, sizeof(WriteBatch));
}

size_t write_batch_size(const WriteBatch *b) {
        return b->n;
}

static void write_batch_push(WriteBatch *b, char *temp, const char *path) {
        if (b->n == b->cap) {
                b->cap = b->cap ? b->cap * 2 : 16;
                b->entries = xrealloc(b->entries, b->cap * sizeof(WriteBatchEntry));
        }
        b->entries[b->n++] = (WriteBatchEntry) { .temp = temp, .path = xstrdup(path) };
}

int write_batch_add(WriteBatch *b, const char *path, const void *data, size_t size) {
        char *temp;
        int r;

        /* Not synced here: commit() syncs every temporary at once, so the disk can merge the work. */
        r = write_temporary(path, data, size, 0640, false, &temp);
        if (r < 0)
                return r;
        write_batch_push(b, temp, path);
        return 0;
}

int write_batch_add_new(WriteBatch *b, const char *path, const void *data, size_t size) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
        int r;

        if (fd < 0)
                return errno == EEXIST ? write_batch_add(b, path, data, size) : -errno;
        r = write_full(fd, data, size);
        if (r < 0) {
                unlink(path);
                return r;
        }
        write_batch_push(b, NULL, path);
        return 0;
}

/* Frees the entries, removing the temporaries from index `first_unrenamed` on (the others were renamed). */
static void write_batch_clear(WriteBatch *b, size_t first_unrenamed) {
        for (size_t i = 0; i < b->n; i++) {
                if (i >= first_unrenamed)
                        unlink(b->entries[i].temp ? b->entries[i].temp : b->entries[i].path);
                free(b->entries[i].temp);
                free(b->entries[i].path);
        }
        b->n = 0;
}

static char *parent_of(const char *path) {
        const char *slash = strrchr(path, '/');
        return slash ? xstrndup(path, (size_t) (slash - path)) : xstrdup(".");
}

static int sync_temporaries(WriteBatch *b, bool whole_fs) {
        if (whole_fs) {
                _cleanup_free_ char *dir = parent_of(b->entries[0].path);
                return sync_filesystem(dir);
        }
        for (size_t i = 0; i < b->n; i++) {
                int r = fsync_path(b->entries[i].temp ? b->entries[i].temp : b->entries[i].path);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Makes the first n renames of the batch durable: each directory once, or the whole filesystem once. */
static int sync_renamed(WriteBatch *b, size_t n, bool whole_fs) {
        _cleanup_free_ char **dirs = NULL, *last = NULL;
        int r = 0;

        if (n == 0)
                return 0;
        if (whole_fs) {
                _cleanup_free_ char *dir = parent_of(b->entries[0].path);
                return sync_filesystem(dir);
        }
        dirs = xcalloc(n, sizeof(char *));
        for (size_t i = 0; i < n; i++)
                dirs[i] = b->entries[i].path;
        qsort(dirs, n, sizeof(char *), compare_strings);
        for (size_t k = 0; k < n; k++) {
                _cleanup_free_ char *dir = parent_of(dirs[k]);
                if (last && streq(last, dir))
                        continue;
                int q = fsync_path(dir);
                if (q < 0 && r >= 0)
                        r = q;
                free(last);
                last = TAKE_PTR(dir);
        }
        return r;
}

int write_batch_commit(WriteBatch *b) {
        bool whole_fs = b->n >= WRITE_BATCH_SYNCFS;
        size_t i;
        int r;

        if (b->n == 0)
                return 0;
        r = sync_temporaries(b, whole_fs);
        if (r < 0) {
                write_batch_clear(b, 0);
                return r;
        }
        for (i = 0; i < b->n; i++)
                if (b->entries[i].temp && rename(b->entries[i].temp, b->entries[i].path) < 0) {
                        r = -errno;
                        break;
                }
        /* Whatever happened above, the renames that did happen must last. */
        int q = sync_renamed(b, i, whole_fs);
        if (q < 0 && r >= 0)
                r = q;
        write_batch_clear(b, i);
        return r;
}

void write_batch_free(WriteBatch *b) {
        if (!b)
                return;
        write_batch_clear(b, 0);
        free(b->entries);
        free(b);
}

/* ---- the clock ---- */

static int64_t clock_offset; /* added to CLOCK_REALTIME */
static bool clock_shifted;

static usec_t clock_read(clockid_t id) {
        struct timespec ts;
        clock_gettime(id, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
}

int clock_init(void) {
        const char *e = getenv("PRAKAT_NOW");
        struct tm tm = {};
        char *end;

        clock_offset = 0;
        clock_shifted = false;
        if (isempty(e))
                return 0;
        end = strptime(e, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!end || (*end != 'Z' && *end != 0) || (*end == 'Z' && end[1] != 0))
                return -EINVAL;
        clock_offset = (int64_t) timegm(&tm) * (int64_t) USEC_PER_SEC - (int64_t) clock_read(CLOCK_REALTIME);
        clock_shifted = true;
        return 0;
}

bool clock_is_shifted(void) {
        return clock_shifted;
}

usec_t clock_now(void) {
        return (usec_t) ((int64_t) clock_read(CLOCK_REALTIME) + clock_offset);
}

usec_t clock_monotonic(void) {
        return clock_read(CLOCK_MONOTONIC);
}
