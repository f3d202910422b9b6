/*
 * State save/load and failed calls through the C API, built and run by tests/c_api.rs.
 *
 * Resume: K steps + save + load into a fresh handle + N-K steps gives parameters bit-identical
 * to N straight steps (in memory and through files, f32 and f64). Failed calls: every refused
 * call returns its status, says what was wrong, and leaves the parameters and a state blob
 * saved before and after byte-identical.
 */

#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 12
#define STEPS 24

/* Gradient of f(x) = 0.5 sum (i+1) (x_i - 1)^2 plus a deterministic wobble per step. */
static void gradient(int step, const double *x, double *g)
{
    int i;
    for (i = 0; i < N; i++) {
        g[i] = (double)(i + 1) * (x[i] - 1.0) + 0.1 * sin(0.7 * step + i);
    }
}

/* One step in the optimizer's dtype; x and g are kept in double and converted for f32. */
static lre_status step(lre_optimizer_t *opt, int is_f64, double *x, const double *g)
{
    float xf[N], gf[N];
    lre_status s;
    int i;
    if (is_f64) {
        return lre_optimizer_step_f64(opt, x, g, NULL, NULL);
    }
    for (i = 0; i < N; i++) {
        xf[i] = (float)x[i];
        gf[i] = (float)g[i];
    }
    s = lre_optimizer_step_f32(opt, xf, gf, NULL, NULL);
    for (i = 0; i < N; i++) {
        x[i] = (double)xf[i];
    }
    return s;
}

/* Runs steps [from, to) on x. */
static void run(lre_optimizer_t *opt, int is_f64, double *x, int from, int to)
{
    double g[N];
    int t;
    for (t = from; t < to; t++) {
        gradient(t, x, g);
        CHECK_STATUS(step(opt, is_f64, x, g), LRE_OK, "step");
    }
}

static lre_optimizer_t *create(const char *spec)
{
    lre_optimizer_t *opt = NULL;
    CHECK_STATUS(lre_optimizer_new(spec, N, &opt), LRE_OK, spec);
    return opt;
}

static void test_resume(const char *spec, int is_f64, int through_file)
{
    double straight[N], resumed[N];
    lre_optimizer_t *a = create(spec), *b = NULL, *c = NULL;
    size_t len = 0;
    uint8_t *blob;
    int i, k = 9;
    if (a == NULL) {
        return;
    }
    for (i = 0; i < N; i++) {
        straight[i] = resumed[i] = 0.0;
    }
    run(a, is_f64, straight, 0, STEPS);
    lre_optimizer_free(a);

    b = create(spec);
    run(b, is_f64, resumed, 0, k);
    if (through_file) {
        const char *path = "lre_state_test.ckpt";
        CHECK_STATUS(lre_optimizer_save_file(b, path), LRE_OK, "save_file");
        c = create(spec);
        CHECK_STATUS(lre_optimizer_load_file(c, path), LRE_OK, "load_file");
        remove(path);
    } else {
        blob = snapshot(b, &len);
        CHECK(blob != NULL, "%s: snapshot", spec);
        CHECK_STATUS(lre_optimizer_from_state(blob, len, &c), LRE_OK, "from_state");
        free(blob);
    }
    lre_optimizer_free(b);
    if (c == NULL) {
        return;
    }
    run(c, is_f64, resumed, k, STEPS);
    CHECK(memcmp(straight, resumed, sizeof straight) == 0, "%s: resumed run differs (file=%d)", spec,
          through_file);
    lre_optimizer_free(c);
}

/* Remembers params and state before a call that must fail, and compares after. */
struct before {
    double x[N];
    uint8_t *blob;
    size_t len;
};

static void remember(struct before *b, const lre_optimizer_t *opt, const double *x)
{
    memcpy(b->x, x, sizeof b->x);
    b->blob = snapshot(opt, &b->len);
}

static void unchanged(struct before *b, const lre_optimizer_t *opt, const double *x, const char *what)
{
    size_t len = 0;
    uint8_t *now = snapshot(opt, &len);
    CHECK(memcmp(b->x, x, sizeof b->x) == 0, "%s: parameters changed", what);
    CHECK(now != NULL && b->blob != NULL && len == b->len && memcmp(now, b->blob, len) == 0,
          "%s: state changed", what);
    free(now);
    free(b->blob);
}

/* `call` must return `want` with a message mentioning `needle`, changing nothing. */
#define REFUSED(call, want, needle, what)                                                           \
    do {                                                                                            \
        struct before b_;                                                                           \
        remember(&b_, opt, x);                                                                      \
        CHECK_STATUS((call), (want), (what));                                                       \
        CHECK_MESSAGE((needle), (what));                                                            \
        unchanged(&b_, opt, x, (what));                                                             \
    } while (0)

static void test_failed_calls_change_nothing(void)
{
    lre_optimizer_t *opt = create("dtype=f64; update_freq=2");
    lre_optimizer_t *other = NULL;
    double x[N] = {0}, g[N];
    float xf[N] = {0}, gf[N] = {0};
    double value = 0.0, eig[1];
    size_t len = 0;
    char text[4];
    uint8_t *blob;
    uint8_t garbage[64];
    if (opt == NULL) {
        return;
    }
    run(opt, 1, x, 0, 5);
    gradient(5, x, g);

    REFUSED(lre_optimizer_step_f64(NULL, x, g, NULL, NULL), LRE_ERR_NULL_POINTER, "opt", "NULL handle");
    REFUSED(lre_optimizer_step_f64(opt, NULL, g, NULL, NULL), LRE_ERR_NULL_POINTER, "params", "NULL params");
    REFUSED(lre_optimizer_step_f64(opt, x, NULL, NULL, NULL), LRE_ERR_NULL_POINTER, "grad", "NULL grad");
    REFUSED(lre_optimizer_step_f64(opt, x, x, NULL, NULL), LRE_ERR_INVALID_ARGUMENT, "overlap",
            "params aliasing grad");
    REFUSED(lre_optimizer_step_f32(opt, xf, gf, NULL, NULL), LRE_ERR_INVALID_ARGUMENT, "f64",
            "wrong dtype entry point");
    REFUSED(lre_optimizer_get_param(opt, "step", NULL), LRE_ERR_NULL_POINTER, "value", "NULL out-pointer");
    REFUSED(lre_optimizer_spec(opt, text, sizeof text, NULL), LRE_ERR_NULL_POINTER, "len", "NULL len");
    REFUSED(lre_optimizer_spec(opt, text, sizeof text, &len), LRE_ERR_BUFFER_TOO_SMALL, "needed",
            "small spec buffer");
    REFUSED(lre_optimizer_eigenvalues(opt, eig, 0, &len), LRE_ERR_BUFFER_TOO_SMALL, "needed",
            "small eigenvalue buffer");
    REFUSED(lre_optimizer_state_save(opt, garbage, 8, &len), LRE_ERR_BUFFER_TOO_SMALL, "needs",
            "small state buffer");

    g[3] = NAN;
    REFUSED(lre_optimizer_step_f64(opt, x, g, NULL, NULL), LRE_ERR_NUMERICAL, "grad[3]", "NaN gradient");
    g[3] = -INFINITY;
    REFUSED(lre_optimizer_step_f64(opt, x, g, NULL, NULL), LRE_ERR_NUMERICAL, "grad[3]", "Inf gradient");
    g[3] = 1e200;
    REFUSED(lre_optimizer_step_f64(opt, x, g, NULL, NULL), LRE_ERR_NUMERICAL, "too large",
            "overflowing gradient");

    REFUSED(lre_optimizer_set_param(opt, "lr", -1.0), LRE_ERR_INVALID_ARGUMENT, "lr", "negative lr");
    REFUSED(lre_optimizer_set_param(opt, "lr", NAN), LRE_ERR_INVALID_ARGUMENT, "lr", "NaN lr");
    REFUSED(lre_optimizer_set_param(opt, "beta1", 1.5), LRE_ERR_INVALID_ARGUMENT, "beta1",
            "unknown parameter");
    REFUSED(lre_optimizer_set_param(opt, "step", 3.0), LRE_ERR_INVALID_ARGUMENT, "read-only",
            "read-only parameter");
    REFUSED(lre_optimizer_chain_push(opt, "ema"), LRE_ERR_CALL_ORDER, "before the first step",
            "chain_push after stepping");

    memset(garbage, 0x5a, sizeof garbage);
    REFUSED(lre_optimizer_state_load(opt, garbage, sizeof garbage), LRE_ERR_STATE, "magic", "garbage state");
    REFUSED(lre_optimizer_state_load(opt, NULL, 10), LRE_ERR_NULL_POINTER, "buf", "NULL state");
    blob = snapshot(opt, &len);
    if (blob != NULL) {
        REFUSED(lre_optimizer_state_load(opt, blob, len - 1), LRE_ERR_STATE, "checksum", "truncated state");
        free(blob);
    }
    other = create("dtype=f64; update_freq=3");
    if (other != NULL) {
        double y[N] = {0};
        run(other, 1, y, 0, 2);
        blob = snapshot(other, &len);
        if (blob != NULL) {
            REFUSED(lre_optimizer_state_load(opt, blob, len), LRE_ERR_STATE, "update_freq",
                    "state of another spec");
            free(blob);
        }
        lre_optimizer_free(other);
    }
    REFUSED(lre_optimizer_load_file(opt, "/nonexistent/lre.ckpt"), LRE_ERR_IO, "/nonexistent",
            "missing file");
    REFUSED(lre_optimizer_save_file(opt, "/nonexistent/dir/lre.ckpt"), LRE_ERR_IO, "/nonexistent",
            "unwritable file");
    CHECK_STATUS(lre_optimizer_get_param(opt, "step", &value), LRE_OK, "step");
    CHECK(value == 5.0, "step is %g after refused calls, expected 5", value);
    lre_optimizer_free(opt);
}

int main(void)
{
    static const char *specs[] = {
        "",
        "basis=ggt(history_size=4); update_freq=3; chain=[adam(amsgrad_beta=0.999), ema, l_inv_sqrt]",
        "basis=full_matrix; chain=[adam, l_inv]",
        "basis=identity; chain=[adam, clip_norm_by_ema]",
    };
    size_t i;
    char spec[256];
    check_file = "state_test.c";
    for (i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        snprintf(spec, sizeof spec, "%s; dtype=f32", specs[i]);
        test_resume(spec, 0, 0);
        test_resume(spec, 0, 1);
        snprintf(spec, sizeof spec, "%s; dtype=f64", specs[i]);
        test_resume(spec, 1, 0);
        test_resume(spec, 1, 1);
    }
    test_failed_calls_change_nothing();
    printf("C state: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
