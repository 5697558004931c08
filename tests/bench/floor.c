/* SPDX-License-Identifier: MIT */
/*
 * make bench: the floor under the core's CPU per announcement.  Printed, never asserted.
 *
 * No prakat code runs here.  For each announcement this program does only the file operations that
 * the daemon cannot do without, in folders as full as the core benchmark's (ARCHIVE items), with one
 * syncfs() per 100 announcements as prakatd batches them, and measures its own CPU time:
 *
 *   intake   read the dropped file; the queue entry saved; the original kept; the dropped file removed
 *   website  the article page written whole (temporary file, rename)
 *   finish   the final job states saved; the entry counted as done
 *   receipt  published/DATE-ID/ with the original (a hard link) and receipt.txt, made under a
 *            temporary name and renamed into place, so that staff never see half a receipt
 *
 * Two ways of saving the queue: a file per entry written whole (temporary file, rename) and moved to
 * done/ at the end, as prakatd's layouts 1 and 2 did; and a journal (appends, one per change) with the
 * finished entry written once into done/, as layout 3 does now (src/queue.h).  Left out, although
 * prakatd must do them too: parsing, rendering, the "sending" state before each job, the website's own
 * record, the listing pages, feed and sitemap, logging.  Last, the cost of one small record made
 * durable alone, as the channels make theirs before each platform request.
 *
 *   floor DIR ARCHIVE BURST
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char filler[8192];

static void die(const char *what, const char *path) {
        fprintf(stderr, "floor: %s %s: %s\n", what, path, strerror(errno));
        exit(1);
}

static void write_new(const char *path, size_t size) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                die("cannot create", path);
        if (write(fd, filler, size) != (ssize_t) size)
                die("cannot write", path);
        close(fd);
}

static void append(int fd, size_t size) {
        if (write(fd, filler, size) != (ssize_t) size)
                die("cannot append to", "the journal");
}

static void read_whole(const char *path) {
        char buf[4096];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                die("cannot open", path);
        while (read(fd, buf, sizeof buf) > 0)
                ;
        close(fd);
}

static void must(int r, const char *what, const char *path) {
        if (r < 0)
                die(what, path);
}

static double cpu_seconds(void) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

typedef struct Run {
        const char *root;
        int journal_fd; /* -1: the queue is written whole, as DESIGN §4 says */
} Run;

/* Sizes as prakatd writes them for the benchmark's announcements. */
enum { DROPPED = 300, ENTRY = 1300, STATES = 400, ARTICLE = 4200, RECEIPT = 1500 };

static void one(const Run *run, int i) {
        char drop[512], tmp[512], entry[512], orig[512], page[512], done[512], rdir[512], path[600], final[512];
        const char *root = run->root;

        snprintf(drop, sizeof drop, "%s/incoming/a%06d.txt", root, i);
        snprintf(orig, sizeof orig, "%s/originals/%06d-a.txt", root, i);
        snprintf(entry, sizeof entry, "%s/queue/%06d.json", root, i);
        read_whole(drop);
        if (run->journal_fd < 0) {
                snprintf(tmp, sizeof tmp, "%s/tmp/%06d.json", root, i);
                write_new(tmp, ENTRY);
                must(rename(tmp, entry), "cannot rename", tmp);
        } else
                append(run->journal_fd, ENTRY);
        write_new(orig, DROPPED);
        must(unlink(drop), "cannot remove", drop);

        snprintf(tmp, sizeof tmp, "%s/site/a/.tmp-%06d.html", root, i);
        snprintf(page, sizeof page, "%s/site/a/%06d.html", root, i);
        write_new(tmp, ARTICLE);
        must(rename(tmp, page), "cannot rename", tmp);

        if (run->journal_fd < 0) {
                snprintf(tmp, sizeof tmp, "%s/tmp/%06d.jobs", root, i);
                snprintf(done, sizeof done, "%s/done/%06d.json", root, i);
                write_new(tmp, STATES);
                must(rename(tmp, entry), "cannot rename", tmp);
                must(rename(entry, done), "cannot rename", entry);
        } else {
                append(run->journal_fd, STATES);
                snprintf(done, sizeof done, "%s/done/%06d.json", root, i);
                write_new(done, ENTRY + STATES);
        }

        snprintf(rdir, sizeof rdir, "%s/published/.tmp-2026-11-26-%06d", root, i);
        snprintf(final, sizeof final, "%s/published/2026-11-26-%06d", root, i);
        must(mkdir(rdir, 0755), "cannot make", rdir);
        snprintf(path, sizeof path, "%s/a.txt", rdir);
        must(link(orig, path), "cannot link", path);
        snprintf(path, sizeof path, "%s/receipt.txt", rdir);
        write_new(path, RECEIPT);
        must(rename(rdir, final), "cannot rename", rdir);
}

static void drop_files(const char *root, int from, int n) {
        char path[512];
        for (int i = from; i < from + n; i++) {
                snprintf(path, sizeof path, "%s/incoming/a%06d.txt", root, i);
                write_new(path, DROPPED);
        }
        sync();
}

/* CPU seconds for announcements from..from+n-1, with one syncfs() per 100 of them. */
static double process(const Run *run, int from, int n) {
        double c0 = cpu_seconds();
        int fd = open(run->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                die("cannot open", run->root);
        for (int i = from; i < from + n; i++) {
                one(run, i);
                if ((i - from) % 100 == 99 || i == from + n - 1)
                        must(syncfs(fd), "cannot sync", run->root);
        }
        close(fd);
        return cpu_seconds() - c0;
}

static double measure(const char *root, bool journal, int archive, int burst) {
        static const char *const dirs[] = {"", "/incoming", "/tmp", "/queue", "/originals", "/done", "/site",
                                           "/site/a", "/published"};
        char path[512];
        for (size_t k = 0; k < sizeof dirs / sizeof *dirs; k++) {
                snprintf(path, sizeof path, "%s%s", root, dirs[k]);
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        die("cannot make", path);
        }
        Run run = {.root = root, .journal_fd = -1};
        if (journal) {
                snprintf(path, sizeof path, "%s/queue.journal", root);
                run.journal_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
                if (run.journal_fd < 0)
                        die("cannot create", path);
        }
        for (int from = 0; from < archive; from += 1000) {
                int n = archive - from < 1000 ? archive - from : 1000;
                drop_files(root, from, n);
                process(&run, from, n);
        }
        drop_files(root, archive, burst);
        double cpu = process(&run, archive, burst);
        if (run.journal_fd >= 0)
                close(run.journal_fd);
        return cpu / burst;
}

/*
 * One record made durable the way DESIGN §4 says, alone (nothing to share a sync with): temporary file,
 * fsync, rename, fsync of the folder.  What a channel pays before a platform request (LINE's retry
 * key, Facebook's pending mark) and for a job's state before and after an attempt, when requests and
 * answers come one at a time.
 */
static double durable_record(const char *root, int n) {
        char dir[600], tmp[700], path[700];
        snprintf(dir, sizeof dir, "%s/records", root);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                die("cannot make", dir);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                die("cannot open", dir);
        double c0 = cpu_seconds();
        for (int i = 0; i < n; i++) {
                snprintf(tmp, sizeof tmp, "%s/.tmp-%06d", dir, i);
                snprintf(path, sizeof path, "%s/%06d", dir, i);
                int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
                if (fd < 0 || write(fd, filler, 300) != 300 || fsync(fd) < 0)
                        die("cannot write", tmp);
                close(fd);
                must(rename(tmp, path), "cannot rename", tmp);
                must(fsync(dfd), "cannot sync", dir);
        }
        double cpu = cpu_seconds() - c0;
        close(dfd);
        return cpu / n;
}

static int compare_doubles(const void *x, const void *y) {
        double a = *(const double *) x, b = *(const double *) y;
        return (a > b) - (a < b);
}

int main(int argc, char **argv) {
        if (argc != 4) {
                fprintf(stderr, "usage: floor DIR ARCHIVE BURST\n");
                return 2;
        }
        int archive = atoi(argv[2]), burst = atoi(argv[3]);
        char a[512], b[512];
        memset(filler, 'x', sizeof filler);
        snprintf(a, sizeof a, "%s/design", argv[1]);
        snprintf(b, sizeof b, "%s/journal", argv[1]);
        if (mkdir(argv[1], 0755) < 0 && errno != EEXIST)
                die("cannot make", argv[1]);
        /* The records first, on a quiet filesystem (after the runs below, the journal's clean-up is billed
         * to whoever syncs next): the median of five rounds of 100. */
        double rounds[5];
        for (int i = 0; i < 5; i++) {
                char d[512];
                snprintf(d, sizeof d, "%s/records-%d", argv[1], i);
                if (mkdir(d, 0755) < 0 && errno != EEXIST)
                        die("cannot make", d);
                rounds[i] = durable_record(d, 100);
        }
        qsort(rounds, 5, sizeof(double), compare_doubles);
        double design = measure(a, false, archive, burst);
        double journal = measure(b, true, archive, burst);
        printf("| measure | CPU |\n|---|---|\n");
        printf("| the file work per announcement, a queue file per entry (layouts 1, 2), burst of %d into %d, "
               "nothing else | %.3f ms |\n", burst, archive, design * 1000);
        printf("| the same with the queue as a journal and done/ID.json (layout 3, prakatd now) | %.3f ms |\n",
               journal * 1000);
        printf("| one record made durable alone (temporary file, fsync, rename, fsync folder) | %.3f ms |\n",
               rounds[2] * 1000);
        return 0;
}
