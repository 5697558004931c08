/* SPDX-License-Identifier: MIT */
/*
 * The Facebook channel's answer classification (channels/facebook/graph.c, included whole as
 * tests/unit/test-facebook.c does): any status, headers and body the Graph API (or a proxy in front of
 * it) might send.  The input is "STATUS\n", header lines "Name: value\n", a blank line, then the body.
 */
#include "fuzz.h"
#include "facebook/graph.c"
#include "fake-host.h"

#define MAX_HEADERS 8

typedef struct FuzzResponse {
        prakat_http_response response;
        char *names[MAX_HEADERS], *values[MAX_HEADERS];
        size_t n_headers;
} FuzzResponse;

static const char *fuzz_header(const prakat_http_response *response, const char *name) {
        const FuzzResponse *r = (const FuzzResponse *) response;
        for (size_t i = 0; i < r->n_headers; i++)
                if (strcasecmp(r->names[i], name) == 0)
                        return r->values[i];
        return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = malloc(size + 1), *p, *nl;
        FuzzResponse r = { .response.header = fuzz_header };
        GraphOutcome o;

        FUZZ_CHECK(text);
        memcpy(text, data, size);
        text[size] = 0;
        p = text;
        r.response.status = strtol(p, NULL, 10);
        if (r.response.status < 0)
                r.response.error = -ECONNRESET, r.response.error_text = "reset", r.response.status = 0;
        nl = memchr(p, '\n', size - (size_t) (p - text));
        p = nl ? nl + 1 : text + size;
        while (p < text + size && *p != '\n' && r.n_headers < MAX_HEADERS) {
                char *colon, *end = memchr(p, '\n', size - (size_t) (p - text));
                if (!end)
                        break;
                *end = 0;
                colon = strchr(p, ':');
                if (colon) {
                        *colon = 0;
                        r.names[r.n_headers] = p;
                        r.values[r.n_headers++] = colon + 1 + strspn(colon + 1, " ");
                }
                p = end + 1;
        }
        if (p < text + size && *p == '\n')
                p++;
        r.response.body = p;
        r.response.body_size = size - (size_t) (p - text);

        graph_classify(&r.response, &o);
        FUZZ_CHECK(o.klass <= GRAPH_PERMANENT && graph_class_name(o.klass));
        FUZZ_CHECK(memchr(o.text, 0, sizeof o.text));
        if (o.json) {
                char buffer[64];
                const char *id = graph_json_id(o.json, "id", buffer, sizeof buffer);
                const char *message = json_string_value(json_object_get(o.json, "message"));
                if (id && message) {
                        char *marker = graph_marker(NULL, id);
                        (void) graph_message_has_marker(message, marker);
                        free(marker);
                }
        }
        graph_outcome_done(&o);
        (void) graph_usage_regain(&r.response);
        free(text);
        return 0;
}
