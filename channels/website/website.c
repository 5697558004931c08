/* SPDX-License-Identifier: MIT */
/*
 * website: the office's public news site, written as static files under `output`.
 *
 * Layout (all paths relative to `output`):
 *   a/ID.html                  one article (or, once withdrawn or replaced, a notice at the same URL)
 *   files/ID/N-safe.ext        the article's attachments
 *   index.html                 the newest `per_page` items
 *   page/N.html                archive pages, numbered OLDEST first
 *   category/SLUG/index.html   the same two kinds of page per category
 *   category/SLUG/page/N.html
 *   feed.atom                  Atom 1.0, the newest `feed_items` items
 *   sitemap.xml                sitemap index over sitemap-N.xml chunks of SITEMAP_CHUNK URLs, oldest first
 *   style.css
 *
 * Why archive pages count from the oldest item: page N then always holds items
 * (N-1)*per_page+1 .. N*per_page in publication order, so a new item only ever lands on
 * the last page and the older pages never change.  There is always one page more than
 * the full ones (it may be empty), so a full page can link "newer" to page N+1 from the
 * moment it is written and never needs rewriting when the next page appears.  Sitemap
 * chunks follow the same rule.  Publishing into an archive of 10,000 items therefore
 * rewrites about as many files as publishing into one of 100.
 *
 * Batching: publish() and retract() do the per-item work at once (article page,
 * attachment copies, the item's state file) and only mark the shared pages dirty; a
 * zero-delay timer then renders every dirty shared page once, syncs the filesystems
 * written to once, and only then finishes the batch's jobs.  A thousand announcements
 * arriving in one loop iteration cost one index, one feed, one sitemap and one sync.
 * With `upload =`, the jobs end only after upload.c has put the files the batch changed on
 * the web host (website_start_upload()); every write and removal below tells it the path.
 *
 * State (host->state_dir/items/ID, one small line-oriented file per item) holds what the
 * listings need, so a listing page reads only the files of the items it shows.  In
 * memory there is one compact record per listed item, sorted by publication time then
 * id.  Withdrawn and replaced items keep their state file (marked) but leave memory.
 *
 * Every file is written whole: temporary file in the same directory, then rename, so a
 * reader never sees half a page; a file whose content would not change is not rewritten
 * at all.  Nothing is fsynced file by file: a job counts as done only after the batch's
 * syncfs(), and a crash before that leaves the job "sending", so prakatd asks for the
 * item again after the restart and every page it touches is rewritten.
 */
#include "id-filter.h"
#include "prakat-channel.h"
#include "plugin-util.h"
#include "upload.h"
#include "wordpress.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define WEBSITE_VERSION "1.0"
#define STATE_MAGIC "prakat-website-item 2"    /* ends with "end 1": it may be written in place */
#define STATE_MAGIC_V1 "prakat-website-item 1" /* always renamed into place, no end line */
#define TMP_PREFIX ".prakat-tmp-"
#define EXPIRY_MARKER "<!--prakat:expiry-->"
#define SITEMAP_CHUNK 1000
#define SUMMARY_CHARS 200
#define MAX_STATE_FILE (256 * 1024)
#define MAX_REASON_BYTES 4000
#define RETRY_FLUSH_USEC (60ULL * 1000000ULL)

#define DEFAULT_SITE_TITLE "ข่าวประชาสัมพันธ์"
#define DEFAULT_PER_PAGE 20
#define DEFAULT_FEED_ITEMS 50

#define KNOWN_KEYS "output, base_url, site_title, office_name, per_page, feed_items, mode, " UPLOAD_KEYS

#define _cleanup_(f) __attribute__((cleanup(f)))
#define TAKE_PTR(p)                                                                                                    \
        ({                                                                                                             \
                typeof(p) _taken = (p);                                                                                \
                (p) = NULL;                                                                                            \
                _taken;                                                                                                \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

/* ------------------------------------------------------------------------------------------------ */
/* Types */

typedef enum ItemState {
        ITEM_LISTED,
        ITEM_WITHDRAWN,
        ITEM_REPLACED,
} ItemState;

/* What items/ID holds: everything a listing, the feed or a notice needs about one item. */
typedef struct ItemRecord {
        char *id;
        ItemState state;
        prakat_usec_t published;
        prakat_usec_t updated;
        prakat_usec_t expires; /* 0 = never */
        bool expiry_shown;     /* the article page carries the expiry banner */
        int priority;
        uint64_t hash; /* of the article page as first rendered: tells a retry from an edit */
        char *category;
        char *title;
        char *author;  /* NULL when none */
        char *summary;
        char *image;   /* output-relative path of the first image, or NULL */
        prakat_usec_t withdrawn_at;
        char *replaced_by;
        char *reason;
} ItemRecord;

/* The in-memory record of one listed item: small, because there may be tens of thousands. */
typedef struct Item {
        prakat_usec_t published;
        prakat_usec_t updated;
        prakat_usec_t expires;
        uint32_t category;
        bool expiry_shown;
        char id[];
} Item;

/*
 * The text of a recently read or written items/ID, so that rendering the listings, the feed and
 * the sitemap of a batch does not open the files of the items they show again and again.  Every
 * write of a record goes through website_write_record(), which refreshes its slot; records are
 * never removed.  The texts live in one mapping of their own, given back to the system after each
 * batch is rendered: copies on the heap, between the items' long-lived allocations, kept the heap
 * from shrinking after a burst.
 */
#define RECORD_CACHE_SLOTS 512
#define RECORD_CACHE_BYTES (1024 * 1024)
typedef struct RecordCacheSlot {
        const char *id; /* in the arena; NULL when empty */
        const char *text;
        size_t size;
} RecordCacheSlot;

/* Which pages of one paginated listing (the whole site, or one category) must be rendered. */
typedef struct Listing {
        size_t pages_on_disk; /* archive pages that exist in output */
        size_t tail_from;     /* 1-based: this page and every later one are dirty; 0 = none */
        uint8_t *dirty;       /* bitmap of single dirty pages, bit N = page N */
        size_t dirty_bits;
        bool index_dirty;
} Listing;

typedef struct Category {
        char *name; /* as first seen; categories whose slugs match are one category */
        char slug[80];
        size_t n_items;
        Listing listing;
} Category;

/* A job whose shared pages are not on disk yet. */
typedef struct Pending {
        prakat_job *job;
        char *id;
        char *link;
        char **attachment_urls;
        size_t n_attachment_urls;
} Pending;


typedef struct Website {
        const prakat_host *host;
        WordPress *wordpress; /* mode = wordpress: wordpress.c does everything, nothing below is used */

        char *output;
        char *base_url; /* without trailing slash */
        char *site_title;
        char *office_name; /* "" when unset */
        unsigned per_page;
        unsigned feed_items;
        bool output_relative; /* given relative to the config file: made canonical once it exists */
        char *items_dir;
        IdFilter known;           /* the ids in items_dir: a miss means no record (no open) */
        RecordCacheSlot cache[RECORD_CACHE_SLOTS]; /* recent records' text: listings re-read the newest */
        char *cache_arena;                         /* RECORD_CACHE_BYTES mapped, or NULL */
        size_t cache_used;
        bool loading; /* reading every record at start: none of them goes into the cache */

        Item **items; /* listed items, oldest first */
        size_t n_items;
        size_t items_allocated;

        Category *categories;
        size_t n_categories;

        Listing site;
        bool feed_dirty;
        size_t sitemap_chunks_on_disk;
        size_t sitemap_tail_from; /* 1-based chunk; 0 = none */
        bool sitemap_index_dirty;

        Pending *pending;
        size_t n_pending;

        bool unsynced; /* written to since the last sync */

        Upload *upload;       /* upload = ...: the output is mirrored to a host (upload.c), else NULL */
        Pending *uploading;   /* the batch whose files are being uploaded */
        size_t n_uploading;

        prakat_timer *flush_timer;
        prakat_usec_t flush_deadline;
        prakat_timer *expiry_timer;
        prakat_usec_t expiry_deadline;

        /* Sync before finishing jobs.  Only the unit test that builds a large archive turns it off. */
        bool durable;

        char error[512]; /* the last write error, for the job's message */
} Website;

static void free_strings(char **v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

/* ------------------------------------------------------------------------------------------------ */
/* Growable text buffer.  An allocation failure is remembered and reported once, at the end. */



/* Characters XML 1.0 forbids or that only cause trouble in a page; dropped from user text. */
static bool codepoint_is_unwanted(uint32_t cp) {
        if (cp < 0x20)
                return cp != '\t' && cp != '\n' && cp != '\r';
        return cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0xFFFE || cp == 0xFFFF;
}

/* Appends user text escaped for both HTML (text and attribute values) and XML. */
static void buf_put_text_n(PluginBuf *b, const char *text, size_t length) {
        const unsigned char *s = (const unsigned char *) text;
        while (length > 0) {
                uint32_t cp;
                size_t n = plugin_utf8_decode(s, length, &cp);
                if (n == 0) {
                        plugin_buf_puts(b, "\xEF\xBF\xBD"); /* U+FFFD */
                        s++, length--;
                        continue;
                }
                switch (cp) {
                case '&': plugin_buf_puts(b, "&amp;"); break;
                case '<': plugin_buf_puts(b, "&lt;"); break;
                case '>': plugin_buf_puts(b, "&gt;"); break;
                case '"': plugin_buf_puts(b, "&quot;"); break;
                case '\'': plugin_buf_puts(b, "&#39;"); break;
                default:
                        if (!codepoint_is_unwanted(cp))
                                plugin_buf_put(b, (const char *) s, n);
                }
                s += n, length -= n;
        }
}

static void buf_put_text(PluginBuf *b, const char *text) {
        buf_put_text_n(b, text ? text : "", text ? strlen(text) : 0);
}

/* ------------------------------------------------------------------------------------------------ */
/* Names: ids, slugs, attachment file names, summaries */

static uint32_t fnv1a32(const char *s) {
        uint32_t h = 2166136261u;
        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= 16777619u;
        }
        return h;
}

/* "News" → "news"; anything not plain [a-z0-9-] (Thai names) → "c-" + FNV-1a of the UTF-8 name. */
static void category_make_slug(const char *name, char slug[static 80]) {
        size_t n = strlen(name);
        bool plain = n > 0 && n < 64;
        for (size_t i = 0; plain && i < n; i++) {
                char c = name[i] >= 'A' && name[i] <= 'Z' ? (char) (name[i] - 'A' + 'a') : name[i];
                plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
                slug[i] = c;
        }
        if (plain) {
                slug[n] = 0;
                return;
        }
        snprintf(slug, 80, "c-%08" PRIx32, fnv1a32(name));
}

/* Extensions a browser would run as active content from our origin; such files are renamed to .txt. */
static bool extension_is_active(const char *ext) {
        static const char *const active[] = {
                "htm", "html", "xhtml", "xht", "shtml", "svg", "svgz", "xml", "xsl", "xslt", "js", "mjs",
                "php", "phtml", "phar", "cgi", "pl", "py", "asp", "aspx", "jsp", "swf", "htaccess",
        };
        for (size_t i = 0; i < sizeof(active) / sizeof(active[0]); i++)
                if (strcmp(ext, active[i]) == 0)
                        return true;
        return strncmp(ext, "php", 3) == 0;
}

static bool extension_is_inline_image(const char *ext) {
        return strcmp(ext, "jpg") == 0 || strcmp(ext, "jpeg") == 0 || strcmp(ext, "png") == 0 ||
               strcmp(ext, "gif") == 0 || strcmp(ext, "webp") == 0 || strcmp(ext, "avif") == 0;
}

/* The extension of a name this plugin made ("" when none). */
static const char *safe_name_extension(const char *safe_name) {
        const char *dot = strrchr(safe_name, '.');
        return dot ? dot + 1 : "";
}

/*
 * "N-stem.ext" from a writer's file name: only ASCII letters, digits, '.', '-', '_' of the
 * base name survive, the extension is lower-cased, and neither '/' nor a leading dot can
 * get through.  Thai names lose their stem and become "N-file.ext"; the page still shows
 * the original name as the link text.
 */
static char *attachment_safe_name(size_t number, const char *name) {
        const char *base = name ? name : "";
        for (const char *p = base; *p; p++)
                if (*p == '/' || *p == '\\')
                        base = p + 1;

        const char *dot = strrchr(base, '.');
        if (dot == base)
                dot = NULL;
        size_t stem_length = dot ? (size_t) (dot - base) : strlen(base);

        char stem[64] = {}, ext[16] = {};
        size_t ns = 0, ne = 0;
        for (size_t i = 0; i < stem_length && ns < 48; i++) {
                char c = base[i];
                bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                            c == '-' || c == '_' || (c == '.' && ns > 0);
                if (keep)
                        stem[ns++] = c;
        }
        while (ns > 0 && stem[ns - 1] == '.')
                stem[--ns] = 0;
        for (const char *p = dot ? dot + 1 : ""; *p && ne < 10; p++) {
                char c = *p >= 'A' && *p <= 'Z' ? (char) (*p - 'A' + 'a') : *p;
                if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                        ext[ne++] = c;
        }
        if (ns == 0)
                strcpy(stem, "file");

        char *s = NULL;
        int r;
        if (ne == 0)
                r = asprintf(&s, "%zu-%s", number, stem);
        else if (extension_is_active(ext))
                r = asprintf(&s, "%zu-%s-%s.txt", number, stem, ext);
        else
                r = asprintf(&s, "%zu-%s.%s", number, stem, ext);
        return r < 0 ? NULL : s;
}

/* Thai vowel and tone marks that sit on the previous letter: a summary must not end just before one. */
static bool codepoint_is_thai_combining(uint32_t cp) {
        return cp == 0x0E31 || (cp >= 0x0E34 && cp <= 0x0E3A) || (cp >= 0x0E47 && cp <= 0x0E4E);
}

/* The body as one line, white space collapsed, cut after about `max_chars` characters with "…". */
static char *make_summary(const char *body, size_t max_chars) {
        PluginBuf b = {};
        const unsigned char *s = (const unsigned char *) (body ? body : "");
        size_t left = strlen((const char *) s), chars = 0;
        bool space = false, cut = false;

        while (left > 0) {
                uint32_t cp;
                size_t n = plugin_utf8_decode(s, left, &cp);
                if (n == 0)
                        n = 1, cp = 0xFFFD;
                if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == 0xA0) {
                        space = b.size > 0;
                        s += n, left -= n;
                        continue;
                }
                if (chars >= max_chars && !codepoint_is_thai_combining(cp)) {
                        cut = true;
                        break;
                }
                if (space)
                        plugin_buf_puts(&b, " "), chars++;
                space = false;
                plugin_buf_put(&b, (const char *) s, n);
                chars++;
                s += n, left -= n;
        }
        if (cut)
                plugin_buf_puts(&b, "…");
        if (!b.data)
                plugin_buf_puts(&b, "");
        if (b.failed) {
                plugin_buf_free(&b);
                return NULL;
        }
        return b.data;
}

/* ------------------------------------------------------------------------------------------------ */
/* Files */

__attribute__((format(printf, 2, 3))) static void website_set_error(Website *w, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        vsnprintf(w->error, sizeof(w->error), format, ap);
        va_end(ap);
}

static char *path_parent(const char *path) {
        const char *slash = strrchr(path, '/');
        if (!slash || slash == path)
                return strdup("/");
        return strndup(path, (size_t) (slash - path));
}

/* Remembers that the output or the state changed; the flush syncs once for all changes. */
static void website_touch(Website *w) {
        w->unsynced = true;
}

/* mkdir -p. */
static int website_mkdir_p(Website *w, const char *path) {
        struct stat st;
        if (stat(path, &st) == 0)
                return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
        _cleanup_free_ char *parent = path_parent(path);
        if (!parent)
                return -ENOMEM;
        if (strcmp(parent, path) != 0) {
                int r = website_mkdir_p(w, parent);
                if (r < 0)
                        return r;
        }
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return -errno;
        website_touch(w);
        return 0;
}

static int write_all(int fd, const char *data, size_t size) {
        while (size > 0) {
                ssize_t n = write(fd, data, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                data += n, size -= (size_t) n;
        }
        return 0;
}

/* Reads a whole regular file of at most `max` bytes, NUL-terminated. */
static int read_file(const char *path, size_t max, char **ret_data, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        _cleanup_free_ char *data = malloc((size_t) st.st_size + 1);
        if (!data)
                return -ENOMEM;
        size_t got = 0;
        while (got < (size_t) st.st_size) {
                ssize_t n = read(fd, data + got, (size_t) st.st_size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        data[got] = 0;
        *ret_data = TAKE_PTR(data);
        if (ret_size)
                *ret_size = got;
        return 0;
}

static bool file_has_content(const char *path, const char *data, size_t size) {
        _cleanup_free_ char *old = NULL;
        size_t old_size;
        if (read_file(path, size, &old, &old_size) < 0)
                return false;
        return old_size == size && memcmp(old, data, size) == 0;
}

static char *tmp_path_for(const char *path) {
        const char *slash = strrchr(path, '/');
        char *s = NULL;
        if (asprintf(&s, "%.*s/" TMP_PREFIX "%s", (int) (slash - path), path, slash + 1) < 0)
                return NULL;
        return s;
}

/* After a file in output (or the state) changed: the batch needs a sync, and the upload the path. */
static void website_wrote(Website *w, const char *path) {
        website_touch(w);
        upload_note_path(w->upload, path);
}

/*
 * Writes `path` whole: temporary file beside it, then rename; synced later, once per batch.  A file that
 * already has this content is left alone, so its mtime and inode tell what a publish really changed.
 * Missing directories are created.  On failure sets w->error naming the path.
 *
 * `fresh`: the file should not exist yet and nothing refers to it until the batch is synced, so it is
 * written in place, without a temporary file and rename; a copy cut off by a crash is rewritten by the
 * retry, and a reader never looks at it meanwhile.  One that exists after all (left by a crash) is
 * replaced whole as above.
 */
static int website_write_file(Website *w, const char *path, const char *data, size_t size, bool fresh) {
        int fd = fresh ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644) : -1;
        _cleanup_free_ char *tmp = NULL;

        if (fd < 0) {
                if (file_has_content(path, data, size))
                        return 0;
                tmp = tmp_path_for(path);
                _cleanup_free_ char *dir = path_parent(path);
                if (!tmp || !dir)
                        return -ENOMEM;
                fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (fd < 0 && errno == ENOENT && website_mkdir_p(w, dir) == 0)
                        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (fd < 0) {
                        int r = -errno;
                        website_set_error(w, "Failed to write %s: %s", path, strerror(-r));
                        return r;
                }
        }

        int r = write_all(fd, data, size);
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && tmp && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                website_set_error(w, "Failed to write %s: %s", path, strerror(-r));
                unlink(tmp ? tmp : path);
                return r;
        }
        website_wrote(w, path);
        return 0;
}

static int website_write_rendered(Website *w, const char *path, PluginBuf *b, bool fresh) {
        if (b->failed) {
                website_set_error(w, "Failed to render %s: %s", path, strerror(ENOMEM));
                return -ENOMEM;
        }
        return website_write_file(w, path, b->data ? b->data : "", b->size, fresh);
}

static int website_write_buf(Website *w, const char *path, PluginBuf *b) {
        return website_write_rendered(w, path, b, false);
}

/* A file the site never had: see `fresh` at website_write_file(). */
static int website_write_new(Website *w, const char *path, PluginBuf *b) {
        return website_write_rendered(w, path, b, true);
}

static int website_unlink(Website *w, const char *path) {
        if (unlink(path) < 0) {
                if (errno == ENOENT)
                        return 0;
                int r = -errno;
                website_set_error(w, "Failed to remove %s: %s", path, strerror(-r));
                return r;
        }
        website_wrote(w, path);
        return 0;
}

/* Copies a file by read/write into a temporary file beside `to`, then renames it. */
static int website_copy_file(Website *w, const char *from, const char *to) {
        _cleanup_free_ char *tmp = tmp_path_for(to);
        if (!tmp)
                return -ENOMEM;
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0) {
                int r = -errno;
                website_set_error(w, "Failed to read attachment %s: %s", from, strerror(-r));
                return r;
        }
        int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (out < 0) {
                int r = -errno;
                website_set_error(w, "Failed to write %s: %s", to, strerror(-r));
                return r;
        }

        char chunk[64 * 1024];
        int r = 0;
        for (;;) {
                ssize_t n = read(in, chunk, sizeof(chunk));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? -errno : 0;
                        break;
                }
                r = write_all(out, chunk, (size_t) n);
                if (r < 0)
                        break;
        }
        if (close(out) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, to) < 0)
                r = -errno;
        if (r < 0) {
                website_set_error(w, "Failed to copy attachment to %s: %s", to, strerror(-r));
                unlink(tmp);
                return r;
        }
        website_wrote(w, to);
        return 0;
}

/* Removes every entry of `dir` (plain files only) whose name is not in `keep`. */
static int website_prune_dir(Website *w, const char *dir, char *const *keep, size_t n_keep) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                bool kept = false;
                for (size_t i = 0; i < n_keep && !kept; i++)
                        kept = strcmp(de->d_name, keep[i]) == 0;
                if (kept)
                        continue;
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s/%s", dir, de->d_name) < 0)
                        return -ENOMEM;
                int r = website_unlink(w, p);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Leftovers of a write cut off by a crash; harmless, but they should not pile up. */
static void purge_tmp_files(const char *dir) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0)
                        unlinkat(dirfd(d), de->d_name, 0);
}

static int sync_fs_of(Website *w, const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || syncfs(fd) < 0) {
                int r = -errno;
                website_set_error(w, "Failed to sync %s to disk: %s", path, strerror(-r));
                return r;
        }
        return 0;
}

/*
 * Makes everything written since the last call durable: one syncfs() of the output's
 * filesystem, and one of the state folder's when that is another filesystem.  One wait for
 * the disk however many pages a batch touched.
 */
static int website_sync(Website *w) {
        if (!w->unsynced || !w->durable)
                return 0;
        int r = sync_fs_of(w, w->output);
        struct stat a, b;
        if (r == 0 && stat(w->output, &a) == 0 && stat(w->items_dir, &b) == 0 && a.st_dev != b.st_dev)
                r = sync_fs_of(w, w->items_dir);
        if (r == 0)
                w->unsynced = false;
        return r;
}

/* ------------------------------------------------------------------------------------------------ */
/* Item state files: "key value" lines, values with \\, \n and \r escaped. */

static void item_record_done(ItemRecord *r) {
        free(r->id);
        free(r->category);
        free(r->title);
        free(r->author);
        free(r->summary);
        free(r->image);
        free(r->replaced_by);
        free(r->reason);
        *r = (ItemRecord) {};
}

static const char *item_state_to_string(ItemState s) {
        return s == ITEM_WITHDRAWN ? "withdrawn" : s == ITEM_REPLACED ? "replaced" : "listed";
}

static void buf_put_state_value(PluginBuf *b, const char *key, const char *value) {
        if (!value)
                return;
        plugin_buf_puts(b, key);
        plugin_buf_puts(b, " ");
        for (const char *p = value; *p; p++) {
                if (*p == '\\')
                        plugin_buf_puts(b, "\\\\");
                else if (*p == '\n')
                        plugin_buf_puts(b, "\\n");
                else if (*p == '\r')
                        plugin_buf_puts(b, "\\r");
                else
                        plugin_buf_put(b, p, 1);
        }
        plugin_buf_puts(b, "\n");
}

static void item_record_format(const ItemRecord *r, PluginBuf *b) {
        plugin_buf_puts(b, STATE_MAGIC "\n");
        buf_put_state_value(b, "id", r->id);
        buf_put_state_value(b, "state", item_state_to_string(r->state));
        plugin_buf_printf(b, "published %" PRIu64 "\nupdated %" PRIu64 "\nexpires %" PRIu64 "\n", r->published, r->updated,
                   r->expires);
        plugin_buf_printf(b, "expiry_shown %d\npriority %d\nhash %016" PRIx64 "\n", r->expiry_shown, r->priority, r->hash);
        if (r->withdrawn_at)
                plugin_buf_printf(b, "withdrawn_at %" PRIu64 "\n", r->withdrawn_at);
        buf_put_state_value(b, "category", r->category);
        buf_put_state_value(b, "title", r->title);
        buf_put_state_value(b, "author", r->author);
        buf_put_state_value(b, "summary", r->summary);
        buf_put_state_value(b, "image", r->image);
        buf_put_state_value(b, "replaced_by", r->replaced_by);
        buf_put_state_value(b, "reason", r->reason);
        plugin_buf_puts(b, "end 1\n");
}

static char *unescape_state_value(const char *s, size_t n) {
        char *out = malloc(n + 1), *o = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] != '\\' || i + 1 == n) {
                        *o++ = s[i];
                        continue;
                }
                i++;
                *o++ = s[i] == 'n' ? '\n' : s[i] == 'r' ? '\r' : s[i];
        }
        *o = 0;
        return out;
}

static int parse_u64(const char *s, uint64_t *ret) {
        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || *end != 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Stores one "key value" line into the record; unknown keys are skipped for forward compatibility. */
static int item_record_set(ItemRecord *r, const char *key, char *value) {
        char **slot = NULL;
        uint64_t number = 0;
        if (strcmp(key, "id") == 0)
                slot = &r->id;
        else if (strcmp(key, "category") == 0)
                slot = &r->category;
        else if (strcmp(key, "title") == 0)
                slot = &r->title;
        else if (strcmp(key, "author") == 0)
                slot = &r->author;
        else if (strcmp(key, "summary") == 0)
                slot = &r->summary;
        else if (strcmp(key, "image") == 0)
                slot = &r->image;
        else if (strcmp(key, "replaced_by") == 0)
                slot = &r->replaced_by;
        else if (strcmp(key, "reason") == 0)
                slot = &r->reason;
        if (slot) {
                free(*slot);
                *slot = value;
                return 0;
        }

        _cleanup_free_ char *v = value;
        if (strcmp(key, "state") == 0) {
                if (strcmp(v, "listed") == 0)
                        r->state = ITEM_LISTED;
                else if (strcmp(v, "withdrawn") == 0)
                        r->state = ITEM_WITHDRAWN;
                else if (strcmp(v, "replaced") == 0)
                        r->state = ITEM_REPLACED;
                else
                        return -EINVAL;
                return 0;
        }
        if (strcmp(key, "hash") == 0) {
                char *end;
                r->hash = strtoull(v, &end, 16);
                return *end == 0 ? 0 : -EINVAL;
        }
        bool numeric = strcmp(key, "published") == 0 || strcmp(key, "updated") == 0 ||
                       strcmp(key, "expires") == 0 || strcmp(key, "expiry_shown") == 0 ||
                       strcmp(key, "priority") == 0 || strcmp(key, "withdrawn_at") == 0;
        if (!numeric)
                return 0;
        if (parse_u64(v, &number) < 0)
                return -EINVAL;
        if (strcmp(key, "published") == 0)
                r->published = number;
        else if (strcmp(key, "updated") == 0)
                r->updated = number;
        else if (strcmp(key, "expires") == 0)
                r->expires = number;
        else if (strcmp(key, "expiry_shown") == 0)
                r->expiry_shown = number != 0;
        else if (strcmp(key, "priority") == 0)
                r->priority = number > 2 ? 0 : (int) number;
        else
                r->withdrawn_at = number;
        return 0;
}

static int item_record_parse(const char *text, size_t size, ItemRecord *ret) {
        if (strlen(text) != size)
                return -EINVAL; /* embedded NUL */
        size_t magic = strlen(STATE_MAGIC);
        bool v1 = size > magic && memcmp(text, STATE_MAGIC_V1 "\n", magic + 1) == 0, ended = false;
        if (!v1 && (size <= magic || memcmp(text, STATE_MAGIC "\n", magic + 1) != 0))
                return -EINVAL;

        ItemRecord r = {};
        for (const char *line = text + magic + 1; *line;) {
                const char *end = strchrnul(line, '\n');
                const char *space = memchr(line, ' ', (size_t) (end - line));
                if (!space) {
                        item_record_done(&r);
                        return -EINVAL;
                }
                _cleanup_free_ char *key = strndup(line, (size_t) (space - line));
                char *value = unescape_state_value(space + 1, (size_t) (end - space - 1));
                if (!key || !value) {
                        free(value);
                        item_record_done(&r);
                        return -ENOMEM;
                }
                ended = strcmp(key, "end") == 0;
                int k = item_record_set(&r, key, value);
                if (k < 0) {
                        item_record_done(&r);
                        return k;
                }
                line = *end ? end + 1 : end;
        }
        /* Version 2 is written in place the first time: without its last line it was cut off by a crash. */
        if ((!v1 && !ended) || !r.id || !r.title || !r.category || !plugin_id_is_safe(r.id)) {
                item_record_done(&r);
                return -EINVAL;
        }
        *ret = r;
        return 0;
}

static char *website_item_path(Website *w, const char *id) {
        char *p = NULL;
        return asprintf(&p, "%s/%s", w->items_dir, id) < 0 ? NULL : p;
}

static RecordCacheSlot *record_cache_slot(Website *w, const char *id) {
        return &w->cache[fnv1a64(id, strlen(id)) % RECORD_CACHE_SLOTS];
}

static void record_cache_clear(RecordCacheSlot *c) {
        *c = (RecordCacheSlot) {};
}

static void record_cache_empty(Website *w) {
        memset(w->cache, 0, sizeof(w->cache));
        if (w->cache_arena && w->cache_used > 0)
                (void) madvise(w->cache_arena, RECORD_CACHE_BYTES, MADV_DONTNEED); /* the pages go back */
        w->cache_used = 0;
}

/* Keeps a copy of `text` (`size` bytes) as the record of `id`; nothing when the arena is full. */
static void record_cache_put(Website *w, const char *id, const char *text, size_t size) {
        RecordCacheSlot *c = record_cache_slot(w, id);
        size_t id_size = strlen(id) + 1;
        record_cache_clear(c);
        if (!w->cache_arena) {
                void *p = mmap(NULL, RECORD_CACHE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        return;
                w->cache_arena = p;
        }
        if (RECORD_CACHE_BYTES - w->cache_used < id_size + size + 1)
                return;
        char *at = w->cache_arena + w->cache_used;
        memcpy(at, id, id_size);
        memcpy(at + id_size, text, size);
        at[id_size + size] = 0;
        w->cache_used += id_size + size + 1;
        *c = (RecordCacheSlot) {.id = at, .text = at + id_size, .size = size};
}

/* Reads items/ID. Returns -ENOENT when the site never had the item, -EINVAL when the file is corrupt. */
static int website_read_record(Website *w, const char *id, ItemRecord *ret) {
        if (!id_filter_may_have(&w->known, id))
                return -ENOENT;
        RecordCacheSlot *c = record_cache_slot(w, id);
        if (c->id && strcmp(c->id, id) == 0)
                return item_record_parse(c->text, c->size, ret); /* it parsed, with this id, when it came in */
        _cleanup_free_ char *path = website_item_path(w, id);
        _cleanup_free_ char *text = NULL;
        size_t size;
        if (!path)
                return -ENOMEM;
        int r = read_file(path, MAX_STATE_FILE, &text, &size);
        if (r < 0)
                return r;
        r = item_record_parse(text, size, ret);
        if (r == 0 && strcmp(ret->id, id) != 0) {
                item_record_done(ret);
                r = -EINVAL;
        }
        if (r == 0 && !w->loading)
                record_cache_put(w, id, text, size);
        if (r == -EINVAL)
                w->host->log(w->host, PRAKAT_LOG_WARNING, id, "State file %s is corrupt, ignoring", path);
        return r;
}

/*
 * The first record of an item is written in place (no one reads items/ while this runs, and a file
 * cut off by a crash lacks its "end" line, so it reads as absent and the job, still "sending", writes
 * it again); later ones replace it whole.  That saves a rename for each new announcement.
 */
static int website_write_record(Website *w, const ItemRecord *rec) {
        _cleanup_free_ char *path = website_item_path(w, rec->id);
        if (!path)
                return -ENOMEM;
        PluginBuf b = {};
        item_record_format(rec, &b);
        int r = website_write_new(w, path, &b);
        RecordCacheSlot *c = record_cache_slot(w, rec->id);
        if (r == 0) {
                id_filter_add(&w->known, rec->id);
                record_cache_put(w, rec->id, b.data, b.size); /* replaces the slot's text */
        } else if (c->id && strcmp(c->id, rec->id) == 0)
                record_cache_clear(c); /* the old text may no longer be what is on disk */
        plugin_buf_free(&b);
        return r;
}

/* ------------------------------------------------------------------------------------------------ */
/* The in-memory index and what each change makes dirty */

static size_t pages_for(size_t n, unsigned per_page) {
        return n / per_page + 1; /* the last page may be empty: see the comment at the top */
}

static size_t sitemap_chunks_for(size_t n_items) {
        return n_items / SITEMAP_CHUNK + 1; /* slot 0 is index.html, item i is slot i+1 */
}

static void listing_mark_tail(Listing *l, size_t page) {
        if (l->tail_from == 0 || page < l->tail_from)
                l->tail_from = page;
        l->index_dirty = true;
}

static void listing_mark_page(Listing *l, size_t page) {
        l->index_dirty = true;
        if (page >= l->dirty_bits) {
                size_t bits = (page / 64 + 1) * 64 * 2;
                uint8_t *p = realloc(l->dirty, bits / 8);
                if (!p) {
                        listing_mark_tail(l, page); /* correct, only slower */
                        return;
                }
                memset(p + l->dirty_bits / 8, 0, (bits - l->dirty_bits) / 8);
                l->dirty = p;
                l->dirty_bits = bits;
        }
        l->dirty[page / 8] |= (uint8_t) (1u << (page % 8));
}

static bool listing_page_is_dirty(const Listing *l, size_t page) {
        if (l->tail_from != 0 && page >= l->tail_from)
                return true;
        return page < l->dirty_bits && (l->dirty[page / 8] & (1u << (page % 8)));
}

static void listing_clear(Listing *l) {
        l->tail_from = 0;
        l->index_dirty = false;
        if (l->dirty)
                memset(l->dirty, 0, l->dirty_bits / 8);
}

static void listing_mark_all(Listing *l) {
        listing_mark_tail(l, 1);
}

static int item_compare(prakat_usec_t published, const char *id, const Item *item) {
        if (published != item->published)
                return published < item->published ? -1 : 1;
        return strcmp(id, item->id);
}

/* First position whose item sorts at or after (published, id). */
static size_t website_lower_bound(Website *w, prakat_usec_t published, const char *id) {
        size_t lo = 0, hi = w->n_items;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (item_compare(published, id, w->items[mid]) > 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* Position of the listed item `id`, found through its publication time; -1 when not listed. */
static ssize_t website_find_item(Website *w, prakat_usec_t published, const char *id) {
        size_t pos = website_lower_bound(w, published, id);
        if (pos < w->n_items && strcmp(w->items[pos]->id, id) == 0)
                return (ssize_t) pos;
        /* The state file and memory disagree (should not happen): fall back to a scan. */
        for (size_t i = 0; i < w->n_items; i++)
                if (strcmp(w->items[i]->id, id) == 0)
                        return (ssize_t) i;
        return -1;
}

/* Position of item `pos` among its category's items. */
/* The place of item `pos` (in the array and counted in its category) among its category's items;
 * counted from the nearer end, since new items mostly go last. */
static size_t website_category_position(Website *w, size_t pos) {
        uint32_t category = w->items[pos]->category;
        size_t n = 0;
        if (pos < w->n_items / 2) {
                for (size_t i = 0; i < pos; i++)
                        n += w->items[i]->category == category;
                return n;
        }
        for (size_t i = pos + 1; i < w->n_items; i++)
                n += w->items[i]->category == category;
        return w->categories[category].n_items - 1 - n;
}

/* An item was inserted at or removed from `pos`: every later page shifts. Call while it is in the array. */
static void website_mark_shift(Website *w, size_t pos) {
        Category *c = &w->categories[w->items[pos]->category];
        listing_mark_tail(&w->site, pos / w->per_page + 1);
        listing_mark_tail(&c->listing, website_category_position(w, pos) / w->per_page + 1);
        w->feed_dirty = true;
        size_t chunk = (pos + 1) / SITEMAP_CHUNK + 1;
        if (w->sitemap_tail_from == 0 || chunk < w->sitemap_tail_from)
                w->sitemap_tail_from = chunk;
        w->sitemap_index_dirty = true;
}

/* Item `pos` changed its look in listings only (expiry): just the pages that show it. */
static void website_mark_item(Website *w, size_t pos) {
        Category *c = &w->categories[w->items[pos]->category];
        listing_mark_page(&w->site, pos / w->per_page + 1);
        listing_mark_page(&c->listing, website_category_position(w, pos) / w->per_page + 1);
}

static void website_mark_everything(Website *w) {
        listing_mark_all(&w->site);
        for (size_t i = 0; i < w->n_categories; i++)
                listing_mark_all(&w->categories[i].listing);
        w->feed_dirty = true;
        w->sitemap_tail_from = 1;
        w->sitemap_index_dirty = true;
}

/* Index of the category `name` belongs to, created when new; -ENOMEM on failure. */
static int website_category_get(Website *w, const char *name, uint32_t *ret) {
        char slug[80];
        category_make_slug(name, slug);
        for (size_t i = 0; i < w->n_categories; i++)
                if (strcmp(w->categories[i].slug, slug) == 0) {
                        *ret = (uint32_t) i;
                        return 0;
                }
        Category *p = realloc(w->categories, (w->n_categories + 1) * sizeof(Category));
        if (!p)
                return -ENOMEM;
        w->categories = p;
        Category *c = &p[w->n_categories];
        *c = (Category) {.name = strdup(name)};
        if (!c->name)
                return -ENOMEM;
        memcpy(c->slug, slug, sizeof(slug));
        *ret = (uint32_t) w->n_categories++;
        return 0;
}

static Item *item_new(const ItemRecord *rec, uint32_t category) {
        size_t n = strlen(rec->id);
        Item *item = malloc(sizeof(Item) + n + 1);
        if (!item)
                return NULL;
        item->published = rec->published;
        item->updated = rec->updated;
        item->expires = rec->expires;
        item->category = category;
        item->expiry_shown = rec->expiry_shown;
        memcpy(item->id, rec->id, n + 1);
        return item;
}

static int website_items_reserve(Website *w, size_t extra) {
        if (w->n_items + extra <= w->items_allocated)
                return 0;
        size_t want = w->items_allocated ? w->items_allocated : 64;
        while (want < w->n_items + extra)
                want = want + want / 2;
        Item **p = realloc(w->items, want * sizeof(Item *));
        if (!p)
                return -ENOMEM;
        w->items = p;
        w->items_allocated = want;
        return 0;
}

/* Adds a listed item to memory in order and marks what it shifts. */
static int website_insert_item(Website *w, const ItemRecord *rec) {
        uint32_t category;
        int r = website_category_get(w, rec->category, &category);
        if (r < 0)
                return r;
        if (website_items_reserve(w, 1) < 0)
                return -ENOMEM;
        Item *item = item_new(rec, category);
        if (!item)
                return -ENOMEM;
        size_t pos = website_lower_bound(w, rec->published, rec->id);
        memmove(w->items + pos + 1, w->items + pos, (w->n_items - pos) * sizeof(Item *));
        w->items[pos] = item;
        w->n_items++;
        w->categories[category].n_items++;
        website_mark_shift(w, pos);
        return 0;
}

static void website_remove_item(Website *w, size_t pos) {
        Item *item = w->items[pos];
        website_mark_shift(w, pos);
        w->categories[item->category].n_items--;
        memmove(w->items + pos, w->items + pos + 1, (w->n_items - pos - 1) * sizeof(Item *));
        w->n_items--;
        free(item);
}

/* ------------------------------------------------------------------------------------------------ */
/* Page pieces shared by every HTML page */

typedef struct PageHead {
        const char *title;       /* user text */
        const char *canonical;   /* absolute URL */
        const char *root;        /* relative way back to the site root: "", "../", ... */
        const char *description; /* or NULL */
        const char *og_type;     /* "article" or "website" */
        const char *og_image;    /* absolute URL or NULL */
        prakat_usec_t published; /* article:published_time, 0 = none */
        bool noindex;
} PageHead;

static void website_date(Website *w, prakat_usec_t usec, prakat_date_style style, char *buffer, size_t size) {
        if (w->host->format_date(w->host, usec, style, buffer, size) < 0)
                buffer[0] = 0;
}

static const char *website_site_name(Website *w) {
        return w->office_name[0] ? w->office_name : w->site_title;
}

static void buf_put_meta(PluginBuf *b, const char *attribute, const char *name, const char *content) {
        plugin_buf_printf(b, "<meta %s=\"%s\" content=\"", attribute, name);
        buf_put_text(b, content);
        plugin_buf_puts(b, "\">\n");
}

static void website_render_head(Website *w, PluginBuf *b, const PageHead *h) {
        plugin_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"th\">\n<head>\n<meta charset=\"utf-8\">\n"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
        buf_put_text(b, h->title);
        if (strcmp(h->title, w->site_title) != 0) {
                plugin_buf_puts(b, " – ");
                buf_put_text(b, w->site_title);
        }
        plugin_buf_puts(b, "</title>\n<link rel=\"canonical\" href=\"");
        buf_put_text(b, h->canonical);
        plugin_buf_printf(b, "\">\n<link rel=\"stylesheet\" href=\"%sstyle.css\">\n", h->root);
        plugin_buf_puts(b, "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"");
        buf_put_text(b, w->site_title);
        plugin_buf_printf(b, "\" href=\"%sfeed.atom\">\n", h->root);
        if (h->noindex)
                plugin_buf_puts(b, "<meta name=\"robots\" content=\"noindex\">\n");
        if (h->description)
                buf_put_meta(b, "name", "description", h->description);
        buf_put_meta(b, "property", "og:title", h->title);
        if (h->description)
                buf_put_meta(b, "property", "og:description", h->description);
        buf_put_meta(b, "property", "og:url", h->canonical);
        buf_put_meta(b, "property", "og:type", h->og_type);
        buf_put_meta(b, "property", "og:site_name", website_site_name(w));
        buf_put_meta(b, "property", "og:locale", "th_TH");
        if (h->og_image)
                buf_put_meta(b, "property", "og:image", h->og_image);
        if (h->published) {
                char iso[64];
                website_date(w, h->published, PRAKAT_DATE_ISO_LOCAL, iso, sizeof(iso));
                buf_put_meta(b, "property", "article:published_time", iso);
        }
        plugin_buf_printf(b, "</head>\n<body>\n<header class=\"site\"><a class=\"home\" href=\"%sindex.html\">", h->root);
        buf_put_text(b, w->site_title);
        plugin_buf_puts(b, "</a>");
        if (w->office_name[0]) {
                plugin_buf_puts(b, "<span class=\"office\">");
                buf_put_text(b, w->office_name);
                plugin_buf_puts(b, "</span>");
        }
        plugin_buf_puts(b, "</header>\n<main>\n");
}

static void website_render_foot(Website *w, PluginBuf *b, const char *root) {
        plugin_buf_puts(b, "</main>\n<footer>");
        if (w->office_name[0]) {
                buf_put_text(b, w->office_name);
                plugin_buf_puts(b, " · ");
        }
        plugin_buf_printf(b, "<a href=\"%sindex.html\">หน้าแรก</a> · <a href=\"%sfeed.atom\">ฟีดข่าว (Atom)</a>"
                      "</footer>\n</body>\n</html>\n",
                   root, root);
}

static char *website_article_url(Website *w, const char *id) {
        char *s = NULL;
        return asprintf(&s, "%s/a/%s.html", w->base_url, id) < 0 ? NULL : s;
}

static void buf_put_category_link(PluginBuf *b, const Category *c, const char *root) {
        plugin_buf_printf(b, "<a class=\"category\" href=\"%scategory/", root);
        buf_put_text(b, c->slug);
        plugin_buf_puts(b, "/index.html\">");
        buf_put_text(b, c->name);
        plugin_buf_puts(b, "</a>");
}

static const char *priority_label(int priority) {
        return priority == PRAKAT_PRIORITY_EMERGENCY ? "<span class=\"badge emergency\">ฉุกเฉิน</span> "
               : priority == PRAKAT_PRIORITY_URGENT  ? "<span class=\"badge urgent\">ด่วน</span> "
                                                     : "";
}

static void buf_put_time(Website *w, PluginBuf *b, prakat_usec_t usec, prakat_date_style style) {
        char iso[64], text[128];
        website_date(w, usec, PRAKAT_DATE_ISO_LOCAL, iso, sizeof(iso));
        website_date(w, usec, style, text, sizeof(text));
        plugin_buf_puts(b, "<time datetime=\"");
        buf_put_text(b, iso);
        plugin_buf_puts(b, "\">");
        buf_put_text(b, text);
        plugin_buf_puts(b, "</time>");
}

static void website_put_expired_banner(Website *w, PluginBuf *b, prakat_usec_t expires) {
        plugin_buf_puts(b, "<p class=\"banner expired\">หมดอายุแล้ว / This announcement has expired (");
        buf_put_time(w, b, expires, PRAKAT_DATE_THAI_LONG);
        plugin_buf_puts(b, ")</p>\n");
}

/* ------------------------------------------------------------------------------------------------ */
/* Article page */

/* Paragraphs split on blank lines; single line breaks become <br>. */
static void buf_put_body(PluginBuf *b, const char *body) {
        bool open = false;
        for (const char *line = body ? body : ""; *line;) {
                const char *end = strchrnul(line, '\n');
                size_t n = (size_t) (end - line);
                while (n > 0 && strchr(" \t\r", line[n - 1]))
                        n--;
                if (n == 0) {
                        if (open)
                                plugin_buf_puts(b, "</p>\n");
                        open = false;
                } else {
                        plugin_buf_puts(b, open ? "<br>\n" : "<p>");
                        buf_put_text_n(b, line, n);
                        open = true;
                }
                line = *end ? end + 1 : end;
        }
        if (open)
                plugin_buf_puts(b, "</p>\n");
}

static void format_size(uint64_t size, char buffer[static 32]) {
        if (size < 1024)
                snprintf(buffer, 32, "%" PRIu64 " B", size);
        else if (size < 1024 * 1024)
                snprintf(buffer, 32, "%.1f KB", (double) size / 1024);
        else
                snprintf(buffer, 32, "%.1f MB", (double) size / (1024 * 1024));
}

/* Ids and safe names hold only URL-safe characters; they are escaped all the same. */
static void buf_put_attachment_href(PluginBuf *b, const char *id, const char *name) {
        plugin_buf_puts(b, "../files/");
        buf_put_text(b, id);
        plugin_buf_puts(b, "/");
        buf_put_text(b, name);
}

static void website_render_attachments(Website *w, PluginBuf *b, const prakat_announcement *a, char *const *names) {
        for (size_t i = 0; i < a->n_attachments; i++) {
                if (!extension_is_inline_image(safe_name_extension(names[i])))
                        continue;
                plugin_buf_puts(b, "<figure><img loading=\"lazy\" src=\"");
                buf_put_attachment_href(b, a->id, names[i]);
                plugin_buf_puts(b, "\" alt=\"");
                buf_put_text(b, a->attachments[i].name);
                plugin_buf_puts(b, "\"></figure>\n");
        }
        bool list_open = false;
        for (size_t i = 0; i < a->n_attachments; i++) {
                if (extension_is_inline_image(safe_name_extension(names[i])))
                        continue;
                char size[32];
                format_size(a->attachments[i].size, size);
                if (!list_open)
                        plugin_buf_puts(b, "<h2>ไฟล์แนบ</h2>\n<ul class=\"files\">\n");
                list_open = true;
                plugin_buf_puts(b, "<li><a href=\"");
                buf_put_attachment_href(b, a->id, names[i]);
                plugin_buf_puts(b, "\" download>");
                buf_put_text(b, a->attachments[i].name);
                plugin_buf_printf(b, "</a> <span class=\"size\">(%s)</span></li>\n", size);
        }
        if (list_open)
                plugin_buf_puts(b, "</ul>\n");
}

/*
 * The article page.  When it has not expired yet, EXPIRY_MARKER marks where the banner
 * goes, so that the expiry timer can put it in without the announcement at hand.
 */
static void website_render_article(Website *w, const prakat_announcement *a, const ItemRecord *rec,
                                   char *const *names, bool expired, PluginBuf *b) {
        _cleanup_free_ char *url = website_article_url(w, a->id);
        _cleanup_free_ char *image = NULL;
        if (rec->image && asprintf(&image, "%s/%s", w->base_url, rec->image) < 0)
                image = NULL;
        uint32_t category;
        const Category *c = website_category_get(w, rec->category, &category) == 0 ? &w->categories[category] : NULL;

        PageHead head = {
                .title = rec->title,
                .canonical = url ? url : "",
                .root = "../",
                .description = rec->summary[0] ? rec->summary : NULL,
                .og_type = "article",
                .og_image = image,
                .published = rec->published,
        };
        website_render_head(w, b, &head);
        plugin_buf_puts(b, "<article>\n");
        if (expired)
                website_put_expired_banner(w, b, rec->expires);
        else if (rec->expires)
                plugin_buf_puts(b, EXPIRY_MARKER "\n");
        plugin_buf_printf(b, "<h1>%s", priority_label(rec->priority));
        buf_put_text(b, rec->title);
        plugin_buf_puts(b, "</h1>\n<p class=\"meta\">");
        buf_put_time(w, b, rec->published, PRAKAT_DATE_THAI_LONG);
        if (c) {
                plugin_buf_puts(b, " · หมวด ");
                buf_put_category_link(b, c, "../");
        }
        if (a->author && a->author[0]) {
                plugin_buf_puts(b, " · โดย <span class=\"author\">");
                buf_put_text(b, a->author);
                plugin_buf_puts(b, "</span>");
        }
        plugin_buf_puts(b, "</p>\n<div class=\"body\">\n");
        buf_put_body(b, a->body);
        plugin_buf_puts(b, "</div>\n");
        website_render_attachments(w, b, a, names);
        plugin_buf_puts(b, "</article>\n<nav class=\"back\"><a href=\"../index.html\">← ประกาศทั้งหมด</a>");
        if (c) {
                plugin_buf_puts(b, " ");
                buf_put_category_link(b, c, "../");
        }
        plugin_buf_puts(b, "</nav>\n");
        website_render_foot(w, b, "../");
}

/* ------------------------------------------------------------------------------------------------ */
/* Notice page for a withdrawn or replaced item */

typedef struct Notice {
        const char *id;
        const char *title;
        const char *reason;        /* or NULL */
        prakat_usec_t when;
        const char *new_id;        /* replaced: the item that replaces it */
        const char *new_title;
} Notice;

static void website_render_notice(Website *w, const Notice *n, PluginBuf *b) {
        _cleanup_free_ char *url = website_article_url(w, n->new_id ? n->new_id : n->id);
        PageHead head = {
                .title = n->title,
                .canonical = url ? url : "",
                .root = "../",
                .og_type = "article",
                .noindex = true,
        };
        website_render_head(w, b, &head);
        plugin_buf_puts(b, "<article class=\"notice\">\n");
        if (n->new_id)
                plugin_buf_puts(b, "<p class=\"banner updated\">มีฉบับปรับปรุง / An updated version of this announcement "
                            "is available</p>\n");
        else
                plugin_buf_puts(b, "<p class=\"banner withdrawn\">ประกาศนี้ถูกยกเลิกแล้ว / This announcement was "
                            "withdrawn</p>\n");
        plugin_buf_puts(b, "<h1>");
        buf_put_text(b, n->title);
        plugin_buf_puts(b, "</h1>\n<p class=\"meta\">");
        plugin_buf_puts(b, n->new_id ? "ปรับปรุงเมื่อ / Updated " : "ยกเลิกเมื่อ / Withdrawn ");
        buf_put_time(w, b, n->when, PRAKAT_DATE_THAI_LONG);
        plugin_buf_puts(b, "</p>\n");
        if (n->reason && n->reason[0]) {
                plugin_buf_puts(b, "<div class=\"reason\"><p>เหตุผล / Reason:</p>\n");
                buf_put_body(b, n->reason);
                plugin_buf_puts(b, "</div>\n");
        }
        if (n->new_id) {
                plugin_buf_puts(b, "<p class=\"updated-link\"><a href=\"");
                buf_put_text(b, n->new_id);
                plugin_buf_puts(b, ".html\">อ่านฉบับปรับปรุง / Read the updated version: ");
                buf_put_text(b, n->new_title ? n->new_title : n->new_id);
                plugin_buf_puts(b, "</a></p>\n");
        }
        plugin_buf_puts(b, "</article>\n<nav class=\"back\"><a href=\"../index.html\">← ประกาศทั้งหมด</a></nav>\n");
        website_render_foot(w, b, "../");
}

/* ------------------------------------------------------------------------------------------------ */
/* Listing pages: index.html and page/N.html, for the site and for each category */

typedef struct ListingView {
        const char *dir;         /* output-relative, "" or "category/SLUG/" */
        const char *up;          /* from that dir back to the root: "" or "../../" */
        const char *heading;     /* user text */
        const Category *category; /* NULL for the whole site */
        Listing *listing;
        size_t *members; /* global positions of the listing's items, oldest first */
        size_t n;
} ListingView;

static void website_render_listing_item(Website *w, PluginBuf *b, const Item *item, const char *root,
                                        prakat_usec_t now) {
        ItemRecord rec = {};
        bool have = website_read_record(w, item->id, &rec) == 0;
        const Category *c = &w->categories[item->category];
        bool expired = item->expires && now >= item->expires;

        plugin_buf_printf(b, "<li%s>%s<a class=\"title\" href=\"%sa/", expired ? " class=\"expired\"" : "",
                   have ? priority_label(rec.priority) : "", root);
        buf_put_text(b, item->id);
        plugin_buf_puts(b, ".html\">");
        buf_put_text(b, have ? rec.title : item->id);
        plugin_buf_puts(b, "</a>");
        if (expired)
                plugin_buf_puts(b, " <span class=\"badge expired\">หมดอายุ</span>");
        plugin_buf_puts(b, "\n<div class=\"meta\">");
        buf_put_time(w, b, item->published, PRAKAT_DATE_THAI_LONG_DATE);
        plugin_buf_puts(b, " · ");
        buf_put_category_link(b, c, root);
        plugin_buf_puts(b, "</div>\n");
        if (have && rec.summary && rec.summary[0]) {
                plugin_buf_puts(b, "<p class=\"summary\">");
                buf_put_text(b, rec.summary);
                plugin_buf_puts(b, "</p>\n");
        }
        plugin_buf_puts(b, "</li>\n");
        item_record_done(&rec);
}

/* Items members[from..to) newest first. */
static void website_render_items(Website *w, PluginBuf *b, const ListingView *v, size_t from, size_t to,
                                 const char *root) {
        prakat_usec_t now = w->host->now(w->host);
        if (from >= to) {
                plugin_buf_puts(b, "<p class=\"empty\">ยังไม่มีประกาศในหน้านี้</p>\n");
                return;
        }
        plugin_buf_puts(b, "<ul class=\"list\">\n");
        for (size_t i = to; i > from; i--)
                website_render_listing_item(w, b, w->items[v->members[i - 1]], root, now);
        plugin_buf_puts(b, "</ul>\n");
}

static char *website_listing_url(Website *w, const ListingView *v, size_t page) {
        char *s = NULL;
        int r = page == 0 ? asprintf(&s, "%s/%s", w->base_url, v->dir)
                          : asprintf(&s, "%s/%spage/%zu.html", w->base_url, v->dir, page);
        return r < 0 ? NULL : s;
}

static void website_render_listing_heading(PluginBuf *b, const ListingView *v, size_t page) {
        plugin_buf_puts(b, "<h1>");
        if (v->category)
                plugin_buf_puts(b, "หมวด ");
        buf_put_text(b, v->heading);
        if (page > 0)
                plugin_buf_printf(b, " <span class=\"page\">(หน้า %zu)</span>", page);
        plugin_buf_puts(b, "</h1>\n");
}

/* The <title> of a listing page: the site title, "หมวด X", "คลังประกาศ หน้า N", "หมวด X หน้า N". */
static char *website_listing_title(const ListingView *v, size_t page) {
        char *s = NULL;
        int r;
        if (v->category)
                r = page ? asprintf(&s, "หมวด %s หน้า %zu", v->heading, page) : asprintf(&s, "หมวด %s", v->heading);
        else
                r = page ? asprintf(&s, "คลังประกาศ หน้า %zu", page) : asprintf(&s, "%s", v->heading);
        return r < 0 ? NULL : s;
}

/* page/N.html: items (N-1)*per_page+1 .. N*per_page of the listing, shown newest first. */
static int website_render_archive_page(Website *w, const ListingView *v, size_t page) {
        size_t pp = w->per_page, pages = pages_for(v->n, w->per_page);
        size_t from = (page - 1) * pp, to = from + pp < v->n ? from + pp : v->n;
        _cleanup_free_ char *url = website_listing_url(w, v, page);
        _cleanup_free_ char *title = website_listing_title(v, page);
        _cleanup_free_ char *root = NULL, *path = NULL;
        if (!url || !title || asprintf(&root, "../%s", v->up) < 0 ||
            asprintf(&path, "%s/%spage/%zu.html", w->output, v->dir, page) < 0)
                return -ENOMEM;
        PluginBuf b = {};
        PageHead head = {.title = title, .canonical = url, .root = root, .og_type = "website"};
        website_render_head(w, &b, &head);
        website_render_listing_heading(&b, v, page);
        website_render_items(w, &b, v, from, to, root);

        plugin_buf_puts(&b, "<nav class=\"pager\">");
        if (page < pages)
                plugin_buf_printf(&b, "<a rel=\"prev\" href=\"%zu.html\">← ใหม่กว่า</a>", page + 1);
        else
                plugin_buf_puts(&b, "<a href=\"../index.html\">← ล่าสุด</a>");
        if (page > 1)
                plugin_buf_printf(&b, " <a rel=\"next\" href=\"%zu.html\">เก่ากว่า →</a>", page - 1);
        plugin_buf_puts(&b, "</nav>\n");
        website_render_foot(w, &b, root);

        int r = website_write_buf(w, path, &b);
        plugin_buf_free(&b);
        return r;
}

/* index.html: the newest per_page items, a link to older ones, and the list of archive pages. */
static int website_render_listing_index(Website *w, const ListingView *v) {
        size_t pp = w->per_page, n = v->n;
        size_t from = n > pp ? n - pp : 0;
        _cleanup_free_ char *url = website_listing_url(w, v, 0);
        _cleanup_free_ char *path = NULL;
        if (!url || asprintf(&path, "%s/%sindex.html", w->output, v->dir) < 0)
                return -ENOMEM;

        _cleanup_free_ char *title = website_listing_title(v, 0);
        if (!title)
                return -ENOMEM;
        PluginBuf b = {};
        PageHead head = {.title = title, .canonical = url, .root = v->up, .og_type = "website"};
        website_render_head(w, &b, &head);
        website_render_listing_heading(&b, v, 0);
        website_render_items(w, &b, v, from, n, v->up);

        if (from > 0) {
                size_t older = (from - 1) / pp + 1;
                plugin_buf_printf(&b, "<nav class=\"pager\"><a rel=\"next\" href=\"page/%zu.html\">เก่ากว่า →</a></nav>\n",
                           older);
                /* Pages with items only; the empty last page is reachable from the one before it. */
                size_t full = (n + pp - 1) / pp;
                plugin_buf_puts(&b, "<nav class=\"archive\"><h2>ประกาศย้อนหลัง</h2>\n<p>");
                for (size_t p = full; p >= 1; p--)
                        plugin_buf_printf(&b, "<a href=\"page/%zu.html\">%zu</a>%s", p, p, p > 1 ? " " : "");
                plugin_buf_puts(&b, "</p></nav>\n");
        }
        website_render_foot(w, &b, v->up);

        int r = website_write_buf(w, path, &b);
        plugin_buf_free(&b);
        return r;
}

/* Renders the dirty pages of one listing and removes pages that no longer have a place. */
static int website_render_listing(Website *w, const ListingView *v) {
        Listing *l = v->listing;
        size_t pages = pages_for(v->n, w->per_page);
        for (size_t page = 1; page <= pages; page++) {
                if (!listing_page_is_dirty(l, page))
                        continue;
                int r = website_render_archive_page(w, v, page);
                if (r < 0)
                        return r;
        }
        for (size_t page = pages + 1; page <= l->pages_on_disk; page++) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%spage/%zu.html", w->output, v->dir, page) < 0)
                        return -ENOMEM;
                int r = website_unlink(w, path);
                if (r < 0)
                        return r;
        }
        if (l->index_dirty) {
                int r = website_render_listing_index(w, v);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool listing_is_dirty(const Listing *l) {
        return l->index_dirty || l->tail_from != 0;
}

static int website_render_site_listing(Website *w) {
        if (!listing_is_dirty(&w->site))
                return 0;
        _cleanup_free_ size_t *members = malloc((w->n_items + 1) * sizeof(size_t));
        if (!members)
                return -ENOMEM;
        for (size_t i = 0; i < w->n_items; i++)
                members[i] = i;
        ListingView v = {
                .dir = "",
                .up = "",
                .heading = w->site_title,
                .listing = &w->site,
                .members = members,
                .n = w->n_items,
        };
        return website_render_listing(w, &v);
}

static int website_render_category_listing(Website *w, uint32_t index, size_t *members) {
        Category *c = &w->categories[index];
        if (!listing_is_dirty(&c->listing))
                return 0;
        size_t n = 0;
        for (size_t i = 0; i < w->n_items; i++)
                if (w->items[i]->category == index)
                        members[n++] = i;
        char dir[128];
        snprintf(dir, sizeof(dir), "category/%s/", c->slug);
        ListingView v = {
                .dir = dir,
                .up = "../../",
                .heading = c->name,
                .category = c,
                .listing = &c->listing,
                .members = members,
                .n = n,
        };
        return website_render_listing(w, &v);
}

static int website_render_listings(Website *w) {
        int r = website_render_site_listing(w);
        if (r < 0)
                return r;
        _cleanup_free_ size_t *members = malloc((w->n_items + 1) * sizeof(size_t));
        if (!members)
                return -ENOMEM;
        for (uint32_t i = 0; i < w->n_categories; i++) {
                r = website_render_category_listing(w, i, members);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Atom feed and sitemaps */

static void buf_put_xml_element(PluginBuf *b, const char *name, const char *text) {
        plugin_buf_printf(b, "<%s>", name);
        buf_put_text(b, text);
        plugin_buf_printf(b, "</%s>\n", name);
}

static void website_render_feed_entry(Website *w, PluginBuf *b, const Item *item) {
        ItemRecord rec = {};
        bool have = website_read_record(w, item->id, &rec) == 0;
        _cleanup_free_ char *url = website_article_url(w, item->id);
        char published[64], updated[64];
        website_date(w, item->published, PRAKAT_DATE_ISO_UTC, published, sizeof(published));
        website_date(w, item->updated > item->published ? item->updated : item->published, PRAKAT_DATE_ISO_UTC,
                     updated, sizeof(updated));

        plugin_buf_puts(b, "<entry>\n");
        buf_put_xml_element(b, "id", url);
        buf_put_xml_element(b, "title", have ? rec.title : item->id);
        plugin_buf_puts(b, "<link rel=\"alternate\" type=\"text/html\" href=\"");
        buf_put_text(b, url);
        plugin_buf_puts(b, "\"/>\n");
        buf_put_xml_element(b, "published", published);
        buf_put_xml_element(b, "updated", updated);
        plugin_buf_puts(b, "<author><name>");
        buf_put_text(b, have && rec.author && rec.author[0] ? rec.author : website_site_name(w));
        plugin_buf_puts(b, "</name></author>\n<category term=\"");
        buf_put_text(b, w->categories[item->category].name);
        plugin_buf_puts(b, "\"/>\n");
        if (have && rec.summary && rec.summary[0])
                buf_put_xml_element(b, "summary", rec.summary);
        plugin_buf_puts(b, "</entry>\n");
        item_record_done(&rec);
}

static int website_render_feed(Website *w) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/feed.atom", w->output) < 0)
                return -ENOMEM;
        char now[64];
        website_date(w, w->host->now(w->host), PRAKAT_DATE_ISO_UTC, now, sizeof(now));

        PluginBuf b = {};
        plugin_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                     "<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"th\">\n<id>");
        buf_put_text(&b, w->base_url);
        plugin_buf_puts(&b, "/</id>\n");
        buf_put_xml_element(&b, "title", w->site_title);
        if (w->office_name[0])
                buf_put_xml_element(&b, "subtitle", w->office_name);
        buf_put_xml_element(&b, "updated", now);
        plugin_buf_puts(&b, "<link rel=\"self\" type=\"application/atom+xml\" href=\"");
        buf_put_text(&b, w->base_url);
        plugin_buf_puts(&b, "/feed.atom\"/>\n<link rel=\"alternate\" type=\"text/html\" href=\"");
        buf_put_text(&b, w->base_url);
        plugin_buf_puts(&b, "/\"/>\n<author><name>");
        buf_put_text(&b, website_site_name(w));
        plugin_buf_puts(&b, "</name></author>\n<generator version=\"" WEBSITE_VERSION "\">prakat</generator>\n");
        size_t shown = 0;
        for (size_t i = w->n_items; i > 0 && shown < w->feed_items; i--, shown++)
                website_render_feed_entry(w, &b, w->items[i - 1]);
        plugin_buf_puts(&b, "</feed>\n");

        int r = website_write_buf(w, path, &b);
        plugin_buf_free(&b);
        return r;
}

/* The newest `updated` among the items of sitemap chunk `chunk` (1-based), 0 when none. */
static prakat_usec_t website_chunk_lastmod(Website *w, size_t chunk) {
        prakat_usec_t newest = 0;
        size_t first = (chunk - 1) * SITEMAP_CHUNK, end = chunk * SITEMAP_CHUNK;
        for (size_t slot = first ? first : 1; slot < end && slot <= w->n_items; slot++) {
                const Item *item = w->items[slot - 1];
                prakat_usec_t t = item->updated > item->published ? item->updated : item->published;
                if (t > newest)
                        newest = t;
        }
        return newest;
}

static int website_render_sitemap_chunk(Website *w, size_t chunk) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/sitemap-%zu.xml", w->output, chunk) < 0)
                return -ENOMEM;
        PluginBuf b = {};
        plugin_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n");
        size_t first = (chunk - 1) * SITEMAP_CHUNK, end = chunk * SITEMAP_CHUNK;
        for (size_t slot = first; slot < end && slot <= w->n_items; slot++) {
                /* index.html has no lastmod, so that chunk 1 does not change with every publish. */
                if (slot == 0) {
                        plugin_buf_puts(&b, "<url><loc>");
                        buf_put_text(&b, w->base_url);
                        plugin_buf_puts(&b, "/</loc></url>\n");
                        continue;
                }
                const Item *item = w->items[slot - 1];
                char lastmod[64];
                website_date(w, item->updated > item->published ? item->updated : item->published,
                             PRAKAT_DATE_ISO_UTC, lastmod, sizeof(lastmod));
                plugin_buf_puts(&b, "<url><loc>");
                buf_put_text(&b, w->base_url);
                plugin_buf_puts(&b, "/a/");
                buf_put_text(&b, item->id);
                plugin_buf_puts(&b, ".html</loc><lastmod>");
                buf_put_text(&b, lastmod);
                plugin_buf_puts(&b, "</lastmod></url>\n");
        }
        plugin_buf_puts(&b, "</urlset>\n");
        int r = website_write_buf(w, path, &b);
        plugin_buf_free(&b);
        return r;
}

static int website_render_sitemap_index(Website *w) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/sitemap.xml", w->output) < 0)
                return -ENOMEM;
        PluginBuf b = {};
        plugin_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n");
        size_t chunks = sitemap_chunks_for(w->n_items);
        for (size_t chunk = 1; chunk <= chunks; chunk++) {
                plugin_buf_puts(&b, "<sitemap><loc>");
                buf_put_text(&b, w->base_url);
                plugin_buf_printf(&b, "/sitemap-%zu.xml</loc>", chunk);
                prakat_usec_t lastmod = website_chunk_lastmod(w, chunk);
                if (lastmod) {
                        char iso[64];
                        website_date(w, lastmod, PRAKAT_DATE_ISO_UTC, iso, sizeof(iso));
                        plugin_buf_puts(&b, "<lastmod>");
                        buf_put_text(&b, iso);
                        plugin_buf_puts(&b, "</lastmod>");
                }
                plugin_buf_puts(&b, "</sitemap>\n");
        }
        plugin_buf_puts(&b, "</sitemapindex>\n");
        int r = website_write_buf(w, path, &b);
        plugin_buf_free(&b);
        return r;
}

static int website_render_sitemaps(Website *w) {
        size_t chunks = sitemap_chunks_for(w->n_items);
        for (size_t chunk = w->sitemap_tail_from; w->sitemap_tail_from && chunk <= chunks; chunk++) {
                int r = website_render_sitemap_chunk(w, chunk);
                if (r < 0)
                        return r;
        }
        for (size_t chunk = chunks + 1; chunk <= w->sitemap_chunks_on_disk; chunk++) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/sitemap-%zu.xml", w->output, chunk) < 0)
                        return -ENOMEM;
                int r = website_unlink(w, path);
                if (r < 0)
                        return r;
        }
        if (w->sitemap_index_dirty)
                return website_render_sitemap_index(w);
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* style.css */

static const char website_css[] =
        "/* prakat: written by the website channel; edits are overwritten. */\n"
        "*{box-sizing:border-box}\n"
        "html{-webkit-text-size-adjust:100%}\n"
        "body{margin:0 auto;max-width:42rem;padding:0 1rem 2rem;"
        "font-family:\"Sarabun\",\"Noto Sans Thai\",\"Leelawadee UI\",\"Tahoma\",sans-serif;"
        "font-size:1.0625rem;line-height:1.7;color:#1b1b1b;background:#fff;overflow-wrap:anywhere}\n"
        "a{color:#0b57a4}\n"
        "header.site{display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:baseline;padding:1rem 0;"
        "border-bottom:3px solid #0b57a4;margin-bottom:1rem}\n"
        "header.site .home{font-size:1.35rem;font-weight:700;text-decoration:none}\n"
        "header.site .office{color:#555}\n"
        "h1{font-size:1.5rem;line-height:1.4;margin:.5rem 0}\n"
        "h2{font-size:1.15rem}\n"
        ".meta{color:#555;font-size:.95rem}\n"
        ".list{list-style:none;padding:0;margin:0}\n"
        ".list li{padding:.75rem 0;border-bottom:1px solid #ddd}\n"
        ".list .title{font-weight:700;font-size:1.1rem}\n"
        ".list li.expired .title{color:#666}\n"
        ".summary{margin:.25rem 0 0}\n"
        ".badge{display:inline-block;font-size:.8rem;padding:0 .4rem;border-radius:.3rem;"
        "background:#eee;color:#333;vertical-align:middle}\n"
        ".badge.urgent{background:#fff0c2;color:#6b4a00}\n"
        ".badge.emergency{background:#b00020;color:#fff}\n"
        ".banner{padding:.6rem .8rem;border-radius:.3rem;font-weight:700}\n"
        ".banner.expired{background:#f1f1f1;color:#444}\n"
        ".banner.withdrawn{background:#fde2e1;color:#8a1c14}\n"
        ".banner.updated{background:#e3f0ff;color:#0b3d75}\n"
        "figure{margin:1rem 0}\n"
        "img{max-width:100%;height:auto}\n"
        ".files{padding-left:1.2rem}\n"
        ".size{color:#666;font-size:.9rem}\n"
        ".pager,.back{margin:1.5rem 0;display:flex;gap:1rem;justify-content:space-between}\n"
        ".archive p{line-height:2.2}\n"
        ".archive a{display:inline-block;min-width:2.2rem;text-align:center}\n"
        "footer{margin-top:2rem;padding-top:1rem;border-top:1px solid #ddd;color:#555;font-size:.9rem}\n"
        "@media (prefers-color-scheme:dark){body{background:#121212;color:#e8e8e8}a{color:#8ab4f8}"
        ".meta,header.site .office,footer,.size{color:#aaa}.list li{border-color:#333}"
        ".badge{background:#333;color:#ddd}.banner.expired{background:#2a2a2a;color:#ccc}}\n";

/* ------------------------------------------------------------------------------------------------ */
/* Flushing a batch */

static void pending_done(Pending *p) {
        free(p->id);
        free(p->link);
        for (size_t i = 0; i < p->n_attachment_urls; i++)
                free(p->attachment_urls[i]);
        free(p->attachment_urls);
        *p = (Pending) {};
}

static void website_on_flush(void *userdata);

/* Arms the flush timer to fire after `delay`, unless it is already armed to fire sooner. */
static void website_arm_flush(Website *w, prakat_usec_t delay) {
        prakat_usec_t deadline = w->host->now(w->host) + delay;
        if (w->flush_timer && w->flush_deadline <= deadline)
                return;
        w->host->timer_cancel(w->flush_timer);
        w->flush_timer = NULL;
        int r = w->host->timer_start(w->host, delay, website_on_flush, w, &w->flush_timer);
        if (r < 0) {
                w->flush_timer = NULL;
                w->host->log(w->host, PRAKAT_LOG_ERR, NULL, "Failed to start the website flush timer: %s",
                             strerror(-r));
                return;
        }
        w->flush_deadline = deadline;
}

/* Renders every dirty shared page once, then makes the batch durable. */
static int website_render_dirty(Website *w) {
        int r = website_render_listings(w);
        if (r == 0 && w->feed_dirty)
                r = website_render_feed(w);
        if (r == 0)
                r = website_render_sitemaps(w);
        if (r == -ENOMEM && !w->error[0])
                website_set_error(w, "Failed to render the website: %s", strerror(ENOMEM));
        int k = website_sync(w);
        if (r < 0)
                return r;
        if (k < 0)
                return k;

        listing_clear(&w->site);
        w->site.pages_on_disk = pages_for(w->n_items, w->per_page);
        for (size_t i = 0; i < w->n_categories; i++) {
                Category *c = &w->categories[i];
                listing_clear(&c->listing);
                c->listing.pages_on_disk = pages_for(c->n_items, w->per_page);
        }
        w->feed_dirty = false;
        w->sitemap_tail_from = 0;
        w->sitemap_index_dirty = false;
        w->sitemap_chunks_on_disk = sitemap_chunks_for(w->n_items);
        return 0;
}

/*
 * Finishes every job of a batch taken off the instance (job_finish() may start the next job,
 * which may call publish() on us again); `message` explains a failure.
 */
static void website_finish_batch(Website *w, Pending *pending, size_t n, int error, const char *message,
                                 const char *message_th) {
        for (size_t i = 0; i < n; i++) {
                Pending *p = &pending[i];
                prakat_result result = {
                        .outcome = PRAKAT_OUTCOME_DONE,
                        .message = "published on the website",
                        .message_th = "เผยแพร่บนเว็บไซต์แล้ว",
                        .link = p->link,
                        .remote_id = p->id,
                        .attachment_urls = (const char *const *) p->attachment_urls,
                        .n_attachment_urls = p->n_attachment_urls,
                };
                if (error < 0)
                        result = (prakat_result) {
                                .outcome = PRAKAT_OUTCOME_RETRY,
                                .message = message,
                                .message_th = message_th,
                        };
                w->host->job_finish(w->host, p->job, &result);
                pending_done(p);
        }
        free(pending);
}

static void website_finish_pending(Website *w, int error) {
        Pending *pending = TAKE_PTR(w->pending);
        size_t n = w->n_pending;
        w->n_pending = 0;
        website_finish_batch(w, pending, n, error, w->error, "เขียนหน้าเว็บไม่สำเร็จ จะลองใหม่");
}

/*
 * After an upload round: its batch's jobs end with the round's outcome (a failure is retried by
 * the core; the files that did not reach the host stay in upload.c's list).  Jobs that came
 * meanwhile, or files left over, start the next round.
 */
static void website_on_uploaded(void *userdata, int error, const char *message) {
        Website *w = userdata;
        Pending *batch = TAKE_PTR(w->uploading);
        size_t n = w->n_uploading;
        w->n_uploading = 0;

        if (error < 0)
                w->host->log(w->host, PRAKAT_LOG_ERR, NULL, "Failed to upload the website: %s", message);
        website_finish_batch(w, batch, n, error, message, "อัปโหลดหน้าเว็บขึ้นโฮสต์ไม่สำเร็จ จะลองใหม่");
        if (w->n_pending > 0 || (error == 0 && upload_has_work(w->upload)))
                website_arm_flush(w, 0);
        else if (error < 0)
                website_arm_flush(w, RETRY_FLUSH_USEC);
}

/* The batch's jobs end only once its files are on the host too; one round at a time. */
static void website_start_upload(Website *w) {
        if (upload_is_busy(w->upload))
                return; /* website_on_uploaded() starts the next round */
        w->uploading = TAKE_PTR(w->pending);
        w->n_uploading = w->n_pending;
        w->n_pending = 0;
        int r = upload_run(w->upload, website_on_uploaded, w);
        if (r <= 0)
                website_on_uploaded(w, r, upload_last_error(w->upload));
}

static void website_on_flush(void *userdata) {
        Website *w = userdata;
        w->flush_timer = NULL; /* a fired timer frees itself */
        w->error[0] = 0;

        int r = website_render_dirty(w);
        record_cache_empty(w); /* the batch is rendered */
        if (r < 0) {
                w->host->log(w->host, PRAKAT_LOG_ERR, NULL, "%s; the website will be rendered again", w->error);
                /* The pages stay dirty; render them again even if no new job comes. */
        }
        if (r == 0 && w->upload) {
                website_start_upload(w);
                return;
        }
        website_finish_pending(w, r);
        if (r < 0)
                website_arm_flush(w, RETRY_FLUSH_USEC);
}

static int website_add_pending(Website *w, prakat_job *job, const char *id, char **urls, size_t n_urls) {
        Pending *p = realloc(w->pending, (w->n_pending + 1) * sizeof(Pending));
        if (!p)
                return -ENOMEM;
        w->pending = p;
        p = &w->pending[w->n_pending];
        *p = (Pending) {.job = job, .id = strdup(id), .link = website_article_url(w, id)};
        if (!p->id || !p->link) {
                pending_done(p);
                return -ENOMEM;
        }
        p->attachment_urls = urls;
        p->n_attachment_urls = n_urls;
        w->n_pending++;
        website_arm_flush(w, 0);
        return 0;
}

/* Ends a job at once, without waiting for the batch. */
static void website_finish_now(Website *w, prakat_job *job, prakat_outcome outcome, const char *message,
                               const char *message_th) {
        prakat_result result = {.outcome = outcome, .message = message, .message_th = message_th};
        w->host->job_finish(w->host, job, &result);
}

/* ------------------------------------------------------------------------------------------------ */
/* Expiry */

static void website_on_expiry(void *userdata);

static void website_arm_expiry(Website *w) {
        prakat_usec_t next = 0;
        for (size_t i = 0; i < w->n_items; i++) {
                const Item *item = w->items[i];
                if (item->expires && !item->expiry_shown && (next == 0 || item->expires < next))
                        next = item->expires;
        }
        if (w->expiry_timer && w->expiry_deadline == next)
                return;
        w->host->timer_cancel(w->expiry_timer);
        w->expiry_timer = NULL;
        if (next == 0)
                return;
        prakat_usec_t now = w->host->now(w->host);
        int r = w->host->timer_start(w->host, next > now ? next - now : 0, website_on_expiry, w, &w->expiry_timer);
        if (r < 0) {
                w->expiry_timer = NULL;
                w->host->log(w->host, PRAKAT_LOG_ERR, NULL, "Failed to start the expiry timer: %s", strerror(-r));
                return;
        }
        w->expiry_deadline = next;
}

/* Puts the banner into the article page where EXPIRY_MARKER is, and records that it did. */
static int website_expire_article(Website *w, Item *item) {
        _cleanup_free_ char *path = NULL, *page = NULL;
        if (asprintf(&path, "%s/a/%s.html", w->output, item->id) < 0)
                return -ENOMEM;
        int r = read_file(path, 64 * 1024 * 1024, &page, NULL);
        if (r < 0 && r != -ENOENT) {
                website_set_error(w, "Failed to read %s: %s", path, strerror(-r));
                return r;
        }
        /* The marker has a line of its own; the banner takes that line. */
        char *marker = page ? strstr(page, EXPIRY_MARKER "\n") : NULL;
        if (marker) {
                PluginBuf b = {};
                plugin_buf_put(&b, page, (size_t) (marker - page));
                website_put_expired_banner(w, &b, item->expires);
                plugin_buf_puts(&b, marker + strlen(EXPIRY_MARKER "\n"));
                r = website_write_buf(w, path, &b);
                plugin_buf_free(&b);
                if (r < 0)
                        return r;
        }

        ItemRecord rec = {};
        r = website_read_record(w, item->id, &rec);
        if (r == 0) {
                rec.expiry_shown = true;
                r = website_write_record(w, &rec);
                item_record_done(&rec);
        }
        if (r < 0 && r != -ENOENT && r != -EINVAL)
                return r;
        item->expiry_shown = true;
        return 0;
}

static void website_on_expiry(void *userdata) {
        Website *w = userdata;
        w->expiry_timer = NULL;
        w->expiry_deadline = 0;
        prakat_usec_t now = w->host->now(w->host);

        bool failed = false;
        for (size_t i = 0; i < w->n_items; i++) {
                Item *item = w->items[i];
                if (!item->expires || item->expiry_shown || item->expires > now)
                        continue;
                if (website_expire_article(w, item) < 0) {
                        w->host->log(w->host, PRAKAT_LOG_ERR, item->id, "%s; will try again", w->error);
                        failed = true;
                        break;
                }
                website_mark_item(w, i);
        }
        website_arm_flush(w, 0);
        if (!failed) {
                website_arm_expiry(w);
                return;
        }
        int r = w->host->timer_start(w->host, RETRY_FLUSH_USEC, website_on_expiry, w, &w->expiry_timer);
        if (r < 0)
                w->expiry_timer = NULL;
        else
                w->expiry_deadline = now + RETRY_FLUSH_USEC;
}

/* ------------------------------------------------------------------------------------------------ */
/* Publishing one item */

/* Copies the attachments into files/ID/ and returns their safe names; stale files of an earlier version go. */
/* The names the attachments get under files/ID/ (publish and preview alike); NULL when out of memory. */
static char **website_attachment_names(const prakat_announcement *a) {
        char **names = calloc(a->n_attachments + 1, sizeof(char *));
        for (size_t i = 0; names && i < a->n_attachments; i++)
                if (!(names[i] = attachment_safe_name(i + 1, a->attachments[i].name))) {
                        free_strings(names, a->n_attachments);
                        return NULL;
                }
        return names;
}

/* Copies the attachments into files/ID/ and removes any others there.  An item the site never had
 * (`fresh`) and without attachments has no such folder to look at: a crash between copying and
 * writing the record leaves one only for an announcement with attachments. */
static int website_copy_attachments(Website *w, const prakat_announcement *a, bool fresh, char ***ret_names) {
        _cleanup_free_ char *dir = NULL;
        if (asprintf(&dir, "%s/files/%s", w->output, a->id) < 0)
                return -ENOMEM;
        char **names = website_attachment_names(a);
        if (!names)
                return -ENOMEM;

        int r = 0;
        if (a->n_attachments > 0 && (r = website_mkdir_p(w, dir)) < 0)
                website_set_error(w, "Failed to create %s: %s", dir, strerror(-r));
        for (size_t i = 0; r == 0 && i < a->n_attachments; i++) {
                _cleanup_free_ char *to = NULL;
                if (asprintf(&to, "%s/%s", dir, names[i]) < 0) {
                        r = -ENOMEM;
                        break;
                }
                r = website_copy_file(w, a->attachments[i].path, to);
        }
        bool none_there = fresh && a->n_attachments == 0;
        if (r == 0 && !none_there)
                r = website_prune_dir(w, dir, names, a->n_attachments);
        if (r == 0 && !none_there && a->n_attachments == 0 && rmdir(dir) == 0)
                website_touch(w);
        if (r < 0) {
                if (!w->error[0])
                        website_set_error(w, "Failed to copy attachments into %s: %s", dir, strerror(-r));
                free_strings(names, a->n_attachments);
                return r;
        }
        *ret_names = names;
        return 0;
}

static char **website_attachment_urls(Website *w, const prakat_announcement *a, char *const *names) {
        char **urls = calloc(a->n_attachments + 1, sizeof(char *));
        for (size_t i = 0; urls && i < a->n_attachments; i++)
                if (asprintf(&urls[i], "%s/files/%s/%s", w->base_url, a->id, names[i]) < 0) {
                        urls[i] = NULL;
                        free_strings(urls, a->n_attachments);
                        return NULL;
                }
        return urls;
}

/* The state of an announcement as this site will list it. */
static int website_make_record(Website *w, const prakat_announcement *a, char *const *names, ItemRecord *ret) {
        prakat_usec_t now = w->host->now(w->host);
        ItemRecord r = {
                .state = ITEM_LISTED,
                .published = a->publish_at ? a->publish_at : a->received ? a->received : now,
                .expires = a->expires,
                .priority = (int) a->priority,
                .id = strdup(a->id),
                .category = strdup(a->category ? a->category : ""),
                .title = strdup(a->title ? a->title : a->id),
                .author = a->author && a->author[0] ? strdup(a->author) : NULL,
                .summary = make_summary(a->body, SUMMARY_CHARS),
        };
        r.updated = r.published;
        for (size_t i = 0; i < a->n_attachments && !r.image; i++)
                if (extension_is_inline_image(safe_name_extension(names[i])) &&
                    asprintf(&r.image, "files/%s/%s", a->id, names[i]) < 0)
                        r.image = NULL;
        if (!r.id || !r.category || !r.title || !r.summary || (a->author && a->author[0] && !r.author)) {
                item_record_done(&r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

/*
 * Writes a/ID.html.  `updated` stays the first publication time unless the page really
 * changed, so a crash-recovery retry does not show up as an edit in the feed.  `fresh`: the
 * site never had this item (no record), so nothing links to its page yet and it is written in place.
 */
static int website_write_article(Website *w, const prakat_announcement *a, ItemRecord *rec,
                                 const ItemRecord *old, bool fresh, char *const *names) {
        prakat_usec_t now = w->host->now(w->host);
        PluginBuf plain = {};
        website_render_article(w, a, rec, names, false, &plain);
        if (plain.failed) {
                plugin_buf_free(&plain);
                return -ENOMEM;
        }
        rec->hash = fnv1a64(plain.data, plain.size);
        if (old && old->state == ITEM_LISTED && old->published == rec->published)
                rec->updated = old->hash == rec->hash ? old->updated : now;

        bool expired = rec->expires && now >= rec->expires;
        rec->expiry_shown = expired;
        PluginBuf page = {};
        if (expired)
                website_render_article(w, a, rec, names, true, &page);

        _cleanup_free_ char *path = NULL;
        int r = -ENOMEM;
        if (asprintf(&path, "%s/a/%s.html", w->output, a->id) >= 0)
                r = (fresh ? website_write_new : website_write_buf)(w, path, expired ? &page : &plain);
        plugin_buf_free(&plain);
        plugin_buf_free(&page);
        return r;
}

/* Takes the item that has the state `old` out of memory, if it is listed. */
static void website_unlist(Website *w, const ItemRecord *old) {
        if (old->state != ITEM_LISTED)
                return;
        ssize_t pos = website_find_item(w, old->published, old->id);
        if (pos >= 0)
                website_remove_item(w, (size_t) pos);
}

static int website_withdraw(Website *w, const char *id, const char *fallback_title, const char *reason,
                            const char *new_id, const char *new_title);

static int website_publish_item(Website *w, const prakat_announcement *a, char ***ret_urls) {
        char **names = NULL;
        ItemRecord rec = {}, old = {};
        int k = website_read_record(w, a->id, &old);
        bool have_old = k == 0, fresh = k == -ENOENT;

        int r = website_copy_attachments(w, a, fresh, &names);
        if (r == 0)
                r = website_make_record(w, a, names, &rec);
        if (r == 0)
                r = website_write_article(w, a, &rec, have_old ? &old : NULL, fresh, names);
        if (r == 0)
                r = website_write_record(w, &rec);
        if (r == 0 && have_old)
                website_unlist(w, &old);
        if (r == 0)
                r = website_insert_item(w, &rec);
        if (r == 0 && a->replaces && strcmp(a->replaces, a->id) != 0)
                r = website_withdraw(w, a->replaces, NULL, NULL, a->id, rec.title);
        if (r == 0) {
                *ret_urls = website_attachment_urls(w, a, names);
                if (!*ret_urls)
                        r = -ENOMEM;
        }
        if (r == -ENOMEM && !w->error[0])
                website_set_error(w, "Failed to publish %s: %s", a->id, strerror(ENOMEM));
        free_strings(names, a->n_attachments);
        item_record_done(&rec);
        item_record_done(&old);
        return r;
}

/* ------------------------------------------------------------------------------------------------ */
/* Withdrawing an item (retract, or replaced by a newer one) */

static int website_remove_attachments(Website *w, const char *id) {
        _cleanup_free_ char *dir = NULL;
        if (asprintf(&dir, "%s/files/%s", w->output, id) < 0)
                return -ENOMEM;
        int r = website_prune_dir(w, dir, NULL, 0);
        if (r < 0) {
                website_set_error(w, "Failed to remove attachments in %s: %s", dir, strerror(-r));
                return r;
        }
        if (rmdir(dir) == 0)
                website_touch(w);
        return 0;
}

/*
 * Replaces a/ID.html by a notice, deletes the attachments and takes the item out of the
 * listings.  With `new_id` the notice links to the item that replaces it; an item this
 * site never had is then left alone.  A withdrawal keeps the time of the first one, so
 * that a retry renders the same notice.
 */
static int website_withdraw(Website *w, const char *id, const char *fallback_title, const char *reason,
                            const char *new_id, const char *new_title) {
        ItemRecord rec = {};
        int r = website_read_record(w, id, &rec);
        if (r == -ENOENT && new_id)
                return 0;
        if (r < 0 && r != -ENOENT && r != -EINVAL) {
                website_set_error(w, "Failed to read the state of %s: %s", id, strerror(-r));
                return r;
        }
        if (r < 0) {
                rec = (ItemRecord) {.id = strdup(id), .category = strdup(""),
                                    .title = strdup(fallback_title ? fallback_title : id)};
                if (!rec.id || !rec.category || !rec.title) {
                        item_record_done(&rec);
                        return -ENOMEM;
                }
        }

        ItemState state = new_id ? ITEM_REPLACED : ITEM_WITHDRAWN;
        bool again = rec.state == state && rec.withdrawn_at != 0;
        prakat_usec_t when = again ? rec.withdrawn_at : w->host->now(w->host);
        Notice notice = {.id = id, .title = rec.title, .reason = reason, .when = when, .new_id = new_id,
                         .new_title = new_title};
        PluginBuf b = {};
        website_render_notice(w, &notice, &b);
        _cleanup_free_ char *path = NULL;
        r = -ENOMEM;
        if (asprintf(&path, "%s/a/%s.html", w->output, id) >= 0)
                r = website_write_buf(w, path, &b);
        plugin_buf_free(&b);
        if (r == 0)
                r = website_remove_attachments(w, id);
        if (r == 0)
                website_unlist(w, &rec);

        if (r == 0) {
                rec.state = state;
                rec.withdrawn_at = when;
                free(rec.replaced_by);
                free(rec.reason);
                rec.replaced_by = new_id ? strdup(new_id) : NULL;
                rec.reason = reason ? strndup(reason, MAX_REASON_BYTES) : NULL;
                r = website_write_record(w, &rec);
        }
        item_record_done(&rec);
        return r;
}

/* ------------------------------------------------------------------------------------------------ */
/* Configuration */

static int parse_bounded(const char *value, unsigned min, unsigned max, unsigned *ret) {
        uint64_t v;
        if (parse_u64(value, &v) < 0 || v < min || v > max)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

/* http(s)://host[/path], nothing that would need escaping in a URL or an attribute. */
static bool base_url_is_valid(const char *url) {
        const char *rest = strncmp(url, "https://", 8) == 0 ? url + 8
                           : strncmp(url, "http://", 7) == 0 ? url + 7
                                                             : NULL;
        if (!rest || *rest == 0 || *rest == '/')
                return false;
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p <= ' ' || (unsigned char) *p >= 0x7F || strchr("\"'<>\\^`{|}#?", *p))
                        return false;
        return true;
}



/* The config file's folder, when the core is new enough to say (relative paths are relative to it). */
static const char *host_config_dir(const prakat_host *host) {
        size_t needed = offsetof(prakat_host, config_dir) + sizeof(host->config_dir);
        return host->struct_size >= needed ? host->config_dir : NULL;
}

static int website_apply_entry(Website *w, const prakat_config_entry *e, PluginConfigError *err, unsigned *output_line) {
        const char *key = e->key, *value = e->value ? e->value : "";
        if (upload_key_is_known(key))
                return upload_apply_entry(&w->upload, w->host, e, err);
        if (strcmp(key, "mode") == 0)
                return 0; /* static: checked by wordpress_mode_requested() */
        if (strncmp(key, "wordpress_", 10) == 0)
                return plugin_config_fail(err, e->line, "'%s' needs mode = wordpress in this section", key);
        if (strcmp(key, "output") == 0) {
                *output_line = e->line;
                if (value[0] == '/')
                        return plugin_set_string(&w->output, value);
                const char *base = host_config_dir(w->host);
                if (!value[0] || !base)
                        return plugin_config_fail(err, e->line, "output must be an absolute directory, not '%s'", value);
                char *joined = NULL;
                if (asprintf(&joined, "%s/%s", base, value) < 0)
                        return -ENOMEM;
                free(w->output);
                w->output = joined;
                w->output_relative = true;
                return 0;
        }
        if (strcmp(key, "base_url") == 0) {
                if (!base_url_is_valid(value))
                        return plugin_config_fail(err, e->line,
                                           "base_url must start with http:// or https:// and name a host, "
                                           "without spaces, quotes, '?' or '#' (got '%s')",
                                           value);
                int r = plugin_set_string(&w->base_url, value);
                size_t n = r == 0 ? strlen(w->base_url) : 0;
                while (n > 0 && w->base_url[n - 1] == '/')
                        w->base_url[--n] = 0;
                return r;
        }
        if (strcmp(key, "site_title") == 0) {
                if (!value[0])
                        return plugin_config_fail(err, e->line, "site_title must not be empty");
                return plugin_set_string(&w->site_title, value);
        }
        if (strcmp(key, "office_name") == 0)
                return plugin_set_string(&w->office_name, value);
        if (strcmp(key, "per_page") == 0) {
                if (parse_bounded(value, 5, 100, &w->per_page) < 0)
                        return plugin_config_fail(err, e->line, "per_page must be a whole number from 5 to 100, not '%s'",
                                           value);
                return 0;
        }
        if (strcmp(key, "feed_items") == 0) {
                if (parse_bounded(value, 1, 500, &w->feed_items) < 0)
                        return plugin_config_fail(err, e->line,
                                           "feed_items must be a whole number from 1 to 500, not '%s'", value);
                return 0;
        }
        return plugin_config_fail(err, e->line, "unknown key '%s' (known keys: " KNOWN_KEYS ")", key);
}

static int website_parse_config(Website *w, const prakat_config_entry *entries, size_t n, PluginConfigError *err,
                                unsigned *output_line) {
        for (size_t i = 0; i < n; i++) {
                for (size_t j = 0; j < i; j++)
                        if (strcmp(entries[i].key, entries[j].key) == 0)
                                return plugin_config_fail(err, entries[i].line, "'%s' is set twice (first on line %u)",
                                                   entries[i].key, entries[j].line);
                int r = website_apply_entry(w, &entries[i], err, output_line);
                if (r == -ENOMEM)
                        return plugin_config_fail(err, entries[i].line, "out of memory");
                if (r < 0)
                        return r;
        }
        if (!w->output)
                return plugin_config_fail(err, 0, "missing required key 'output' (the absolute directory the web server "
                                           "serves, e.g. output = /var/www/html/news)");
        if (!w->base_url)
                return plugin_config_fail(err, 0, "missing required key 'base_url' (the public address of output, e.g. "
                                           "base_url = https://example.go.th/news)");
        size_t len = strlen(w->output);
        while (len > 1 && w->output[len - 1] == '/')
                w->output[--len] = 0;
        if (!w->site_title && plugin_set_string(&w->site_title, DEFAULT_SITE_TITLE) < 0)
                return plugin_config_fail(err, 0, "out of memory");
        if (!w->office_name && plugin_set_string(&w->office_name, "") < 0)
                return plugin_config_fail(err, 0, "out of memory");
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Loading the state at start */

static int compare_items(const void *a, const void *b) {
        const Item *x = *(Item *const *) a, *y = *(Item *const *) b;
        return item_compare(x->published, x->id, y);
}

/* Adds one listed item without marking anything: used while loading, sorted afterwards. */
static int website_load_item(Website *w, const char *id) {
        ItemRecord rec = {};
        int r = website_read_record(w, id, &rec);
        if (r == -EINVAL)
                return 0; /* logged by website_read_record() */
        if (r < 0) {
                w->host->log(w->host, PRAKAT_LOG_WARNING, id, "Failed to read the state of %s: %s, ignoring", id,
                             strerror(-r));
                return 0;
        }
        if (rec.state != ITEM_LISTED) {
                item_record_done(&rec);
                return 0;
        }
        uint32_t category;
        r = website_category_get(w, rec.category, &category);
        Item *item = r < 0 ? NULL : item_new(&rec, category);
        item_record_done(&rec);
        if (!item || website_items_reserve(w, 1) < 0) {
                free(item);
                return -ENOMEM;
        }
        w->items[w->n_items++] = item;
        w->categories[category].n_items++;
        return 0;
}

static int website_load_state(Website *w) {
        _cleanup_(closedirp) DIR *d = opendir(w->items_dir);
        if (!d)
                return -errno;
        id_filter_reset(&w->known);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' || !plugin_id_is_safe(de->d_name))
                        continue;
                id_filter_add(&w->known, de->d_name);
                w->loading = true;
                int r = website_load_item(w, de->d_name);
                w->loading = false;
                if (r < 0)
                        return r;
        }
        if (w->n_items > 0)
                qsort(w->items, w->n_items, sizeof(Item *), compare_items);

        w->site.pages_on_disk = pages_for(w->n_items, w->per_page);
        for (size_t i = 0; i < w->n_categories; i++)
                w->categories[i].listing.pages_on_disk = pages_for(w->categories[i].n_items, w->per_page);
        w->sitemap_chunks_on_disk = sitemap_chunks_for(w->n_items);
        return 0;
}

/* "/etc/prakat/../run/site" becomes "/run/site", for readable messages. */
static int website_canonicalize_output(Website *w) {
        char *real = realpath(w->output, NULL);
        if (!real)
                return errno == ENOMEM ? -ENOMEM : 0;
        free(w->output);
        w->output = real;
        return 0;
}

/* Creates output with its fixed subdirectories, and the state's items/; clears leftovers of a crash. */
static int website_prepare_dirs(Website *w, PluginConfigError *err, unsigned output_line) {
        static const char *const subdirs[] = {"", "/a", "/page", "/files", "/category"};
        for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s%s", w->output, subdirs[i]) < 0)
                        return plugin_config_fail(err, output_line, "out of memory");
                int r = website_mkdir_p(w, p);
                if (r < 0)
                        return plugin_config_fail(err, output_line, "cannot create directory %s: %s", p, strerror(-r));
                purge_tmp_files(p);
                if (i == 0 && w->output_relative && website_canonicalize_output(w) < 0)
                        return plugin_config_fail(err, output_line, "out of memory");
        }
        if (asprintf(&w->items_dir, "%s/items", w->host->state_dir) < 0)
                return plugin_config_fail(err, 0, "out of memory");
        int r = website_mkdir_p(w, w->items_dir);
        if (r < 0)
                return plugin_config_fail(err, 0, "cannot create state directory %s: %s", w->items_dir, strerror(-r));
        purge_tmp_files(w->items_dir);
        return 0;
}

static int website_write_style(Website *w, PluginConfigError *err, unsigned output_line) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/style.css", w->output) < 0)
                return plugin_config_fail(err, output_line, "out of memory");
        if (website_write_file(w, path, website_css, sizeof(website_css) - 1, false) < 0)
                return plugin_config_fail(err, output_line, "%s", w->error);
        int r = website_sync(w);
        if (r < 0)
                return plugin_config_fail(err, output_line, "%s", w->error);
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* The plugin's entry points */

static void website_free(Website *w) {
        if (!w)
                return;
        wordpress_free(w->wordpress);
        upload_free(w->upload);
        w->host->timer_cancel(w->flush_timer);
        w->host->timer_cancel(w->expiry_timer);
        for (size_t i = 0; i < w->n_items; i++)
                free(w->items[i]);
        free(w->items);
        for (size_t i = 0; i < w->n_categories; i++) {
                free(w->categories[i].name);
                free(w->categories[i].listing.dirty);
        }
        free(w->categories);
        free(w->site.dirty);
        for (size_t i = 0; i < w->n_pending; i++)
                pending_done(&w->pending[i]);
        free(w->pending);
        for (size_t i = 0; i < w->n_uploading; i++)
                pending_done(&w->uploading[i]);
        free(w->uploading);
        free(w->output);
        free(w->base_url);
        free(w->site_title);
        free(w->office_name);
        free(w->items_dir);
        id_filter_free(&w->known);
        if (w->cache_arena)
                munmap(w->cache_arena, RECORD_CACHE_BYTES);
        free(w);
}

/* `prakat site sync`: upload everything again, whatever the manifest says the host has. */
static int website_command(void *userdata, const char *command, char *reply, size_t reply_size) {
        Website *w = userdata;
        if (strcmp(command, "site-sync") != 0) {
                snprintf(reply, reply_size, "unknown command '%s'", command);
                return -EOPNOTSUPP;
        }
        int r = upload_forget_all(w->upload, reply, reply_size);
        if (r >= 0)
                website_arm_flush(w, 0);
        return r;
}

/* Reads the upload's secret and manifest; what differs from the host goes up at once, jobs or not. */
static int website_prepare_upload(Website *w, PluginConfigError *err) {
        int r = upload_prepare(w->upload, w->output, err);
        if (r < 0)
                return r;
        if (PRAKAT_HOST_HAS(w->host, command_handler_set))
                w->host->command_handler_set(w->host, website_command, w);
        if (upload_has_work(w->upload))
                website_arm_flush(w, 0);
        return 0;
}

static int website_configure(const prakat_host *host, const prakat_config_entry *entries, size_t n_entries,
                             void **ret_instance, char *error, size_t error_size, unsigned *ret_error_line) {
        PluginConfigError err = {.text = error, .size = error_size, .line = ret_error_line};
        Website *w = calloc(1, sizeof(Website));
        if (!w)
                return plugin_config_fail(&err, 0, "out of memory");
        *w = (Website) {
                .host = host,
                .per_page = DEFAULT_PER_PAGE,
                .feed_items = DEFAULT_FEED_ITEMS,
                .durable = true,
        };

        int r = wordpress_mode_requested(entries, n_entries, &err);
        if (r > 0) {
                r = wordpress_configure(host, entries, n_entries, &w->wordpress, &err);
                if (r < 0) {
                        website_free(w);
                        return r;
                }
                *ret_instance = w;
                return 0;
        }
        unsigned output_line = 0;
        if (r == 0)
                r = website_parse_config(w, entries, n_entries, &err, &output_line);
        if (r == 0 && PRAKAT_HOST_CHECKING(host)) {
                /* prakatd --check: the settings and the upload's secrets, nothing written or cleared. */
                if (w->upload)
                        r = upload_check(w->upload, &err);
                if (r < 0) {
                        website_free(w);
                        return r;
                }
                *ret_instance = w;
                return 0;
        }
        if (r == 0)
                r = website_prepare_dirs(w, &err, output_line);
        if (r == 0)
                r = website_write_style(w, &err, output_line);
        if (r == 0 && (r = website_load_state(w)) < 0)
                r = plugin_config_fail(&err, 0, "cannot read state directory %s: %s", w->items_dir, strerror(-r));
        if (r == 0 && w->upload)
                r = website_prepare_upload(w, &err);
        if (r < 0) {
                website_free(w);
                return r;
        }

        /* Fresh or lost output: build every listing from the state. */
        _cleanup_free_ char *index = NULL;
        if (asprintf(&index, "%s/index.html", w->output) >= 0 && access(index, F_OK) < 0) {
                website_mark_everything(w);
                website_arm_flush(w, 0);
        }
        website_arm_expiry(w);
        *ret_instance = w;
        return 0;
}

static int website_publish(void *instance, prakat_job *job, const prakat_announcement *announcement) {
        Website *w = instance;
        if (w->wordpress)
                return wordpress_publish(w->wordpress, job, announcement);
        if (!plugin_id_is_safe(announcement->id)) {
                website_finish_now(w, job, PRAKAT_OUTCOME_FAILED, "the announcement id cannot be used in a URL",
                                   "ใช้รหัสประกาศนี้เป็นชื่อหน้าเว็บไม่ได้");
                return 0;
        }
        w->error[0] = 0;
        char **urls = NULL;
        int r = website_publish_item(w, announcement, &urls);
        if (r == 0)
                r = website_add_pending(w, job, announcement->id, urls, announcement->n_attachments);
        if (r < 0) {
                if (urls)
                        free_strings(urls, announcement->n_attachments);
                if (!w->error[0])
                        website_set_error(w, "Failed to publish %s: %s", announcement->id, strerror(-r));
                w->host->log(w->host, PRAKAT_LOG_ERR, announcement->id, "%s", w->error);
                website_finish_now(w, job, PRAKAT_OUTCOME_RETRY, w->error, "เขียนหน้าเว็บไม่สำเร็จ จะลองใหม่");
                /* Whatever was listed before the failure must still reach the shared pages. */
                website_arm_flush(w, 0);
                return 0;
        }
        /* Only an expiry sooner than the armed one needs the timer moved (the full scan is O(items)). */
        if (announcement->expires && (!w->expiry_timer || announcement->expires < w->expiry_deadline))
                website_arm_expiry(w);
        return 0;
}

/*
 * The article page exactly as website_write_article() renders it, with a <base> that points its
 * relative links (style, pictures, categories) at the public site, for a copy kept elsewhere.
 */
static int website_preview_page(Website *w, const prakat_announcement *a, const ItemRecord *rec, char *const *names,
                                const char *page_path) {
        size_t n_categories = w->n_categories;
        PluginBuf page = {}, out = {};
        website_render_article(w, a, rec, names, rec->expires && w->host->now(w->host) >= rec->expires, &page);
        /* Rendering met a category the site has not listed yet: forget it again, the site is unchanged. */
        for (; w->n_categories > n_categories; w->n_categories--)
                free(w->categories[w->n_categories - 1].name);
        const char *head = page.data ? strstr(page.data, "<head>\n") : NULL;
        if (!head) {
                plugin_buf_free(&page);
                return -ENOMEM;
        }
        size_t split = (size_t) (head - page.data) + strlen("<head>\n");
        plugin_buf_put(&out, page.data, split);
        plugin_buf_puts(&out, "<base href=\"");
        buf_put_text(&out, w->base_url);
        plugin_buf_puts(&out, "/a/\">\n");
        plugin_buf_put(&out, page.data + split, page.size - split);
        plugin_buf_free(&page);
        int r = out.failed ? -ENOMEM : plugin_write_file(page_path, out.data, out.size, false);
        plugin_buf_free(&out);
        return r;
}

/* What website_publish_item() will write, in words; the two lines of URLs first (prakat-channel.h). */
static void website_preview_text(Website *w, const prakat_announcement *a, const ItemRecord *rec, char *const *urls,
                                 PluginBuf *b) {
        char slug[80];
        _cleanup_free_ char *url = website_article_url(w, a->id);
        category_make_slug(rec->category, slug);
        plugin_buf_printf(b, "article_url: %s\n", url ? url : "");
        for (size_t i = 0; i < a->n_attachments; i++)
                plugin_buf_printf(b, "attachment_url: %s\n", urls[i]);
        plugin_buf_printf(b, "หน้าบทความ / article page: %s/a/%s.html\n", w->output, a->id);
        plugin_buf_printf(b, "หมวด / category: %s (category/%s/)\n", rec->category, slug);
        plugin_buf_printf(b, "หน้าที่เปลี่ยน / pages that change: index.html and the last page/N.html, "
                          "category/%s/index.html and its last page, feed.atom, sitemap.xml", slug);
        if (a->n_attachments)
                plugin_buf_printf(b, ", files/%s/ (%zu file%s)", a->id, a->n_attachments, a->n_attachments > 1 ? "s" : "");
        if (a->replaces && strcmp(a->replaces, a->id) != 0)
                plugin_buf_printf(b, "; a/%s.html becomes a notice pointing here", a->replaces);
        plugin_buf_puts(b, "\n");
        if (w->upload)
                plugin_buf_puts(b, "อัปโหลด / upload: the changed files are then put on the web host\n");
}

static int website_preview(void *instance, const prakat_announcement *a, const char *page_path, char **ret_text) {
        Website *w = instance;
        if (w->wordpress)
                return wordpress_preview(w->wordpress, a, page_path, ret_text);
        if (!plugin_id_is_safe(a->id))
                return -EINVAL;
        ItemRecord rec = {};
        PluginBuf b = {};
        char **urls = NULL, **names = website_attachment_names(a);
        int r = names ? website_make_record(w, a, names, &rec) : -ENOMEM;
        if (r == 0 && page_path)
                r = website_preview_page(w, a, &rec, names, page_path);
        if (r == 0 && !(urls = website_attachment_urls(w, a, names)))
                r = -ENOMEM;
        if (r == 0)
                website_preview_text(w, a, &rec, urls, &b);
        char *text = r == 0 ? plugin_buf_steal(&b, NULL) : NULL;
        plugin_buf_free(&b);
        if (r == 0 && !text)
                r = -ENOMEM;
        if (r == 0)
                *ret_text = text;
        if (urls)
                free_strings(urls, a->n_attachments);
        if (names)
                free_strings(names, a->n_attachments);
        item_record_done(&rec);
        return r;
}

static int website_retract(void *instance, prakat_job *job, const prakat_announcement *target, const char *reason) {
        Website *w = instance;
        if (w->wordpress)
                return wordpress_retract(w->wordpress, job, target, reason);
        if (!plugin_id_is_safe(target->id)) {
                website_finish_now(w, job, PRAKAT_OUTCOME_FAILED, "the announcement id cannot be used in a URL",
                                   "ใช้รหัสประกาศนี้เป็นชื่อหน้าเว็บไม่ได้");
                return 0;
        }
        w->error[0] = 0;
        int r = website_withdraw(w, target->id, target->title, reason, NULL, NULL);
        if (r == 0)
                r = website_add_pending(w, job, target->id, NULL, 0);
        if (r < 0) {
                if (!w->error[0])
                        website_set_error(w, "Failed to withdraw %s: %s", target->id, strerror(-r));
                w->host->log(w->host, PRAKAT_LOG_ERR, target->id, "%s", w->error);
                website_finish_now(w, job, PRAKAT_OUTCOME_RETRY, w->error, "ถอนประกาศจากเว็บไซต์ไม่สำเร็จ จะลองใหม่");
                website_arm_flush(w, 0);
                return 0;
        }
        /* The expiry timer may now fire for nothing; website_on_expiry() then simply re-arms it. */
        return 0;
}

/* Healthy when a file can really be created in output (root ignores permission bits, so test by doing). */
static int website_health(void *instance, char *buffer, size_t buffer_size) {
        Website *w = instance;
        if (w->wordpress)
                return wordpress_health(w->wordpress, buffer, buffer_size);
        _cleanup_free_ char *probe = NULL;
        if (asprintf(&probe, "%s/" TMP_PREFIX "health", w->output) < 0) {
                snprintf(buffer, buffer_size, "out of memory");
                return -ENOMEM;
        }
        int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
                snprintf(buffer, buffer_size, "output %s is not writable: %s", w->output, strerror(errno));
                return -EIO;
        }
        close(fd);
        unlink(probe);
        if (w->upload)
                return upload_health(w->upload, buffer, buffer_size);
        snprintf(buffer, buffer_size, "ok");
        return 0;
}

static void website_destroy(void *instance) {
        website_free(instance);
}

PRAKAT_CHANNEL_DEFINE(website, "website", WEBSITE_VERSION);
