/* SPDX-License-Identifier: MIT */
/*
 * report: what went out in a period, read from the state files (STATE/queue and STATE/done, the same
 * reader as `prakat list`), so it works whether prakatd runs or not and never changes anything.
 *
 * One loader selects and orders the period's announcements; two writers turn them into the ITA evidence
 * report (DESIGN §7: printable A4 HTML in Thai with Buddhist Era dates, and a CSV for spreadsheets), and
 * digest.c turns the same selection into the monthly newsletter.
 */
#pragma once

#include <stdio.h>

#include "config.h"
#include "queue.h"

/* A half-open period [from, to) of UTC instants, with how people call it. */
typedef struct ReportPeriod {
        usec_t from, to;
        unsigned fiscal_year; /* Buddhist Era, when the period is a fiscal year; else 0 */
} ReportPeriod;

/*
 * Thai fiscal year `text` (1 October – 30 September, local time): "2568" (Buddhist Era, also in Thai
 * digits) or "2025" (Common Era, the year it ends in: the same fiscal year).
 * Returns 0, or -EINVAL when it is not such a year.
 */
int report_period_fiscal_year(const char *text, ReportPeriod *ret);
/*
 * --from and --to: dates (or date-times) as an announcement's Publish-At accepts them (thaidate_parse).
 * A `to` without a time means the whole of that day.  Returns 0, -EINVAL when one is not a date
 * (*ret_bad says which), -ERANGE when `from` is not before `to`.
 */
int report_period_range(const char *from, const char *to, ReportPeriod *ret, const char **ret_bad);
/* A month: "2569-11" or "2026-11", "11/2569", "พฤศจิกายน 2569", "พ.ย. 2569". Returns 0 or -EINVAL. */
int report_period_month(const char *text, ReportPeriod *ret);
/* The current fiscal year at `now`. */
void report_period_current_fiscal_year(usec_t now, ReportPeriod *ret);

/* How a tower job went, village by village, read from its note (channels/tower/README.md, "outcome"). */
typedef enum TowerResult {
        TOWER_RESULT_PLAYED,
        TOWER_RESULT_FAILED,
        TOWER_RESULT_UNCONFIRMED,
        TOWER_RESULT_OTHER, /* scheduled, skipped, withdrawn, still waiting: not a play */
        _TOWER_RESULT_MAX,
} TowerResult;

typedef struct ReportChannel {
        char *name;       /* the channel instance, as in jobs.json */
        const char *kind; /* its plugin: website, facebook, line, tower, or "" when no longer configured */
        size_t counts[_JOB_STATE_MAX];  /* announcements of the period per job state */
        size_t village_plays;           /* tower: villages that played an announcement, summed */
} ReportChannel;

typedef struct ReportItem {
        const Entry *entry;
        usec_t published;     /* first channel that finished done; else the announcement's Publish-At */
        const Entry *withdrawn_by; /* the Cancel: announcement that withdrew it, or the one that replaced it */
        bool replaced;
} ReportItem;

typedef struct Report {
        const Config *config;
        ReportPeriod period;
        const char *office;     /* the website channel's office_name, else its site_title, else "" */
        const char *site_url;   /* the website channel's base_url, or NULL */
        Entry **entries;        /* everything in the state, owned */
        size_t n_entries;
        ReportItem *items;      /* the period's announcements, oldest first */
        size_t n_items;
        ReportChannel *channels; /* every channel used in the period, in config order, then others */
        size_t n_channels;
        /* per village number: how many of the period's announcements its tower played, failed, did not confirm */
        size_t village_counts[VILLAGE_MAX + 1][_TOWER_RESULT_MAX];
        bool has_towers;
} Report;

/*
 * Reads every announcement in config->state and selects the period's: those not withdrawing another
 * (Cancel:), not waiting for or refused approval, with at least one channel that tried to send, and
 * published (see ReportItem.published) inside the period.  Returns 0, or a negative errno when the
 * state folder cannot be read.
 */
int report_load(const Config *config, const ReportPeriod *period, Report **ret);
void report_free(Report *r);

const char *report_channel_kind_thai(const char *kind);
/* The villages of a tower job's note in one result, as a list ("1, 2, 3, 5"); "" when none.  Malloc'd. */
char *report_tower_villages(const Job *j, TowerResult result);
/* "ปีงบประมาณ พ.ศ. 2568 (1 ตุลาคม 2567 – 30 กันยายน 2568)" or "1 ตุลาคม 2567 – 31 ธันวาคม 2567". Malloc'd. */
char *report_period_text(const ReportPeriod *p);

/* Writes s with &, <, >, " and ' escaped for HTML text and attribute values. */
void html_put_text(FILE *f, const char *s);
/* The common head of prakat's printable pages: doctype, charset, title, A4 print CSS plus `css`. */
void html_put_head(FILE *f, const char *title, const char *css);

/* The report as an A4 HTML page, or as CSV (see report.c).  Return 0, or -EIO when writing to f failed. */
int report_write_html(const Report *r, FILE *f);
int report_write_csv(const Report *r, FILE *f);
