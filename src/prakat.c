/* SPDX-License-Identifier: MIT */
/*
 * prakat: the operator's command line (DESIGN §7).  Read-only commands read the state files
 * directly, so they work whether or not prakatd is running; `status` asks the daemon over its control
 * socket and says so when it is down.
 */
#include <getopt.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "announcement.h"
#include "config.h"
#include "control.h"
#include "digest.h"
#include "log.h"
#include "queue.h"
#include "report.h"
#include "thaidate.h"

#ifndef PRAKAT_CONFIG
#define PRAKAT_CONFIG "/etc/prakat/prakat.conf"
#endif

typedef struct Options {
        const char *config;
        const char *channel, *reason;
        const char *fiscal_year, *from, *to, *format, *output, *month; /* report and digest */
        bool json, all, help;
} Options;

static int load_config(const Options *o, Config **ret) {
        _cleanup_free_ char *error = NULL;

        if (config_load(o->config, ret, &error) < 0) {
                fprintf(stderr, "prakat: %s\n", error);
                return EX_CONFIG;
        }
        return 0;
}

static void print_json(json_t *j) {
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
}

/* ---- validate ---- */

/*
 * Whether the id a Cancel: or Replaces: names was received, from the state (the journal or done/).
 * Someone who may not read the state is not told it is missing: the daemon checks again anyway.
 */
static bool validate_target_known(const Config *config, const Announcement *a) {
        const char *target = a->cancel ? a->cancel : a->replaces;
        Entry *e = NULL;
        int r = queue_load_any(config->state, target, &e);

        entry_free(e);
        return r != -ENOENT;
}

static int cmd_validate(const Options *o, int argc, char **argv) {
        Config *config = NULL;
        int bad = 0, r;

        if (argc < 1) {
                fprintf(stderr, "Usage: prakat validate FILE...\n");
                return EX_USAGE;
        }
        if ((r = load_config(o, &config)))
                return r;
        for (int i = 0; i < argc; i++) {
                ParseContext ctx = { .config = config, .now = clock_now() };
                ParseError e = {};
                Announcement *a = NULL;
                const char *slash = strrchr(argv[i], '/');
                _cleanup_free_ char *path = xstrdup(argv[i]);
                size_t n = strlen(path);

                while (n > 1 && path[n - 1] == '/')
                        path[--n] = 0;
                slash = strrchr(path, '/');
                r = announcement_load(&ctx, path, slash ? slash + 1 : path, &a, &e);
                if (r >= 0 && (a->cancel || a->replaces) && !validate_target_known(config, a)) {
                        announcement_target_missing(a, &e);
                        announcement_free(a);
                        r = -EINVAL;
                }
                if (r < 0) {
                        _cleanup_free_ char *text = parse_error_format(&e, argv[i], ctx.now);
                        printf("%s\n", text);
                        parse_error_done(&e);
                        bad++;
                        continue;
                }
                char when[128];
                thaidate_format(a->publish_at, THAIDATE_LONG, when, sizeof when);
                printf("%s: ใช้ได้ / valid\n  id: %s\n  title: %s\n  channels:", argv[i], a->id, a->title);
                for (size_t k = 0; k < a->n_channels; k++)
                        printf(" %s", a->channels[k]);
                for (size_t k = 0; k < a->n_skipped_channels; k++)
                        printf(" (%s: disabled)", a->skipped_channels[k]);
                printf("\n  publish: %s\n  encoding: %s\n", when, a->encoding);
                announcement_free(a);
        }
        config_free(config);
        return bad ? EX_DATAERR : EX_OK;
}

/* ---- list and show ---- */

static const char *entry_summary(const Entry *e) {
        bool sending = false, waiting = false, failed = false;

        if (e->held)
                return "held";
        if (e->approval == APPROVAL_WAITING)
                return "waiting-for-approval";
        for (size_t i = 0; i < e->n_jobs; i++) {
                JobState s = e->jobs[i].state;
                sending |= s == JOB_SENDING;
                waiting |= s == JOB_SCHEDULED || s == JOB_DEFERRED;
                failed |= s == JOB_FAILED || s == JOB_UNCONFIRMED;
        }
        if (sending)
                return "sending";
        if (waiting)
                return "waiting";
        return failed ? "finished-with-errors" : "finished";
}

static json_t *entry_to_json(const Entry *e) {
        json_t *o = announcement_to_json(e->announcement);
        json_t *j = entry_jobs_to_json(e);

        json_object_set_new(o, "status", json_string(entry_summary(e)));
        json_object_set(o, "held", json_object_get(j, "held"));
        if (json_object_get(j, "approval"))
                json_object_set(o, "approval", json_object_get(j, "approval"));
        json_object_set(o, "jobs", json_object_get(j, "jobs"));
        json_decref(j);
        return o;
}

static int cmd_list(const Options *o, int argc, char **argv) {
        Config *config = NULL;
        Entry **list = NULL;
        size_t n = 0;
        int r;

        if ((r = load_config(o, &config)))
                return r;
        r = queue_list_dir(config->state, o->all, &list, &n);
        if (r < 0) {
                fprintf(stderr, "prakat: cannot read %s: %s\n", config->state, strerror(-r));
                config_free(config);
                return EX_IOERR;
        }
        if (o->json) {
                json_t *arr = json_array();
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(arr, entry_to_json(list[i]));
                print_json(arr);
                json_decref(arr);
        } else {
                if (n == 0)
                        printf(o->all ? "No announcements.\n" : "Nothing waiting: every announcement has finished "
                                                                "(prakat list --all shows them).\n");
                for (size_t i = 0; i < n; i++) {
                        const Entry *e = list[i];
                        printf("%-24s %-21s", e->announcement->id, entry_summary(e));
                        for (size_t k = 0; k < e->n_jobs; k++)
                                printf(" %s:%s", e->jobs[k].channel, job_state_to_string(e->jobs[k].state));
                        printf("  %s\n", e->announcement->title);
                }
        }
        for (size_t i = 0; i < n; i++)
                entry_free(list[i]);
        free(list);
        config_free(config);
        return EX_OK;
}

static void print_time(const char *label, usec_t t) {
        char th[128], iso[64];

        if (!t)
                return;
        thaidate_format(t, THAIDATE_LONG, th, sizeof th);
        thaidate_format_iso(t, iso, sizeof iso);
        printf("%-12s %s (%s)\n", label, iso, th);
}

static int cmd_show(const Options *o, int argc, char **argv) {
        Config *config = NULL;
        Entry *e = NULL;
        int r;

        if (argc != 1) {
                fprintf(stderr, "Usage: prakat show ID\n");
                return EX_USAGE;
        }
        if (!announcement_id_valid(argv[0])) {
                fprintf(stderr, "prakat: '%s' is not an announcement id.\n", argv[0]);
                return EX_USAGE;
        }
        if ((r = load_config(o, &config)))
                return r;
        if (queue_load_any(config->state, argv[0], &e) < 0) {
                fprintf(stderr, "prakat: no announcement %s in %s (prakat list --all shows every id).\n", argv[0],
                        config->state);
                config_free(config);
                return EX_NOINPUT;
        }
        if (o->json) {
                json_t *j = entry_to_json(e);
                print_json(j);
                json_decref(j);
        } else {
                const Announcement *a = e->announcement;
                printf("%-12s %s\n%-12s %s\n%-12s %s\n%-12s %s\n", "id:", a->id, "title:", a->title, "status:",
                       entry_summary(e), "category:", a->category);
                printf("%-12s %s\n", "file:", a->source_name ? a->source_name : "-");
                print_time("received:", a->received);
                print_time("publish at:", a->publish_at);
                print_time("expires:", a->expires);
                if (a->cancel)
                        printf("%-12s %s\n", "withdraws:", a->cancel);
                if (a->replaces)
                        printf("%-12s %s\n", "replaces:", a->replaces);
                printf("%-12s ", "villages:");
                if (a->all_villages)
                        printf("all");
                for (size_t i = 0; i < a->n_villages; i++)
                        printf("%s%u", i ? ", " : "", a->villages[i]);
                printf("\n\nchannels:\n");
                for (size_t i = 0; i < e->n_jobs; i++) {
                        const Job *j = &e->jobs[i];
                        printf("  %-12s %-12s attempts %u\n", j->channel, job_state_to_string(j->state), j->attempts);
                        if (j->link)
                                printf("    link: %s\n", j->link);
                        if (j->remote_id)
                                printf("    id: %s\n", j->remote_id);
                        if (j->message)
                                printf("    note: %s\n", j->message);
                        if (j->state == JOB_DEFERRED && j->next_try) {
                                char iso[64];
                                thaidate_format_iso(j->next_try, iso, sizeof iso);
                                printf("    next try: %s\n", iso);
                        }
                }
        }
        entry_free(e);
        config_free(config);
        return EX_OK;
}

/* ---- asking the daemon ---- */

/* The control socket refused us (EACCES): not a daemon that is down.  Says so and returns EX_NOPERM. */
static int control_refused(const Config *config, int r) {
        if (r != -EACCES && r != -EPERM)
                return 0;
        fprintf(stderr, "prakat: ไม่มีสิทธิ์ใช้ %s/%s / not allowed to use prakatd's control socket %s/%s. "
                        "Ask the administrator to add you to the group %s.\n",
                config->runtime_dir, CONTROL_SOCKET_NAME, config->runtime_dir, CONTROL_SOCKET_NAME,
                config->control_group ? config->control_group : "that owns it (control_group in prakat.conf)");
        return EX_NOPERM;
}

/* ---- status ---- */

static int cmd_status(const Options *o, int argc, char **argv) {
        Config *config = NULL;
        json_t *reply = NULL, *channels;
        size_t i;
        int r, k;

        if ((r = load_config(o, &config)))
                return r;
        r = control_call(config->runtime_dir, json_pack("{s:s}", "command", "status"), 10000, &reply);
        if (r < 0 && (k = control_refused(config, r))) {
                config_free(config);
                return k;
        }
        if (r < 0) {
                /* The daemon is down (or not answering): say so, and what the state files tell. */
                Entry **entries = NULL;
                size_t n = 0;
                (void) queue_list_dir(config->state, false, &entries, &n);
                for (i = 0; i < n; i++)
                        entry_free(entries[i]);
                free(entries);
                if (o->json) {
                        json_t *j = json_pack("{s:b, s:s, s:s, s:I}", "ok", 0, "daemon", "not running", "error",
                                              strerror(-r), "queue", (json_int_t) n);
                        print_json(j);
                        json_decref(j);
                } else
                        printf("prakatd ไม่ทำงาน / is not running (%s/%s: %s)\n"
                               "คิว / queue: %zu ประกาศรอดำเนินการ / announcements waiting (from the state files)\n",
                               config->runtime_dir, CONTROL_SOCKET_NAME, strerror(-r), n);
                config_free(config);
                return EX_UNAVAILABLE;
        }
        if (!json_is_true(json_object_get(reply, "ok"))) { /* refused by the daemon (control_group) */
                if (o->json)
                        print_json(reply);
                else
                        fprintf(stderr, "prakat: %s / %s\n", json_string_value(json_object_get(reply, "error_th")),
                                json_string_value(json_object_get(reply, "error")));
                k = json_is_true(json_object_get(reply, "not_allowed")) ? EX_NOPERM : EX_SOFTWARE;
                json_decref(reply);
                config_free(config);
                return k;
        }
        if (o->json)
                print_json(reply);
        else {
                const char *paused = json_string_value(json_object_get(reply, "intake_paused"));
                const char *state_error = json_string_value(json_object_get(reply, "state_error"));
                printf("prakatd ทำงานอยู่ / is running (pid %lld, version %s)\n"
                       "คิว / queue: %lld ประกาศ / announcements, %lld งานค้าง / pending jobs, %lld กำลังส่ง / sending\n",
                       json_integer_value(json_object_get(reply, "pid")),
                       json_string_value(json_object_get(reply, "version")),
                       json_integer_value(json_object_get(reply, "queue")),
                       json_integer_value(json_object_get(reply, "pending_jobs")),
                       json_integer_value(json_object_get(reply, "in_flight")));
                if (paused)
                        printf("รับไฟล์หยุดชั่วคราว / intake paused: %s\n", paused);
                if (state_error)
                        printf("บันทึกสถานะงานไม่ได้ (จะลองใหม่เอง) / %s (retrying)\n", state_error);
                printf("\nช่องทาง / channels:\n");
                channels = json_object_get(reply, "channels");
                for (i = 0; i < json_array_size(channels); i++) {
                        json_t *ch = json_array_get(channels, i);
                        bool ok = json_is_true(json_object_get(ch, "healthy"));
                        printf("  %-12s %-8s %s\n", json_string_value(json_object_get(ch, "name")),
                               !json_is_true(json_object_get(ch, "enabled")) ? "ปิด/off" : ok ? "ปกติ/ok" : "ขัดข้อง/FAIL",
                               json_string_value(json_object_get(ch, "health")));
                }
        }
        r = json_is_true(json_object_get(reply, "ok")) ? EX_OK : EX_SOFTWARE;
        json_decref(reply);
        config_free(config);
        return r;
}

/* ---- retry, hold, release: asked of the daemon ---- */

static int ask_daemon(const Options *o, const char *command, int argc, char **argv) {
        Config *config = NULL;
        json_t *reply = NULL;
        int r;

        if (argc != 1) {
                fprintf(stderr, "Usage: prakat %s ID%s\n", command,
                        streq(command, "retry")  ? " [--channel NAME]" :
                        streq(command, "reject") ? " --reason TEXT" :
                                                   "");
                return EX_USAGE;
        }
        if ((r = load_config(o, &config)))
                return r;
        r = control_call(config->runtime_dir,
                         json_pack("{s:s, s:s, s:s?, s:s?}", "command", command, "id", argv[0], "channel", o->channel,
                                   "reason", o->reason),
                         10000, &reply);
        if (r < 0) {
                int k = control_refused(config, r);
                config_free(config);
                if (k)
                        return k;
                fprintf(stderr, "prakat: prakatd is not running (%s), and %s needs it. Start it "
                                "(systemctl start prakatd) and try again.\n", strerror(-r), command);
                return EX_UNAVAILABLE;
        }
        config_free(config);
        if (o->json)
                print_json(reply);
        if (!json_is_true(json_object_get(reply, "ok"))) {
                fprintf(stderr, "prakat: %s / %s\n", json_string_value(json_object_get(reply, "error_th")),
                        json_string_value(json_object_get(reply, "error")));
                r = json_is_true(json_object_get(reply, "not_allowed"))                              ? EX_NOPERM :
                    strstr(json_string_value(json_object_get(reply, "error")) ?: "", "no announcement") ? EX_NOINPUT :
                                                                                                     EX_DATAERR;
        } else {
                if (!o->json)
                        printf("%s: %lld งาน / job(s) %s\n", argv[0], json_integer_value(json_object_get(reply, "jobs")),
                               streq(command, "retry")   ? "ส่งใหม่ / will be tried again now" :
                               streq(command, "hold")    ? "ระงับไว้ / held" :
                               streq(command, "approve") ? "อนุมัติแล้ว / approved" :
                               streq(command, "reject")  ? "ไม่อนุมัติ ยกเลิกแล้ว / rejected, cancelled" :
                                                           "ปล่อยแล้ว / released");
                r = EX_OK;
        }
        json_decref(reply);
        return r;
}

static int cmd_retry(const Options *o, int argc, char **argv) {
        return ask_daemon(o, "retry", argc, argv);
}

static int cmd_hold(const Options *o, int argc, char **argv) {
        return ask_daemon(o, "hold", argc, argv);
}

static int cmd_release(const Options *o, int argc, char **argv) {
        return ask_daemon(o, "release", argc, argv);
}

static int cmd_approve(const Options *o, int argc, char **argv) {
        return ask_daemon(o, "approve", argc, argv);
}

static int cmd_reject(const Options *o, int argc, char **argv) {
        return ask_daemon(o, "reject", argc, argv);
}

/* ---- submit and cancel: an atomic drop into incoming/, so they work with the daemon down too ---- */

/* Copies `from` (file or folder) to incoming/.NAME.part, then renames it to NAME (taken at once). */
static int drop_into_incoming(const Config *config, const char *from, const char *name) {
        _cleanup_free_ char *incoming = path_join(config->spool, "incoming"), *to = path_join(incoming, name),
                            *part = NULL;
        struct stat st;
        int r;

        part = xasprintf("%s/.%s.part", incoming, name);
        if (lstat(from, &st) < 0)
                return -errno;
        if (lstat(to, &st) == 0)
                return -EEXIST;
        (void) remove_tree(part);
        r = S_ISDIR(st.st_mode) ? copy_tree(from, part) : copy_file(from, part, 0644);
        if (r >= 0)
                r = sync_filesystem(part);
        if (r >= 0 && rename(part, to) < 0)
                r = -errno;
        if (r < 0)
                (void) remove_tree(part);
        return r;
}

static int cmd_submit(const Options *o, int argc, char **argv) {
        Config *config = NULL;
        int r;

        if (argc != 1) {
                fprintf(stderr, "Usage: prakat submit FILE|FOLDER\n");
                return EX_USAGE;
        }
        if ((r = load_config(o, &config)))
                return r;
        _cleanup_free_ char *path = xstrdup(argv[0]);
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/')
                path[--n] = 0;
        const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
        r = drop_into_incoming(config, path, name);
        if (r < 0)
                fprintf(stderr, "prakat: cannot submit %s: %s%s\n", argv[0], strerror(-r),
                        r == -EEXIST ? " (a file of that name is waiting in incoming/; rename yours)" : "");
        else
                printf("%s: ส่งเข้า incoming/ แล้ว / dropped into %s/incoming/%s\n", argv[0], config->spool, name);
        config_free(config);
        return r == -ENOENT ? EX_NOINPUT : r < 0 ? EX_CANTCREAT : EX_OK;
}

static int cmd_cancel(const Options *o, int argc, char **argv) {
        Config *config = NULL;
        int r;

        if (argc != 1) {
                fprintf(stderr, "Usage: prakat cancel ID [--reason TEXT]\n");
                return EX_USAGE;
        }
        if ((r = load_config(o, &config)))
                return r;
        /* Written under a hidden name in incoming/ (ignored there), synced, then renamed into view. */
        _cleanup_free_ char *incoming = path_join(config->spool, "incoming"), *name = NULL, *text = NULL,
                            *part = NULL, *final = NULL;
        name = xasprintf("cancel-%s-%llu.txt", argv[0], (unsigned long long) (clock_now() / USEC_PER_SEC));
        part = xasprintf("%s/.%s.part", incoming, name);
        final = path_join(incoming, name);
        text = xasprintf("Cancel: %s\n\n%s\n", argv[0], o->reason ? o->reason : "");
        r = write_file_atomic(part, text, strlen(text), 0644);
        if (r >= 0 && rename(part, final) < 0)
                r = -errno;
        if (r >= 0)
                r = fsync_parent(final);
        else
                unlink(part);
        if (r < 0)
                fprintf(stderr, "prakat: cannot drop the cancellation: %s\n", strerror(-r));
        else
                printf("%s: ส่งคำขอยกเลิกแล้ว / withdrawal dropped as incoming/%s; its receipt will say what each "
                       "channel could do\n",
                       argv[0], name);
        config_free(config);
        return r < 0 ? EX_CANTCREAT : EX_OK;
}

/* ---- report and digest: read from the state files only, so the daemon may be up or down ---- */

static const char report_help[] =
        "Usage: prakat report [--fiscal-year YEAR | --from DATE --to DATE] [--format html|csv] [-o FILE|DIR]\n\n"
        "Everything published in a period, with each channel's outcome, link or post id, and the villages\n"
        "whose tower played it: the evidence for the ITA assessment.\n\n"
        "  --fiscal-year YEAR  a Thai fiscal year, 1 October - 30 September: 2568 (Buddhist Era), or 2025\n"
        "                      (the Common Era year it ends in); default: the current fiscal year\n"
        "  --from DATE --to DATE  any period, dates as in an announcement (2024-10-01, 1/10/2567,\n"
        "                      1 ต.ค. 2567); a --to without a time includes that whole day\n"
        "  --format html|csv   a printable A4 page in Thai (default), or CSV (UTF-8 with BOM) for Excel\n"
        "  -o FILE             write FILE (CSV for a .csv name unless --format says otherwise)\n"
        "  -o DIR              an existing folder: write both DIR/report.html and DIR/report.csv\n"
        "Without -o the report goes to standard output.\n";

static const char digest_help[] =
        "Usage: prakat digest --month MONTH [-o FILE|DIR]\n\n"
        "The printable monthly newsletter (วารสาร): the month's announcements with their date, the first\n"
        "lines of their text, their first picture and the link to their page, as an A4 HTML page.\n\n"
        "  --month MONTH   2569-11 (Buddhist Era) or 2026-11, 11/2569, พฤศจิกายน 2569\n"
        "  -o FILE         write FILE; pictures are copied into FILE's name without .html plus _files/\n"
        "                  beside it, so the page prints without the network\n"
        "  -o DIR          an existing folder: DIR/digest-YYYY-MM.html (Buddhist Era) and its _files/\n"
        "Without -o the page goes to standard output and shows the pictures from the website.\n";

/* Writes a page whole: to standard output, or to `path` atomically (a temporary file renamed in). */
static int write_output(const char *path, const char *data, size_t size) {
        if (path)
                return write_file_atomic(path, data, size, 0644);
        if (fwrite(data, 1, size, stdout) != size || fflush(stdout) != 0)
                return -EIO;
        return 0;
}

static int usage_error(const char *command, const char *format, ...) _printf_(2, 3);
static int usage_error(const char *command, const char *format, ...) {
        va_list ap;

        fputs("prakat: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fprintf(stderr, "\nSee prakat %s --help.\n", command);
        return EX_USAGE;
}

static bool is_directory(const char *path) {
        struct stat st;
        return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The period of --fiscal-year or --from/--to (the current fiscal year by default); EX_OK or EX_USAGE. */
static int report_period_of(const Options *o, ReportPeriod *ret) {
        const char *bad = NULL;
        int r;

        if (o->fiscal_year) {
                if (report_period_fiscal_year(o->fiscal_year, ret) < 0)
                        return usage_error("report", "--fiscal-year '%s' is not a year. Write the Buddhist Era "
                                           "year, e.g. --fiscal-year 2568 (1 October 2567 - 30 September 2568).",
                                           o->fiscal_year);
                return EX_OK;
        }
        if (!o->from) {
                report_period_current_fiscal_year(clock_now(), ret);
                return EX_OK;
        }
        r = report_period_range(o->from, o->to, ret, &bad);
        if (r == -EINVAL)
                return usage_error("report", "%s '%s' is not a date. Write e.g. 2024-10-01, 1/10/2567 or "
                                   "1 ต.ค. 2567.", bad == o->from ? "--from" : "--to", bad);
        if (r < 0)
                return usage_error("report", "--from %s is not before --to %s: the period is empty.", o->from,
                                   o->to);
        return EX_OK;
}

/* Renders one format of the report into memory and writes it to `path` (NULL: standard output). */
static int report_output(const Report *report, bool csv, const char *path) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&data, &size);
        int r;

        if (!f)
                return -ENOMEM;
        r = csv ? report_write_csv(report, f) : report_write_html(report, f);
        if (fclose(f) != 0 && r >= 0)
                r = -EIO;
        if (r >= 0)
                r = write_output(path, data, size);
        if (r < 0)
                fprintf(stderr, "prakat: cannot write the report to %s: %s\n", path ?: "standard output", strerror(-r));
        return r;
}

/* Loads the period's announcements and writes the report where -o says; returns an exit status. */
static int report_run(const Options *o, const Config *config, const ReportPeriod *period) {
        _cleanup_free_ char *html_path = NULL, *csv_path = NULL, *text = NULL;
        Report *report = NULL;
        int r;

        r = report_load(config, period, &report);
        if (r < 0) {
                fprintf(stderr, "prakat: cannot read %s: %s\n", config->state, strerror(-r));
                return EX_IOERR;
        }
        if (is_directory(o->output)) {
                html_path = path_join(o->output, "report.html");
                csv_path = path_join(o->output, "report.csv");
                r = report_output(report, false, html_path);
                if (r >= 0)
                        r = report_output(report, true, csv_path);
        } else {
                bool csv = o->format ? streq(o->format, "csv") : o->output && endswith_nocase(o->output, ".csv");
                r = report_output(report, csv, o->output);
        }
        if (r >= 0 && o->output) {
                text = report_period_text(period);
                printf("%s%s%s: %zu ประกาศ / announcements, %s\n", html_path ?: o->output, csv_path ? ", " : "",
                       csv_path ?: "", report->n_items, text);
        }
        report_free(report);
        return r < 0 ? EX_CANTCREAT : EX_OK;
}

static int cmd_report(const Options *o, int argc, char **argv) {
        Config *config = NULL;
        ReportPeriod period;
        int r;

        if (argc > 0)
                return usage_error("report", "report takes no argument '%s'.", argv[0]);
        if (o->fiscal_year && (o->from || o->to))
                return usage_error("report", "--fiscal-year and --from/--to each choose the period: give one.");
        if (!o->from != !o->to)
                return usage_error("report", "--from and --to go together, e.g. --from 1/10/2567 --to 31/12/2567.");
        if (o->format && !streq(o->format, "html") && !streq(o->format, "csv"))
                return usage_error("report", "--format %s: the report is written as html or csv.", o->format);
        if (o->month)
                return usage_error("report", "--month belongs to prakat digest; the report takes --from and --to.");
        if ((r = load_config(o, &config)))
                return r;
        r = report_period_of(o, &period);
        if (r == EX_OK)
                r = report_run(o, config, &period);
        config_free(config);
        return r;
}

/* Where the digest goes: -o DIR names the file after the month; pictures go to NAME_files/ beside it. */
static void digest_paths(const Options *o, const ReportPeriod *period, char **ret_html, char **ret_files) {
        char day[16];
        int year = 0, month = 0;

        *ret_html = *ret_files = NULL;
        if (!o->output)
                return;
        thaidate_format_day(period->from, false, day, sizeof day);
        (void) sscanf(day, "%d-%d", &year, &month);
        *ret_html = is_directory(o->output) ? xasprintf("%s/digest-%04d-%02d.html", o->output, year + 543, month) :
                                              xstrdup(o->output);
        size_t n = strlen(*ret_html);
        if (endswith_nocase(*ret_html, ".html"))
                n -= 5;
        else if (endswith_nocase(*ret_html, ".htm"))
                n -= 4;
        *ret_files = xasprintf("%.*s_files", (int) n, *ret_html);
}

/* Loads the month's announcements and writes the newsletter where -o says; returns an exit status. */
static int digest_run(const Options *o, const Config *config, const ReportPeriod *period) {
        _cleanup_free_ char *html_path = NULL, *files_dir = NULL, *data = NULL;
        Report *report = NULL;
        size_t size = 0, n = 0;
        FILE *f;
        int r;

        r = report_load(config, period, &report);
        if (r < 0) {
                fprintf(stderr, "prakat: cannot read %s: %s\n", config->state, strerror(-r));
                return EX_IOERR;
        }
        digest_paths(o, period, &html_path, &files_dir);
        f = open_memstream(&data, &size);
        if (f) {
                const char *slash = files_dir ? strrchr(files_dir, '/') : NULL;
                r = digest_write_html(report, f, files_dir, slash ? slash + 1 : files_dir, &n);
                if (fclose(f) != 0 && r >= 0)
                        r = -EIO;
        } else
                r = -ENOMEM;
        if (r >= 0)
                r = write_output(html_path, data, size);
        if (r < 0)
                fprintf(stderr, "prakat: cannot write the digest to %s: %s\n", html_path ?: "standard output",
                        strerror(-r));
        else if (html_path)
                printf("%s: %zu ประกาศ / announcements\n", html_path, n);
        report_free(report);
        return r < 0 ? EX_CANTCREAT : EX_OK;
}

static int cmd_digest(const Options *o, int argc, char **argv) {
        Config *config = NULL;
        ReportPeriod period;
        int r;

        if (argc > 0)
                return usage_error("digest", "digest takes no argument '%s'.", argv[0]);
        if (!o->month)
                return usage_error("digest", "which month? Give --month, e.g. --month 2569-11.");
        if (o->fiscal_year || o->from || o->to || o->format)
                return usage_error("digest", "the digest is one month (--month) of HTML; --fiscal-year, --from, "
                                   "--to and --format belong to prakat report.");
        if ((r = load_config(o, &config)))
                return r;
        if (report_period_month(o->month, &period) < 0)
                r = usage_error("digest", "--month '%s' is not a month. Write e.g. 2569-11 or 2026-11.", o->month);
        else
                r = digest_run(o, config, &period);
        config_free(config);
        return r;
}

/*
 * site sync [--channel NAME]: the website channel forgets what it believes the host has and
 * uploads every file of its output again (first install, or a host that lost files).  The daemon
 * does the uploads; this only asks, and says where to watch.
 */
static int cmd_site(const Options *o, int argc, char **argv) {
        Config *config = NULL;
        json_t *reply = NULL, *channels;
        int r;

        if (argc != 1 || !streq(argv[0], "sync")) {
                fprintf(stderr, "Usage: prakat site sync [--channel NAME]\n");
                return EX_USAGE;
        }
        if ((r = load_config(o, &config)))
                return r;
        r = control_call(config->runtime_dir,
                         json_pack("{s:s, s:s, s:s?}", "command", "channel-command", "action", "site-sync", "channel",
                                   o->channel),
                         10000, &reply);
        if (r < 0) {
                int k = control_refused(config, r);
                config_free(config);
                if (k)
                        return k;
                fprintf(stderr, "prakat: prakatd is not running (%s), and site sync needs it: it does the uploads. "
                                "Start it and try again.\n", strerror(-r));
                return EX_UNAVAILABLE;
        }
        config_free(config);
        channels = json_object_get(reply, "channels");
        if (o->json)
                print_json(reply);
        else if (!channels)
                fprintf(stderr, "prakat: %s / %s (set upload = in a website channel)\n",
                        json_string_value(json_object_get(reply, "error_th")),
                        json_string_value(json_object_get(reply, "error")));
        for (size_t i = 0; !o->json && i < json_array_size(channels); i++) {
                json_t *ch = json_array_get(channels, i);
                fprintf(json_is_true(json_object_get(ch, "ok")) ? stdout : stderr, "%s: %s\n",
                        json_string_value(json_object_get(ch, "name")), json_string_value(json_object_get(ch, "reply")));
        }
        r = json_is_true(json_object_get(reply, "ok")) ? EX_OK : EX_UNAVAILABLE;
        json_decref(reply);
        return r;
}

static void help(void) {
        printf("Usage: prakat [--config FILE] COMMAND [ARGS]\n\n"
               "Commands:\n"
               "  validate FILE...   check announcements before dropping them (exit 0 only if all are valid)\n"
               "  list [--all]       announcements not yet finished (--all: every one)\n"
               "  show ID            one announcement: each channel's state, links, errors, next try\n"
               "  status             the daemon, the queue, and each channel's health\n"
               "  retry ID [--channel C]   try again now (also a failed or unconfirmed channel)\n"
               "  hold ID / release ID     stop / resume an announcement's pending jobs\n"
               "  cancel ID [--reason TEXT] withdraw it, honestly per channel (drops a Cancel: file)\n"
               "  submit FILE|FOLDER       drop a file or bundle into incoming/ atomically\n"
               "  approve ID / reject ID --reason TEXT   the approval gate (require_approval = yes)\n"
               "  report [--fiscal-year YEAR | --from DATE --to DATE] [--format html|csv] [-o FILE|DIR]\n"
               "                     what was published in a period (ITA evidence); prakat report --help\n"
               "  digest --month MONTH [-o FILE|DIR]   the printable monthly newsletter; prakat digest --help\n"
               "  site sync [--channel C]  upload the whole website again to the host of upload =\n\n"
               "Options:\n"
               "  -c, --config FILE  configuration (default %s)\n"
               "      --json         machine-readable output for list, show and status\n"
               "  -h, --help         this help\n",
               PRAKAT_CONFIG);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' }, { "json", no_argument, NULL, 'j' },
                { "all", no_argument, NULL, 'a' },          { "help", no_argument, NULL, 'h' },
                { "channel", required_argument, NULL, 'C' }, { "reason", required_argument, NULL, 'r' },
                { "fiscal-year", required_argument, NULL, 'Y' }, { "from", required_argument, NULL, 'F' },
                { "to", required_argument, NULL, 'T' },          { "format", required_argument, NULL, 'f' },
                { "output", required_argument, NULL, 'o' },      { "month", required_argument, NULL, 'M' },
                {},
        };
        static const struct {
                const char *name;
                int (*fn)(const Options *o, int argc, char **argv);
                const char *help; /* its own --help; NULL: the general one */
        } commands[] = {
                { "validate", cmd_validate, NULL }, { "list", cmd_list, NULL },
                { "show", cmd_show, NULL },         { "status", cmd_status, NULL },
                { "retry", cmd_retry, NULL },       { "hold", cmd_hold, NULL },
                { "release", cmd_release, NULL },   { "submit", cmd_submit, NULL },
                { "cancel", cmd_cancel, NULL },     { "approve", cmd_approve, NULL },
                { "reject", cmd_reject, NULL },     { "report", cmd_report, report_help },
                { "digest", cmd_digest, digest_help }, { "site", cmd_site, NULL },
        };
        Options o = { .config = PRAKAT_CONFIG };
        int c;

        log_open("prakat");
        log_set_max_level(LOG_ERR);
        if (clock_init() < 0) {
                fprintf(stderr, "prakat: PRAKAT_NOW must look like 2026-11-25T03:00:00Z.\n");
                return EX_USAGE;
        }
        /* GNU getopt permutes: options may come before or after the command ("prakat list --json"). */
        while ((c = getopt_long(argc, argv, "c:ho:", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        o.config = optarg;
                        break;
                case 'j':
                        o.json = true;
                        break;
                case 'a':
                        o.all = true;
                        break;
                case 'C':
                        o.channel = optarg;
                        break;
                case 'r':
                        o.reason = optarg;
                        break;
                case 'Y':
                        o.fiscal_year = optarg;
                        break;
                case 'F':
                        o.from = optarg;
                        break;
                case 'T':
                        o.to = optarg;
                        break;
                case 'f':
                        o.format = optarg;
                        break;
                case 'o':
                        o.output = optarg;
                        break;
                case 'M':
                        o.month = optarg;
                        break;
                case 'h':
                        o.help = true;
                        break;
                default:
                        return EX_USAGE;
                }
        if (optind >= argc) {
                help();
                return o.help ? EX_OK : EX_USAGE;
        }
        const char *command = argv[optind];
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                if (!streq(command, commands[i].name))
                        continue;
                if (o.help) {
                        if (commands[i].help)
                                fputs(commands[i].help, stdout);
                        else
                                help();
                        return EX_OK;
                }
                return commands[i].fn(&o, argc - optind - 1, argv + optind + 1);
        }
        fprintf(stderr, "prakat: unknown command '%s'. See prakat --help.\n", command);
        return EX_USAGE;
}
