/* SPDX-License-Identifier: MIT */
/*
 * digest: the printed monthly newsletter (วารสาร) of what went out in a month — one A4 HTML page per
 * month, for the office's printed newsletter, from the same selection as the report (report.h).
 */
#pragma once

#include <stdio.h>

#include "report.h"

/*
 * Writes the newsletter of r's period to f.  Each announcement that went out (and was not withdrawn)
 * gets its title, date, category, the first lines of its text, its first picture and its link.
 *
 * Pictures: with `files_dir`, the first picture of each announcement is copied there (the folder is
 * created when there is one) and the page refers to it as `files_href`/NAME, so the page prints from a
 * local file without the network; without it, the page refers to the website's copy by URL.  A picture
 * that cannot be copied is left out with a warning on standard error.
 *
 * Returns 0 and *ret_articles (how many announcements it holds), or -EIO when writing to f failed.
 */
int digest_write_html(const Report *r, FILE *f, const char *files_dir, const char *files_href, size_t *ret_articles);
