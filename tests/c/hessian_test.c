/*
 * Hessian-vector products, the split step and the batch step through the C API, built and run
 * by tests/c_api.rs: a callback step and the split step give bit-identical parameters; a
 * failing callback and non-finite HVPs abort with nothing changed; split-step misuse is
 * refused; empirical_fisher and gauss_newton take per-sample gradients; the loss is a
 * parameter set before the step.
 */

#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define N 10

/* H = diag(1, 2, ..., N). */
static int32_t hvp_diag(void *user, const double *v, double *hv, size_t n)
{
    size_t i;
    int *calls = user;
    (*calls)++;
    for (i = 0; i < n; i++) {
        hv[i] = (double)(i + 1) * v[i];
    }
    return 0;
}

static int32_t hvp_fails(void *user, const double *v, double *hv, size_t n)
{
    (void)user;
    (void)v;
    (void)hv;
    (void)n;
    return 7;
}

static void gradient(const double *x, double *g)
{
    int i;
    for (i = 0; i < N; i++) {
        g[i] = (double)(i + 1) * (x[i] - 1.0);
    }
}

static double loss(const double *x)
{
    double f = 0.0;
    int i;
    for (i = 0; i < N; i++) {
        f += 0.5 * (double)(i + 1) * (x[i] - 1.0) * (x[i] - 1.0);
    }
    return f;
}

static lre_optimizer_t *create(const char *spec)
{
    lre_optimizer_t *opt = NULL;
    CHECK_STATUS(lre_optimizer_new(spec, N, &opt), LRE_OK, spec);
    return opt;
}

static void test_callback_and_split_step_agree(void)
{
    const char *spec = "curvature=bfgs; basis=ggt(history_size=6); dtype=f64; lr=0.1";
    lre_optimizer_t *a = create(spec), *b = create(spec);
    double x[N] = {0}, y[N] = {0}, g[N], probes[4 * N], hvps[4 * N];
    double value = 0.0, f0 = loss(x);
    size_t count = 0, i;
    int calls = 0, t;
    if (a == NULL || b == NULL) {
        return;
    }
    CHECK_STATUS(lre_optimizer_get_param(a, "num_probes", &value), LRE_OK, "num_probes");
    CHECK(value == 1.0, "bfgs needs 1 HVP per update, get_param says %g", value);
    for (t = 0; t < 30; t++) {
        gradient(x, g);
        CHECK_STATUS(lre_optimizer_step_f64(a, x, g, hvp_diag, &calls), LRE_OK, "callback step");
        gradient(y, g);
        CHECK_STATUS(lre_optimizer_begin_f64(b, g, &count), LRE_OK, "begin");
        CHECK(count == 1, "step %d: %zu probes", t, count);
        CHECK_STATUS(lre_optimizer_probes_f64(b, probes), LRE_OK, "probes");
        for (i = 0; i < count; i++) {
            hvp_diag(&calls, probes + i * N, hvps + i * N, N);
        }
        CHECK_STATUS(lre_optimizer_finish_f64(b, y, hvps), LRE_OK, "finish");
    }
    CHECK(memcmp(x, y, sizeof x) == 0, "the split step and the callback step differ");
    CHECK(calls == 60, "the callback ran %d times, expected 60", calls);
    CHECK(loss(x) < f0, "bfgs: loss %g from %g", loss(x), f0);
    lre_optimizer_free(a);
    lre_optimizer_free(b);
}

static void test_failures_change_nothing(void)
{
    lre_optimizer_t *opt = create("curvature=full_hutchinson_hessian; dtype=f64");
    double x[N] = {0}, g[N], hvps[N], probes[N];
    size_t len = 0, len2 = 0, count = 0;
    uint8_t *before, *after;
    double saved[N];
    int calls = 0;
    if (opt == NULL) {
        return;
    }
    gradient(x, g);
    CHECK_STATUS(lre_optimizer_step_f64(opt, x, g, hvp_diag, &calls), LRE_OK, "first step");
    gradient(x, g);
    memcpy(saved, x, sizeof x);
    before = snapshot(opt, &len);

    CHECK_STATUS(lre_optimizer_step_f64(opt, x, g, hvp_fails, NULL), LRE_ERR_CALLBACK, "failing callback");
    CHECK_MESSAGE("callback", "failing callback");
    CHECK_STATUS(lre_optimizer_step_f64(opt, x, g, NULL, NULL), LRE_ERR_INVALID_ARGUMENT, "no callback");
    CHECK_MESSAGE("Hessian-vector", "no callback");
    CHECK_STATUS(lre_optimizer_finish_f64(opt, x, hvps), LRE_ERR_CALL_ORDER, "finish without begin");
    CHECK_STATUS(lre_optimizer_probes_f64(opt, probes), LRE_ERR_CALL_ORDER, "probes without begin");
    CHECK_STATUS(lre_optimizer_begin_f64(opt, g, &count), LRE_OK, "begin");
    CHECK_STATUS(lre_optimizer_begin_f64(opt, g, &count), LRE_ERR_CALL_ORDER, "begin twice");
    CHECK_STATUS(lre_optimizer_probes_f64(opt, probes), LRE_OK, "probes");
    hvp_diag(&calls, probes, hvps, N);
    hvps[2] = INFINITY;
    CHECK_STATUS(lre_optimizer_finish_f64(opt, x, hvps), LRE_ERR_NUMERICAL, "non-finite HVP");
    CHECK_MESSAGE("hvp", "non-finite HVP");
    CHECK_STATUS(lre_optimizer_cancel(opt), LRE_OK, "cancel");

    after = snapshot(opt, &len2);
    CHECK(memcmp(saved, x, sizeof x) == 0, "parameters changed by refused calls");
    CHECK(before != NULL && after != NULL && len == len2 && memcmp(before, after, len) == 0,
          "state changed by refused calls");
    free(before);
    free(after);
    /* And the optimizer still works. */
    CHECK_STATUS(lre_optimizer_step_f64(opt, x, g, hvp_diag, &calls), LRE_OK, "step after failures");
    lre_optimizer_free(opt);
}

/* Per-sample gradients of f = sum_s 0.5 (a_s . x - b_s)^2 over 4 samples. */
static void per_sample(const float *x, float *rows, float *residuals)
{
    int s, i;
    for (s = 0; s < 4; s++) {
        float r = -(float)(s + 1);
        for (i = 0; i < N; i++) {
            r += (float)((2 * s + i) % 5) * x[i];
        }
        residuals[s] = r;
        for (i = 0; i < N; i++) {
            rows[s * N + i] = (float)((2 * s + i) % 5);
        }
    }
}

static void test_batch_step(void)
{
    lre_optimizer_t *fisher = create("curvature=empirical_fisher"), *gn = create("curvature=gauss_newton; chain=[l_inv]; lr=1");
    float x[N] = {0}, rows[4 * N], residuals[4], scaled[4 * N], g[N] = {0};
    double start = 0.0, end = 0.0;
    int s, i, t;
    if (fisher == NULL || gn == NULL) {
        return;
    }
    CHECK_STATUS(lre_optimizer_step_f32(fisher, x, g, NULL, NULL), LRE_ERR_INVALID_ARGUMENT, "fisher needs a batch");
    per_sample(x, rows, residuals);
    CHECK_STATUS(lre_optimizer_step_batch_f32(gn, x, rows, 4, NULL, NULL, NULL), LRE_ERR_INVALID_ARGUMENT,
                 "gauss_newton needs residuals");
    for (s = 0; s < 4; s++) {
        start += 0.5 * (double)residuals[s] * residuals[s];
    }
    for (t = 0; t < 10; t++) {
        per_sample(x, rows, residuals);
        CHECK_STATUS(lre_optimizer_step_batch_f32(gn, x, rows, 4, residuals, NULL, NULL), LRE_OK, "gauss_newton batch");
    }
    per_sample(x, rows, residuals);
    for (s = 0; s < 4; s++) {
        end += 0.5 * (double)residuals[s] * residuals[s];
    }
    CHECK(end < 1e-6 * start, "gauss_newton: 0.5|r|^2 %g from %g after 10 steps", end, start);
    /* empirical_fisher: per-sample gradients r_s a_s. */
    for (t = 0; t < 5; t++) {
        per_sample(x, rows, residuals);
        for (s = 0; s < 4; s++) {
            for (i = 0; i < N; i++) {
                scaled[s * N + i] = residuals[s] * rows[s * N + i];
            }
        }
        CHECK_STATUS(lre_optimizer_step_batch_f32(fisher, x, scaled, 4, NULL, NULL, NULL), LRE_OK, "fisher batch");
    }
    lre_optimizer_free(fisher);
    lre_optimizer_free(gn);
}

static void test_loss_parameter(void)
{
    lre_optimizer_t *opt = create("curvature=covariance_times_loss; dtype=f64");
    double x[N] = {0}, g[N];
    int t;
    if (opt == NULL) {
        return;
    }
    gradient(x, g);
    CHECK_STATUS(lre_optimizer_step_f64(opt, x, g, NULL, NULL), LRE_ERR_CALL_ORDER, "missing loss");
    CHECK_MESSAGE("loss", "missing loss");
    for (t = 0; t < 5; t++) {
        gradient(x, g);
        CHECK_STATUS(lre_optimizer_set_param(opt, "loss", loss(x)), LRE_OK, "set loss");
        CHECK_STATUS(lre_optimizer_step_f64(opt, x, g, NULL, NULL), LRE_OK, "step with loss");
    }
    CHECK_STATUS(lre_optimizer_set_param(opt, "loss", NAN), LRE_ERR_INVALID_ARGUMENT, "NaN loss");
    lre_optimizer_free(opt);
}

int main(void)
{
    check_file = "hessian_test.c";
    test_callback_and_split_step_agree();
    test_failures_change_nothing();
    test_batch_step();
    test_loss_parameter();
    printf("C hessian: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
