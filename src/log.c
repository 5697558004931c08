/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <sys/stat.h>
#include <sys/uio.h>
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

static const char *log_identifier = "prakat";
static int log_max_level = LOG_INFO;
static bool log_to_journal;

/* systemd sets JOURNAL_STREAM=dev:ino for the stream it connected stderr to. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == (dev_t) dev && st.st_ino == (ino_t) ino;
}

void log_open(const char *identifier) {
        log_identifier = identifier;
        log_to_journal = stderr_is_journal();
        if (getenv("PRAKAT_DEBUG"))
                log_max_level = LOG_DEBUG;
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

int log_fullv(int level, int error, const char *id, const char *channel, const char *format, va_list ap) {
        int saved_errno = errno;
        char message[2048];

        error = error < 0 ? -error : error;
        if (level > log_max_level)
                return -error;
        /* %m must name `error`, the failure being reported, not whatever errno is now. */
        errno = error;
        vsnprintf(message, sizeof message, format, ap);
        if (log_to_journal) {
                char f[6][2100];
                struct iovec iov[6];
                size_t n = 0;

                snprintf(f[n++], sizeof f[0], "MESSAGE=%s", message);
                snprintf(f[n++], sizeof f[0], "PRIORITY=%i", level);
                snprintf(f[n++], sizeof f[0], "SYSLOG_IDENTIFIER=%s", log_identifier);
                if (id)
                        snprintf(f[n++], sizeof f[0], "PRAKAT_ID=%s", id);
                if (channel)
                        snprintf(f[n++], sizeof f[0], "PRAKAT_CHANNEL=%s", channel);
                if (error)
                        snprintf(f[n++], sizeof f[0], "ERRNO=%i", error);
                for (size_t i = 0; i < n; i++)
                        iov[i] = (struct iovec) { .iov_base = f[i], .iov_len = strlen(f[i]) };
                sd_journal_sendv(iov, (int) n);
        } else if (id || channel) {
                fprintf(stderr, "%s[%s%s%s]: %s\n", log_identifier, id ? id : "", id && channel ? "/" : "",
                        channel ? channel : "", message);
        } else
                fprintf(stderr, "%s: %s\n", log_identifier, message);
        errno = saved_errno;
        return -error;
}

int log_full(int level, int error, const char *id, const char *channel, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = log_fullv(level, error, id, channel, format, ap);
        va_end(ap);
        return r;
}
