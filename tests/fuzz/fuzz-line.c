/* SPDX-License-Identifier: MIT */
/*
 * The LINE channel's reading of answers (the four channels/line/ sources, included whole as tests/unit/test-line.c
 * does, with tests/unit/fake-host.h as the host): the classification of a status and body, the
 * one-line description of LINE's error body, the text cleaning, and a retry-key record read back
 * from disk.  The input is "STATUS\n" then the body.
 */
#include "fuzz.h"
#include "fuzz-file.h"
#include "line/line-message.c"
#include "line/line-state.c"
#include "line/line-text.c"
#include "line/line.c"
#include "fake-host.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static FakeHost fake;
        static bool initialised;
        char *text = fuzz_string(data, size), answer[640];
        const char *nl = memchr(data, '\n', size);
        size_t skip = nl ? (size_t) (nl - (const char *) data) + 1 : 0;
        prakat_http_response resp = { .status = strtol(text, NULL, 10) };
        Line l = { .api_base = (char *) "https://api.line.me", .timeout = DEFAULT_TIMEOUT };
        LineKey key;

        if (!initialised) {
                fake_host_init(&fake, "/nonexistent");
                fake.quiet = true;
                initialised = true;
        }
        l.host = &fake.host;
        /* The body as the core gives it: NUL-terminated, body_size without the NUL. */
        char *body = malloc(size - skip + 1);
        FUZZ_CHECK(body);
        memcpy(body, data + skip, size - skip);
        body[size - skip] = 0;
        resp.body = body;
        resp.body_size = size - skip;
        if (resp.status < 0)
                resp.error = (int) (resp.status % 200), resp.status = 0;

        AnswerKind kind = answer_classify(&l, &resp, answer, sizeof answer);
        FUZZ_CHECK(kind <= ANSWER_NOT_REACHED && memchr(answer, 0, sizeof answer));
        char *clean = line_text_clean(text);
        free(clean);

        (void) line_key_load(fuzz_file(data, size), &key);
        free(body);
        free(text);
        return 0;
}
