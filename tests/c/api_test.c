/*
 * C API test of liblre, built and run by tests/c_api.rs (`cargo test --test c_api`).
 *
 * Build by hand (from the crate root, after `cargo build`):
 *   gcc -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude tests/c/api_test.c \
 *       target/debug/liblre.a -lpthread -ldl -lm -o /tmp/lre_api_test
 * (the static library: cargo's liblre.so has the soname liblre.so.1, which only an install names)
 *
 * Every check prints what failed; the program exits non-zero if any check failed and always ends
 * with "C API: N passed, M failed".
 */

#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Optimization steps per training check, and the loss ratio they must reach. */
static int steps = 300;
static double required_drop = 0.5;

/* ---- the test problem: f(x) = 0.5 * sum d_i x_i^2, d_i log-uniform over [0.01, 100] ---- */

#define N 32

static double curvature_at(size_t i)
{
    return pow(10.0, -2.0 + 4.0 * (double)i / (double)(N - 1));
}

static double loss_f32(const float *x)
{
    double f = 0.0;
    size_t i;
    for (i = 0; i < N; i++) {
        f += 0.5 * curvature_at(i) * (double)x[i] * (double)x[i];
    }
    return f;
}

static void grad_f32(const float *x, float *g)
{
    size_t i;
    for (i = 0; i < N; i++) {
        g[i] = (float)(curvature_at(i) * (double)x[i]);
    }
}

static double loss_f64(const double *x)
{
    double f = 0.0;
    size_t i;
    for (i = 0; i < N; i++) {
        f += 0.5 * curvature_at(i) * x[i] * x[i];
    }
    return f;
}

static void grad_f64(const double *x, double *g)
{
    size_t i;
    for (i = 0; i < N; i++) {
        g[i] = curvature_at(i) * x[i];
    }
}

static void ones_f32(float *x)
{
    size_t i;
    for (i = 0; i < N; i++) {
        x[i] = 1.0f;
    }
}

static void ones_f64(double *x)
{
    size_t i;
    for (i = 0; i < N; i++) {
        x[i] = 1.0;
    }
}

/* Reads a parameter; NAN when the call fails (the failure is a failed check). */
static double get_param(const lre_optimizer_t *opt, const char *key)
{
    double v = NAN;
    char what[64];
    snprintf(what, sizeof what, "get_param(\"%s\")", key);
    if (!CHECK_STATUS(lre_optimizer_get_param(opt, key, &v), LRE_OK, what)) {
        return NAN;
    }
    return v;
}

/* ---- the tests ---- */

static void test_last_error_before_any_failure(void)
{
    const char *msg = lre_last_error_message();
    CHECK(msg != NULL, "lre_last_error_message() returned NULL before any failure");
    if (msg != NULL) {
        CHECK(msg[0] == '\0', "lre_last_error_message() before any failure is \"%s\", expected \"\"",
              msg);
    }
}

static void test_versions(void)
{
    char expected[64];
    const char *version = lre_version();
    CHECK(lre_abi_version() == LRE_ABI_VERSION, "lre_abi_version() = %u, header says %u",
          (unsigned)lre_abi_version(), (unsigned)LRE_ABI_VERSION);
    snprintf(expected, sizeof expected, "%d.%d.%d", LRE_VERSION_MAJOR, LRE_VERSION_MINOR,
             LRE_VERSION_PATCH);
    if (CHECK(version != NULL, "lre_version() returned NULL")) {
        CHECK(strcmp(version, expected) == 0, "lre_version() = \"%s\", header macros say \"%s\"",
              version, expected);
    }
}

static void test_status_strings(void)
{
    const char *strings[14];
    const char *unknown;
    int i, j;
    for (i = 0; i <= 13; i++) {
        strings[i] = lre_status_string(i);
        if (CHECK(strings[i] != NULL, "lre_status_string(%d) returned NULL", i)) {
            CHECK(strings[i][0] != '\0', "lre_status_string(%d) is empty", i);
        }
    }
    for (i = 0; i <= 13; i++) {
        for (j = i + 1; j <= 13; j++) {
            if (strings[i] != NULL && strings[j] != NULL) {
                CHECK(strcmp(strings[i], strings[j]) != 0,
                      "lre_status_string(%d) and lre_status_string(%d) are both \"%s\"", i, j,
                      strings[i]);
            }
        }
        if (strings[i] != NULL) {
            CHECK(strcmp(strings[i], "unknown status") != 0,
                  "lre_status_string(%d) is \"unknown status\" for a valid code", i);
        }
    }
    unknown = lre_status_string(999);
    CHECK(unknown != NULL && strcmp(unknown, "unknown status") == 0,
          "lre_status_string(999) = \"%s\", expected \"unknown status\"", unknown ? unknown : "(NULL)");
    unknown = lre_status_string(-1);
    CHECK(unknown != NULL && strcmp(unknown, "unknown status") == 0,
          "lre_status_string(-1) = \"%s\", expected \"unknown status\"", unknown ? unknown : "(NULL)");
}

static void test_default_optimizer(void)
{
    lre_optimizer_t *opt = NULL;
    float x[N], g[N];
    double f0, f, v, eig[N];
    size_t rank, len, i;
    int step;

    if (!CHECK_STATUS(lre_optimizer_new(NULL, N, &opt), LRE_OK, "lre_optimizer_new(NULL, 32)")) {
        return;
    }
    CHECK(opt != NULL, "lre_optimizer_new returned LRE_OK but *out_opt is NULL");
    if (opt == NULL) {
        return;
    }
    v = get_param(opt, "rank");
    CHECK(v == 0.0, "rank before the first step = %g, expected 0", v);

    ones_f32(x);
    f0 = loss_f32(x);
    for (step = 0; step < steps; step++) {
        lre_status s;
        grad_f32(x, g);
        s = lre_optimizer_step_f32(opt, x, g, NULL, NULL);
        if (!CHECK_STATUS(s, LRE_OK, "default f32 optimizer step")) {
            fprintf(stderr, "  (at step %d)\n", step);
            lre_optimizer_free(opt);
            return;
        }
    }
    f = loss_f32(x);
    CHECK(f == f && f < required_drop * f0, "default f32 optimizer: loss %g after %d steps, initial %g (need < %g)",
          f, steps, f0, required_drop * f0);
    printf("default f32 optimizer: loss %g -> %g in %d steps\n", f0, f, steps);

    v = get_param(opt, "step");
    CHECK(v == (double)steps, "get_param(\"step\") = %g, expected %d", v, steps);
    v = get_param(opt, "ndim");
    CHECK(v == (double)N, "get_param(\"ndim\") = %g, expected %d", v, N);
    v = get_param(opt, "rank");
    if (!CHECK(v > 0.0 && v <= (double)N && v == floor(v), "get_param(\"rank\") = %g, expected 1..%d",
               v, N)) {
        lre_optimizer_free(opt);
        return;
    }
    rank = (size_t)v;

    len = (size_t)-1;
    if (CHECK_STATUS(lre_optimizer_eigenvalues(opt, NULL, 0, &len), LRE_OK, "eigenvalues size query")) {
        CHECK(len == rank, "eigenvalues size query: len = %zu, rank = %zu", len, rank);
    }
    if (len == rank) {
        size_t got = (size_t)-1;
        for (i = 0; i < N; i++) {
            eig[i] = -12345.0;
        }
        if (CHECK_STATUS(lre_optimizer_eigenvalues(opt, eig, rank, &got), LRE_OK, "eigenvalues fetch")) {
            CHECK(got == rank, "eigenvalues fetch: len = %zu, expected %zu", got, rank);
            for (i = 0; i < rank; i++) {
                CHECK(eig[i] > 0.0 && isfinite(eig[i]), "eigenvalue %zu = %g is not positive", i, eig[i]);
                if (i > 0) {
                    CHECK(eig[i - 1] <= eig[i], "eigenvalues not ascending: [%zu] = %g > [%zu] = %g",
                          i - 1, eig[i - 1], i, eig[i]);
                }
            }
            for (i = rank; i < N; i++) {
                CHECK(eig[i] == -12345.0, "eigenvalues wrote past len: [%zu] = %g", i, eig[i]);
            }
        }
        if (rank > 1) {
            size_t keep = 777;
            CHECK_STATUS(lre_optimizer_eigenvalues(opt, eig, rank - 1, &keep), LRE_ERR_BUFFER_TOO_SMALL,
                         "eigenvalues with cap = rank - 1");
            CHECK(keep == 777, "eigenvalues with a too-small buffer wrote len = %zu", keep);
        }
    }
    lre_optimizer_free(opt);
}

static void test_spec_text(void)
{
    lre_optimizer_t *opt = NULL;
    size_t len = (size_t)-1, len2 = (size_t)-1, keep = 777;
    char *buf;
    char small[4] = {'x', 'x', 'x', 'x'};

    if (!CHECK_STATUS(lre_optimizer_new(NULL, N, &opt), LRE_OK, "lre_optimizer_new for spec")) {
        return;
    }
    if (!CHECK_STATUS(lre_optimizer_spec(opt, NULL, 0, &len), LRE_OK, "spec size query")) {
        lre_optimizer_free(opt);
        return;
    }
    CHECK(len > 0 && len < 100000, "spec size query: len = %zu", len);
    buf = (char *)malloc(len + 1);
    if (buf == NULL) {
        CHECK(0, "malloc failed");
        lre_optimizer_free(opt);
        return;
    }
    memset(buf, 'x', len + 1);
    if (CHECK_STATUS(lre_optimizer_spec(opt, buf, len + 1, &len2), LRE_OK, "spec fetch")) {
        CHECK(len2 == len, "spec fetch: len = %zu, size query said %zu", len2, len);
        CHECK(buf[len] == '\0' && strlen(buf) == len, "spec fetch: text is not NUL-terminated at len %zu",
              len);
        CHECK(strstr(buf, "basis=ggt(") != NULL, "spec \"%s\" lacks \"basis=ggt(\"", buf);
        CHECK(strstr(buf, "lr=0.01") != NULL, "spec \"%s\" lacks \"lr=0.01\"", buf);
        printf("default spec: %s\n", buf);
    }
    free(buf);

    CHECK_STATUS(lre_optimizer_spec(opt, small, sizeof small, &keep), LRE_ERR_BUFFER_TOO_SMALL,
                 "spec with cap 4");
    CHECK(keep == 777, "spec with a too-small buffer wrote len = %zu", keep);
    CHECK(memcmp(small, "xxxx", 4) == 0, "spec with a too-small buffer wrote into it");

    CHECK_STATUS(lre_optimizer_spec(opt, NULL, 0, NULL), LRE_ERR_NULL_POINTER, "spec with len NULL");
    CHECK_STATUS(lre_optimizer_spec(NULL, NULL, 0, &len), LRE_ERR_NULL_POINTER, "spec with opt NULL");
    lre_optimizer_free(opt);
}

static void test_bad_spec(void)
{
    lre_optimizer_t *opt = NULL;
    CHECK_STATUS(lre_optimizer_new("basis=nonsense", 4, &opt), LRE_ERR_SPEC, "basis=nonsense");
    CHECK(opt == NULL, "a failed lre_optimizer_new wrote *out_opt");
    CHECK_MESSAGE("nonsense", "basis=nonsense");
    CHECK_MESSAGE("ggt", "basis=nonsense (lists the valid bases)");
    lre_optimizer_free(opt);

    opt = NULL;
    CHECK_STATUS(lre_optimizer_new("basis=full_matrix", 2000, &opt), LRE_ERR_UNSUPPORTED,
                 "basis=full_matrix above n = 1024");
    CHECK(opt == NULL, "a failed lre_optimizer_new wrote *out_opt");
    CHECK_MESSAGE("1024", "basis=full_matrix above n = 1024");
    lre_optimizer_free(opt);

    opt = NULL;
    CHECK_STATUS(lre_optimizer_new(NULL, 0, &opt), LRE_ERR_INVALID_ARGUMENT, "ndim = 0");
    CHECK(opt == NULL, "a failed lre_optimizer_new wrote *out_opt");
    lre_optimizer_free(opt);
}

static void test_null_pointers(void)
{
    lre_optimizer_t *opt = NULL;
    float x[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    float g[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    double v;

    CHECK_STATUS(lre_optimizer_step_f32(NULL, x, g, NULL, NULL), LRE_ERR_NULL_POINTER, "step with opt NULL");
    CHECK_MESSAGE("opt", "step with opt NULL");
    CHECK_STATUS(lre_optimizer_step_f64(NULL, NULL, NULL, NULL, NULL), LRE_ERR_NULL_POINTER,
                 "step_f64 with opt NULL");

    CHECK_STATUS(lre_optimizer_new(NULL, 4, NULL), LRE_ERR_NULL_POINTER, "new with out_opt NULL");
    lre_optimizer_free(NULL);
    CHECK(1, "lre_optimizer_free(NULL) returned");

    if (!CHECK_STATUS(lre_optimizer_new(NULL, 4, &opt), LRE_OK, "lre_optimizer_new(NULL, 4)")) {
        return;
    }
    CHECK_STATUS(lre_optimizer_step_f32(opt, NULL, g, NULL, NULL), LRE_ERR_NULL_POINTER,
                 "step with params NULL");
    CHECK_MESSAGE("params", "step with params NULL");
    CHECK_STATUS(lre_optimizer_step_f32(opt, x, NULL, NULL, NULL), LRE_ERR_NULL_POINTER,
                 "step with grad NULL");
    CHECK_MESSAGE("grad", "step with grad NULL");
    v = get_param(opt, "step");
    CHECK(v == 0.0, "failed steps were counted: step = %g", v);

    CHECK_STATUS(lre_optimizer_get_param(opt, "lr", NULL), LRE_ERR_NULL_POINTER, "get_param value NULL");
    CHECK_STATUS(lre_optimizer_get_param(opt, NULL, &v), LRE_ERR_NULL_POINTER, "get_param key NULL");
    CHECK_STATUS(lre_optimizer_set_param(opt, NULL, 1.0), LRE_ERR_NULL_POINTER, "set_param key NULL");
    CHECK_STATUS(lre_optimizer_chain_push(opt, NULL), LRE_ERR_NULL_POINTER, "chain_push component NULL");
    CHECK_STATUS(lre_optimizer_chain_push(NULL, "adam"), LRE_ERR_NULL_POINTER, "chain_push opt NULL");
    CHECK_STATUS(lre_optimizer_eigenvalues(opt, NULL, 0, NULL), LRE_ERR_NULL_POINTER, "eigenvalues len NULL");
    lre_optimizer_free(opt);
}

static void test_wrong_dtype(void)
{
    lre_optimizer_t *opt = NULL;
    float x[N], xcopy[N], g[N];
    double xd[N], xdcopy[N], gd[N];

    if (CHECK_STATUS(lre_optimizer_new("dtype=f64", N, &opt), LRE_OK, "lre_optimizer_new(\"dtype=f64\")")) {
        ones_f32(x);
        grad_f32(x, g);
        memcpy(xcopy, x, sizeof x);
        CHECK_STATUS(lre_optimizer_step_f32(opt, x, g, NULL, NULL), LRE_ERR_INVALID_ARGUMENT,
                     "step_f32 on an f64 optimizer");
        CHECK_MESSAGE("f64", "step_f32 on an f64 optimizer");
        CHECK(memcmp(x, xcopy, sizeof x) == 0, "step_f32 on an f64 optimizer changed the parameters");
        CHECK(get_param(opt, "step") == 0.0, "step_f32 on an f64 optimizer counted a step");
        lre_optimizer_free(opt);
    }

    opt = NULL;
    if (CHECK_STATUS(lre_optimizer_new(NULL, N, &opt), LRE_OK, "lre_optimizer_new(NULL) for step_f64")) {
        ones_f64(xd);
        grad_f64(xd, gd);
        memcpy(xdcopy, xd, sizeof xd);
        CHECK_STATUS(lre_optimizer_step_f64(opt, xd, gd, NULL, NULL), LRE_ERR_INVALID_ARGUMENT,
                     "step_f64 on an f32 optimizer");
        CHECK_MESSAGE("f32", "step_f64 on an f32 optimizer");
        CHECK(memcmp(xd, xdcopy, sizeof xd) == 0, "step_f64 on an f32 optimizer changed the parameters");
        lre_optimizer_free(opt);
    }
}

static void test_non_finite_gradient(void)
{
    lre_optimizer_t *opt = NULL;
    float x[N], xcopy[N], g[N];
    int step;
    double before, after;

    if (!CHECK_STATUS(lre_optimizer_new(NULL, N, &opt), LRE_OK, "lre_optimizer_new for NaN test")) {
        return;
    }
    ones_f32(x);
    for (step = 0; step < 5; step++) {
        grad_f32(x, g);
        if (!CHECK_STATUS(lre_optimizer_step_f32(opt, x, g, NULL, NULL), LRE_OK, "warm-up step")) {
            lre_optimizer_free(opt);
            return;
        }
    }
    before = get_param(opt, "step");

    grad_f32(x, g);
    g[7] = NAN;
    memcpy(xcopy, x, sizeof x);
    CHECK_STATUS(lre_optimizer_step_f32(opt, x, g, NULL, NULL), LRE_ERR_NUMERICAL, "step with a NaN gradient");
    CHECK(memcmp(x, xcopy, sizeof x) == 0, "a step with a NaN gradient changed the parameters");
    after = get_param(opt, "step");
    CHECK(after == before, "a step with a NaN gradient changed \"step\" from %g to %g", before, after);

    grad_f32(x, g);
    g[N - 1] = -INFINITY;
    CHECK_STATUS(lre_optimizer_step_f32(opt, x, g, NULL, NULL), LRE_ERR_NUMERICAL, "step with an Inf gradient");
    CHECK(memcmp(x, xcopy, sizeof x) == 0, "a step with an Inf gradient changed the parameters");

    /* The optimizer still works afterwards. */
    grad_f32(x, g);
    CHECK_STATUS(lre_optimizer_step_f32(opt, x, g, NULL, NULL), LRE_OK, "step after a rejected step");
    after = get_param(opt, "step");
    CHECK(after == before + 1.0, "step after a rejected step: \"step\" = %g, expected %g", after, before + 1.0);
    lre_optimizer_free(opt);
}

static void test_params(void)
{
    lre_optimizer_t *opt = NULL;
    double v = -7.0;

    if (!CHECK_STATUS(lre_optimizer_new(NULL, 8, &opt), LRE_OK, "lre_optimizer_new for params")) {
        return;
    }
    CHECK(get_param(opt, "lr") == 0.01, "default lr is not 0.01");
    /* A stream is for optimizers on a GPU; a CPU optimizer refuses it. */
    CHECK_STATUS(lre_optimizer_set_stream(opt, NULL), LRE_ERR_INVALID_ARGUMENT,
                 "set_stream on a CPU optimizer");
    CHECK_STATUS(lre_optimizer_set_param(opt, "lr", -1.0), LRE_ERR_INVALID_ARGUMENT, "set lr = -1");
    CHECK(get_param(opt, "lr") == 0.01, "a rejected set_param changed lr");
    CHECK_STATUS(lre_optimizer_set_param(opt, "lr", NAN), LRE_ERR_INVALID_ARGUMENT, "set lr = NaN");
    CHECK_STATUS(lre_optimizer_set_param(opt, "lr", 0.5), LRE_OK, "set lr = 0.5");
    v = get_param(opt, "lr");
    CHECK(v == 0.5, "get_param(\"lr\") after set 0.5 = %g", v);
    CHECK(get_param(opt, "weight_decay") == 0.0, "default weight_decay is not 0");
    CHECK_STATUS(lre_optimizer_set_param(opt, "weight_decay", -0.5), LRE_ERR_INVALID_ARGUMENT,
                 "set weight_decay = -0.5");
    CHECK_STATUS(lre_optimizer_set_param(opt, "weight_decay", INFINITY), LRE_ERR_INVALID_ARGUMENT,
                 "set weight_decay = inf");
    CHECK(get_param(opt, "weight_decay") == 0.0, "a rejected set_param changed weight_decay");
    CHECK_STATUS(lre_optimizer_set_param(opt, "weight_decay", 0.25), LRE_OK, "set weight_decay = 0.25");
    v = get_param(opt, "weight_decay");
    CHECK(v == 0.25, "get_param(\"weight_decay\") after set 0.25 = %g", v);
    CHECK_STATUS(lre_optimizer_set_param(opt, "rank", 3.0), LRE_ERR_INVALID_ARGUMENT, "set rank (read-only)");
    CHECK_STATUS(lre_optimizer_set_param(opt, "bogus", 3.0), LRE_ERR_INVALID_ARGUMENT, "set bogus");
    v = -7.0;
    CHECK_STATUS(lre_optimizer_get_param(opt, "bogus", &v), LRE_ERR_INVALID_ARGUMENT, "get bogus");
    CHECK(v == -7.0, "a failed get_param wrote its output (%g)", v);
    lre_optimizer_free(opt);
}

static void test_chain_push(void)
{
    lre_optimizer_t *opt = NULL;
    float x[N], g[N];
    size_t len;
    char spec[2048];
    double eig[N];

    if (CHECK_STATUS(lre_optimizer_new("chain=[]", N, &opt), LRE_OK, "lre_optimizer_new(\"chain=[]\")")) {
        CHECK_STATUS(lre_optimizer_chain_push(opt, "adam"), LRE_OK, "chain_push adam before the first step");
        CHECK_STATUS(lre_optimizer_chain_push(opt, "nonsense"), LRE_ERR_SPEC, "chain_push nonsense");
        if (CHECK_STATUS(lre_optimizer_spec(opt, spec, sizeof spec, &len), LRE_OK, "spec after push")) {
            CHECK(strstr(spec, "chain=[adam") != NULL, "spec after pushing adam: \"%s\"", spec);
        }
        ones_f32(x);
        grad_f32(x, g);
        CHECK_STATUS(lre_optimizer_step_f32(opt, x, g, NULL, NULL), LRE_OK, "first step after push");
        CHECK_STATUS(lre_optimizer_chain_push(opt, "ema"), LRE_ERR_CALL_ORDER, "chain_push ema after a step");
        lre_optimizer_free(opt);
    }

    opt = NULL;
    if (CHECK_STATUS(lre_optimizer_new("basis=identity; chain=[]", N, &opt), LRE_OK,
                     "lre_optimizer_new(\"basis=identity; chain=[]\")")) {
        CHECK_STATUS(lre_optimizer_chain_push(opt, "l_inv"), LRE_ERR_SPEC, "chain_push l_inv on identity");
        CHECK_STATUS(lre_optimizer_eigenvalues(opt, NULL, 0, &len), LRE_ERR_UNSUPPORTED,
                     "eigenvalues on identity (size query)");
        CHECK_STATUS(lre_optimizer_eigenvalues(opt, eig, N, &len), LRE_ERR_UNSUPPORTED,
                     "eigenvalues on identity (fetch)");
        lre_optimizer_free(opt);
    }
}

static void test_f64_optimizer(void)
{
    lre_optimizer_t *opt = NULL;
    double x[N], g[N], f0, f;
    int step;

    if (!CHECK_STATUS(lre_optimizer_new("dtype=f64", N, &opt), LRE_OK, "lre_optimizer_new(\"dtype=f64\")")) {
        return;
    }
    ones_f64(x);
    f0 = loss_f64(x);
    for (step = 0; step < steps; step++) {
        grad_f64(x, g);
        if (!CHECK_STATUS(lre_optimizer_step_f64(opt, x, g, NULL, NULL), LRE_OK, "f64 optimizer step")) {
            fprintf(stderr, "  (at step %d)\n", step);
            lre_optimizer_free(opt);
            return;
        }
    }
    f = loss_f64(x);
    CHECK(f == f && f < required_drop * f0, "f64 optimizer: loss %g after %d steps, initial %g (need < %g)", f,
          steps, f0, required_drop * f0);
    printf("f64 optimizer: loss %g -> %g in %d steps\n", f0, f, steps);
    CHECK(get_param(opt, "step") == (double)steps, "f64 optimizer: step != %d", steps);
    lre_optimizer_free(opt);
}

int main(int argc, char **argv)
{
    check_file = "api_test.c";
    if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
        /* Under valgrind: fewer steps, any loss decrease. */
        steps = 40;
        required_drop = 1.0;
    }
    test_last_error_before_any_failure();
    test_versions();
    test_status_strings();
    test_default_optimizer();
    test_spec_text();
    test_bad_spec();
    test_null_pointers();
    test_wrong_dtype();
    test_non_finite_gradient();
    test_params();
    test_chain_push();
    test_f64_optimizer();

    printf("C API: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
