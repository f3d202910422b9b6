/*
 * Stepping an optimizer whose n-sized state is the caller's memory, built and run by
 * tests/c_api.rs: the arrays come from lre_optimizer_state_layout, lre_optimizer_lend moves the
 * state there, lre_lent_step_f32 steps it bit for bit as the optimizer that owns its memory, a
 * refused step leaves arrays, small state and params byte-identical, the complete blob equals
 * the owned optimizer's, and wrong sizes are refused naming the buffer.
 */

#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 40
#define STEPS 30
#define MAX_BUFFERS 16

static void gradient(int step, const float *x, float *g)
{
    int i;
    for (i = 0; i < N; i++) {
        g[i] = (float)((i % 5 + 1) * (x[i] - 1.0) + 0.1 * sin(0.7 * step + i));
    }
}

/* The state in caller memory: the small state and one array per n-sized buffer. */
typedef struct {
    uint8_t *small;
    size_t small_len, small_cap;
    void *arrays[MAX_BUFFERS];
    size_t sizes[MAX_BUFFERS];
    size_t count;
} lent_state;

/* Allocates the arrays the layout names and moves `opt`'s state into them. */
static int lend(lre_optimizer_t *opt, lent_state *s)
{
    lre_buffer_info info[64];
    size_t len = 0, i;
    if (!CHECK(lre_optimizer_state_layout(opt, info, 64, &len) == LRE_OK, "layout")) {
        return 0;
    }
    s->count = 0;
    for (i = 0; i < len; i++) {
        if (info[i].kind == LRE_BUFFER_VECTORS && s->count < MAX_BUFFERS) {
            s->sizes[s->count] = (size_t)info[i].bytes;
            s->arrays[s->count] = calloc(1, info[i].bytes + 8);
            s->count++;
        }
    }
    CHECK_STATUS(lre_optimizer_small_state_bound(opt, &s->small_cap), LRE_OK, "small bound");
    s->small = malloc(s->small_cap);
    CHECK_STATUS(lre_optimizer_lend(opt, s->arrays, s->sizes, s->count, s->small, s->small_cap,
                                    &s->small_len),
                 LRE_OK, "lend");
    return 1;
}

static void release(lent_state *s)
{
    size_t i;
    for (i = 0; i < s->count; i++) {
        free(s->arrays[i]);
    }
    free(s->small);
}

static lre_status lent_step(lent_state *s, float *x, const float *g)
{
    size_t len = 0;
    lre_status status = lre_lent_step_f32(s->small, s->small_len, s->arrays, s->sizes, s->count,
                                          x, g, NULL, NULL, s->small, s->small_cap, &len);
    if (status == LRE_OK) {
        s->small_len = len;
    }
    return status;
}

/* A copy of every byte of the lent state (small state, then the arrays). */
static uint8_t *lent_bytes(const lent_state *s, size_t *len)
{
    size_t total = s->small_len, i, at;
    uint8_t *copy;
    for (i = 0; i < s->count; i++) {
        total += s->sizes[i];
    }
    copy = malloc(total + 1);
    memcpy(copy, s->small, s->small_len);
    at = s->small_len;
    for (i = 0; i < s->count; i++) {
        memcpy(copy + at, s->arrays[i], s->sizes[i]);
        at += s->sizes[i];
    }
    *len = total;
    return copy;
}

static void test_lent_equals_owned(const char *spec)
{
    lre_optimizer_t *owned = NULL, *source = NULL;
    lent_state s;
    float x_owned[N] = {0}, x_lent[N] = {0}, g[N], bad[N];
    size_t blob_len = 0, lent_len = 0, before_len, after_len;
    uint8_t *blob, *lent_blob, *before, *after;
    int t;
    CHECK_STATUS(lre_optimizer_new(spec, N, &owned), LRE_OK, spec);
    CHECK_STATUS(lre_optimizer_new(spec, N, &source), LRE_OK, spec);
    if (!lend(source, &s)) {
        return;
    }
    lre_optimizer_free(source);
    for (t = 0; t < STEPS; t++) {
        gradient(t, x_owned, g);
        CHECK_STATUS(lre_optimizer_step_f32(owned, x_owned, g, NULL, NULL), LRE_OK, "owned step");
        CHECK_STATUS(lent_step(&s, x_lent, g), LRE_OK, "lent step");
        CHECK(memcmp(x_owned, x_lent, sizeof x_owned) == 0, "%s: params differ at step %d", spec, t);
        if (t == STEPS / 2) {
            memcpy(bad, g, sizeof bad);
            bad[N / 2] = NAN;
            before = lent_bytes(&s, &before_len);
            memcpy(g, x_lent, sizeof g);
            CHECK_STATUS(lent_step(&s, x_lent, bad), LRE_ERR_NUMERICAL, "NaN step");
            after = lent_bytes(&s, &after_len);
            CHECK(before_len == after_len && memcmp(before, after, before_len) == 0,
                  "%s: a refused step changed the lent state", spec);
            CHECK(memcmp(g, x_lent, sizeof g) == 0, "%s: a refused step moved params", spec);
            free(before);
            free(after);
        }
    }
    lre_optimizer_state_save(owned, NULL, 0, &blob_len);
    blob = malloc(blob_len);
    CHECK_STATUS(lre_optimizer_state_save(owned, blob, blob_len, &blob_len), LRE_OK, "save");
    CHECK_STATUS(lre_lent_state_save(s.small, s.small_len, s.arrays, s.sizes, s.count, NULL, 0,
                                     &lent_len),
                 LRE_OK, "lent size");
    lent_blob = malloc(lent_len);
    CHECK_STATUS(lre_lent_state_save(s.small, s.small_len, s.arrays, s.sizes, s.count, lent_blob,
                                     lent_len, &lent_len),
                 LRE_OK, "lent save");
    CHECK(blob_len == lent_len && memcmp(blob, lent_blob, blob_len) == 0,
          "%s: the blob of the lent state differs from the owned optimizer's", spec);
    free(blob);
    free(lent_blob);
    release(&s);
    lre_optimizer_free(owned);
}

static void test_wrong_sizes_are_refused(void)
{
    const char *spec = "basis=ggt(history_size=5); chain=[adam]";
    lre_optimizer_t *opt = NULL;
    lent_state s;
    float x[N] = {0}, g[N];
    size_t before_len, after_len, len = 0;
    uint8_t *before, *after;
    CHECK_STATUS(lre_optimizer_new(spec, N, &opt), LRE_OK, spec);
    if (!lend(opt, &s)) {
        return;
    }
    CHECK(s.count == 2 && s.sizes[1] == 5 * N * sizeof(float), "pending gradients, then the window");
    gradient(0, x, g);
    CHECK_STATUS(lent_step(&s, x, g), LRE_OK, "step");
    before = lent_bytes(&s, &before_len);
    s.sizes[1] -= 4;
    CHECK_STATUS(lent_step(&s, x, g), LRE_ERR_INVALID_ARGUMENT, "short window");
    CHECK_MESSAGE("basis/window", "short window");
    s.sizes[1] += 4;
    CHECK_STATUS(lre_lent_step_f32(s.small, s.small_len, s.arrays, s.sizes, 1, x, g, NULL, NULL,
                                   s.small, s.small_cap, &len),
                 LRE_ERR_INVALID_ARGUMENT, "one array missing");
    CHECK_MESSAGE("basis/window", "one array missing");
    after = lent_bytes(&s, &after_len);
    CHECK(before_len == after_len && memcmp(before, after, before_len) == 0,
          "refused calls changed the lent state");
    free(before);
    free(after);
    release(&s);
    lre_optimizer_free(opt);
}

int main(void)
{
    check_file = "lent_test.c";
    test_lent_equals_owned("");
    test_lent_equals_owned("basis=ggt(history_size=5); chain=[adam]");
    test_lent_equals_owned("basis=eigen(rank=3); chain=[adam]");
    test_wrong_sizes_are_refused();
    printf("lent: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
