// The counter recipe in C: the twin of the Rust `counter` plugin's core (the same behaviour
// test runs against both). Inputs are JSON: {"add":N} (apply) returns the new value; "get"
// (query) returns it. The value is stored as decimal text under key "n".
//
// Build (see plugins/README.md): clang-19 --target=wasm32-wasi -mexec-model=reactor -O2
//   -I ../../guest-sdk/c counter.c ../../guest-sdk/c/plugin.c
//   ../../guest-sdk/c/plugin_component_type.o -o counter.wasm
// No stdio: it would pull in WASI imports, which corral refuses.

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

static plugin_list_u8_t bytes(const char *s, size_t n) {
    plugin_list_u8_t l = {(uint8_t *)s, n};
    return l;
}

static int64_t load_counter(void) {
    plugin_list_u8_t key = bytes("n", 1);
    plugin_list_u8_t val;
    if (!corral_plugin_host_get(&key, &val)) return 0;
    int64_t n = 0;
    int neg = 0;
    for (size_t i = 0; i < val.len; i++) {
        if (i == 0 && val.ptr[i] == '-') { neg = 1; continue; }
        n = n * 10 + (val.ptr[i] - '0');
    }
    plugin_list_u8_free(&val);
    return neg ? -n : n;
}

// Decimal text of n into buf (at least 21 bytes); returns its length.
static size_t format_i64(int64_t n, char *buf) {
    char tmp[21];
    size_t len = 0;
    uint64_t u = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
    do { tmp[len++] = (char)('0' + u % 10); u /= 10; } while (u);
    size_t out = 0;
    if (n < 0) buf[out++] = '-';
    while (len) buf[out++] = tmp[--len];
    return out;
}

static void reply_number(int64_t n, plugin_list_u8_t *ret) {
    char buf[21];
    size_t len = format_i64(n, buf);
    ret->ptr = malloc(len);
    memcpy(ret->ptr, buf, len);
    ret->len = len;
}

static bool fail(plugin_string_t *err, const char *msg) {
    plugin_string_dup(err, msg);
    return false;
}

// Parse {"add":N} (no spaces, as the behaviour test and the CLI send it).
static bool parse_add(plugin_list_u8_t *in, int64_t *out) {
    const char *prefix = "{\"add\":";
    size_t p = strlen(prefix);
    if (in->len < p + 2 || memcmp(in->ptr, prefix, p) != 0 || in->ptr[in->len - 1] != '}') return false;
    size_t i = p, end = in->len - 1;
    int neg = 0;
    if (in->ptr[i] == '-') { neg = 1; i++; }
    if (i == end || end - i > 18) return false;
    int64_t n = 0;
    for (; i < end; i++) {
        if (in->ptr[i] < '0' || in->ptr[i] > '9') return false;
        n = n * 10 + (in->ptr[i] - '0');
    }
    *out = neg ? -n : n;
    return true;
}

bool exports_plugin_apply(plugin_call_context_t *ctx, plugin_list_u8_t *input, plugin_list_u8_t *ret,
                          plugin_string_t *err) {
    (void)ctx;
    int64_t d;
    if (!parse_add(input, &d)) return fail(err, "bad input: expected {\"add\":N}");
    int64_t n;
    if (__builtin_add_overflow(load_counter(), d, &n)) return fail(err, "overflow");
    char buf[21];
    size_t len = format_i64(n, buf);
    plugin_list_u8_t key = bytes("n", 1), val = bytes(buf, len);
    corral_plugin_host_put(&key, &val);
    reply_number(n, ret);
    return true;
}

bool exports_plugin_query(plugin_call_context_t *ctx, plugin_list_u8_t *input, plugin_list_u8_t *ret,
                          plugin_string_t *err) {
    (void)ctx;
    if (input->len != 5 || memcmp(input->ptr, "\"get\"", 5) != 0) return fail(err, "bad input: expected \"get\"");
    reply_number(load_counter(), ret);
    return true;
}

void exports_plugin_expire(plugin_call_context_t *ctx, uint64_t session) {
    (void)ctx;
    (void)session;
}

void exports_plugin_timer(plugin_call_context_t *ctx, plugin_list_u8_t *tag) {
    (void)ctx;
    (void)tag;
}
