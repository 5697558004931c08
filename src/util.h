/* SPDX-License-Identifier: MIT */
/* util: small helpers every module uses — ownership macros, strings, durable file writes, the clock. */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef uint64_t usec_t;
#define PRAKAT_VERSION "0.1"

#define USEC_PER_MSEC ((usec_t) 1000ULL)
#define USEC_PER_SEC ((usec_t) 1000000ULL)
#define USEC_PER_MINUTE (60ULL * USEC_PER_SEC)
#define USEC_PER_HOUR (60ULL * USEC_PER_MINUTE)
#define USEC_PER_DAY (24ULL * USEC_PER_HOUR)

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

static inline void freep(void *p) {
        free(*(void **) p);
}
static inline void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}
static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Returns the pointer and clears the variable, so a cleanup attribute no longer frees it. */
#define TAKE_PTR(p)                              \
        ({                                       \
                __typeof__(p) _taken_ = (p);     \
                (p) = NULL;                      \
                _taken_;                         \
        })
#define TAKE_FD(fd)                    \
        ({                             \
                int _taken_fd_ = (fd); \
                (fd) = -1;             \
                _taken_fd_;            \
        })

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}
static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}
static inline bool isempty(const char *s) {
        return !s || !*s;
}

/* Aborts on out-of-memory: the daemon cannot do anything useful without memory, and every
 * caller checking NULL would hide the real logic. Used for small allocations only. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *format, ...) _printf_(1, 2);

/* A growable string. */
typedef struct StrBuf {
        char *data;
        size_t len, cap;
} StrBuf;
void strbuf_append(StrBuf *b, const char *s);
void strbuf_appendn(StrBuf *b, const char *s, size_t n);
void strbuf_printf(StrBuf *b, const char *format, ...) _printf_(2, 3);
char *strbuf_steal(StrBuf *b); /* returns a NUL-terminated string (never NULL) and resets b */
void strbuf_free(StrBuf *b);

/* Trims ASCII blanks (and CR/LF) at both ends, in place; returns s. */
char *strstrip(char *s);
bool startswith_nocase(const char *s, const char *prefix);
bool endswith_nocase(const char *s, const char *suffix);

/* "2s", "1h", "3d", "500ms", "90" (seconds). Returns -EINVAL on anything else. */
int parse_duration(const char *s, usec_t *ret);
/* "20M", "512K", "1G", "1000" (bytes). */
int parse_size(const char *s, uint64_t *ret);
/* yes/no, true/false, on/off, 1/0. Returns 1, 0, or -EINVAL. */
int parse_boolean(const char *s);
/* Decimal unsigned in [min, max]. */
int parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret);

/* FNV-1a, 64 bit: content fingerprints and stable short names, not security. */
uint64_t hash_fnv1a(const void *data, size_t size, uint64_t seed);
#define HASH_FNV1A_SEED 0xcbf29ce484222325ULL

/* ---- files ---- */

char *path_join(const char *a, const char *b);
int mkdir_p(const char *path, mode_t mode);
/* Reads a whole regular file of at most `max` bytes (−EFBIG beyond). Adds a NUL after the data. */
int read_file(const char *path, size_t max, char **ret_data, size_t *ret_size);
int fsync_path(const char *path);    /* opens a file or directory and fsyncs it */
int fsync_parent(const char *path);  /* fsyncs the directory holding path */
/* write(2) until all of `data` is written (retrying short writes and EINTR). */
int write_full(int fd, const void *data, size_t size);
/* Creates or truncates path and writes `data`, in place and not synced: for files nothing reads until
 * the caller has synced and renamed the folder they are in. */
int write_new_file(const char *path, const void *data, size_t size, mode_t mode);
/* Writes `data` to path whole: temporary file in the same directory, fsync, rename, fsync directory. */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);
/* syncfs(2) of the filesystem holding path: one wait for the disk however many files were written. */
int sync_filesystem(const char *path);
/* fsync of every file and folder under path (and path itself): for a few files, cheaper than syncfs(). */
int sync_tree(const char *path);
/* Copies a regular file (not following symlinks).  Not synced: the caller syncs the batch it is part of. */
int copy_file(const char *from, const char *to, mode_t mode);
/* Copies a directory tree of regular files and directories; anything else fails with -ELOOP/-EPERM.
 * Not synced either. */
int copy_tree(const char *from, const char *to);
/* rm -rf; missing is not an error. */
int remove_tree(const char *path);
/* Makes an empty folder at path; whatever was there (a leftover of a crash) is removed first. */
int mkdir_empty(const char *path, mode_t mode);

/*
 * A batch of whole-file writes made durable together: each add() writes a temporary file; commit()
 * makes them durable, renames each into place, and makes the renames durable (and removes every file
 * of the batch it could not make durable).  A small batch is
 * synced file by file and directory by directory; from WRITE_BATCH_SYNCFS entries on, one syncfs()
 * before and one after the renames replace them all.  Every path in one batch must be on one
 * filesystem (the callers write into the state folder only).
 */
#define WRITE_BATCH_SYNCFS 4
typedef struct WriteBatch WriteBatch;
WriteBatch *write_batch_new(void);
int write_batch_add(WriteBatch *b, const char *path, const void *data, size_t size);
/*
 * For a file that does not exist yet: written in place (no temporary, no rename), which a crash before
 * commit() returns may leave cut off, so only for files whose reader treats a cut-off file as not
 * written.  When the file exists after all, the same as write_batch_add().
 */
int write_batch_add_new(WriteBatch *b, const char *path, const void *data, size_t size);
int write_batch_commit(WriteBatch *b); /* also empties the batch; on error the temporaries are removed */
size_t write_batch_size(const WriteBatch *b);
void write_batch_free(WriteBatch *b);

/* ---- the clock (DESIGN §8) ---- */

/* Reads PRAKAT_NOW once; returns -EINVAL if it is set but not ISO 8601 UTC. */
int clock_init(void);
bool clock_is_shifted(void);
/* Wall clock in usec since the epoch, shifted by PRAKAT_NOW. */
usec_t clock_now(void);
/* CLOCK_MONOTONIC in usec, for measuring and for arming sd-event timers. */
usec_t clock_monotonic(void);
