/* SPDX-License-Identifier: MIT */
/*
 * The announcement parser (src/announcement.c) on arbitrary bytes, as the .txt and as the .json form:
 * it must refuse or accept without crashing, a refusal must carry both messages and format into an
 * error file, and what it accepts must survive the durable form (to JSON and back).
 */
#include "announcement.h"
#include "fuzz-file.h"

static const char config_text[] =
        "[prakat]\nspool = /nonexistent/spool\nstate = /nonexistent/state\nmax_attachments = 3\n"
        "[villages]\n1 = บ้านบ่อแก้ว\n2 = บ้านโนนสวรรค์\n3 = บ้านหนองบัว\n12 = บ้านดอนแดง\n"
        "[channel website]\nplugin = website\n[channel facebook]\nplugin = facebook\nenabled = no\n"
        "[channel line]\nplugin = line\n";

static const Config *fuzz_config(void) {
        static Config *config;
        char *error = NULL;

        if (config)
                return config;
        if (config_load(fuzz_file((const uint8_t *) config_text, sizeof config_text - 1), &config, &error) < 0) {
                fprintf(stderr, "fuzz config: %s\n", error);
                abort();
        }
        return config;
}

static void check_outcome(int r, Announcement *a, ParseError *e, usec_t now) {
        if (r < 0) {
                FUZZ_CHECK(!a);
                FUZZ_CHECK(e->th && e->en);
                char *text = parse_error_format(e, "fuzz.txt", now);
                FUZZ_CHECK(text && strstr(text, e->en));
                free(text);
                parse_error_done(e);
                return;
        }
        FUZZ_CHECK(a && a->title && a->body && announcement_id_valid(a->id));
        FUZZ_CHECK(a->n_channels > 0 && a->repeat >= 1 && a->repeat <= 10);
        json_t *j = announcement_to_json(a);
        Announcement *back = NULL;
        FUZZ_CHECK(announcement_from_json(j, &back) == 0);
        FUZZ_CHECK(strcmp(back->title, a->title) == 0 && strcmp(back->body, a->body) == 0);
        FUZZ_CHECK(back->n_villages == a->n_villages && back->all_villages == a->all_villages);
        announcement_free(back);
        json_decref(j);
        announcement_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* 2026-11-25 10:00 +07:00 */
        ParseContext ctx = { .config = fuzz_config(), .now = UINT64_C(1764039600) * 1000000 };
        ParseError e = {};
        Announcement *a = NULL;
        int r;

        r = announcement_parse_text(&ctx, "fuzz.txt", data, size, NULL, &a, &e);
        check_outcome(r, a, &e, ctx.now);
        a = NULL;
        r = announcement_parse_json(&ctx, "fuzz.json", data, size, NULL, &a, &e);
        check_outcome(r, a, &e, ctx.now);
        return 0;
}
