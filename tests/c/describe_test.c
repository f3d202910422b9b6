/*
 * What a binding asks instead of parsing the spec (built and run by tests/c_api.rs): the
 * dtype and the curvature's needs (lre_optimizer_get_param), the component names
 * (lre_optimizer_component) and the state's buffers (lre_optimizer_state_layout).
 */

#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double param(lre_optimizer_t *opt, const char *key)
{
    double v = -1.0;
    CHECK_STATUS(lre_optimizer_get_param(opt, key, &v), LRE_OK, key);
    return v;
}

static void test_dtype_and_needs(void)
{
    lre_optimizer_t *opt = NULL;
    if (CHECK_STATUS(lre_optimizer_new("dtype=f64; curvature=covariance_times_loss", 5, &opt), LRE_OK,
                     "new f64 covariance_times_loss")) {
        CHECK(param(opt, "dtype") == LRE_DTYPE_F64, "dtype of an f64 optimizer");
        CHECK(param(opt, "needs_loss") == 1.0, "covariance_times_loss needs the loss");
        CHECK(param(opt, "needs_samples") == 0.0, "covariance_times_loss needs no samples");
        lre_optimizer_free(opt);
    }
    opt = NULL;
    if (CHECK_STATUS(lre_optimizer_new("curvature=empirical_fisher", 5, &opt), LRE_OK, "new empirical_fisher")) {
        CHECK(param(opt, "dtype") == LRE_DTYPE_F32, "dtype of the default");
        CHECK(param(opt, "needs_loss") == 0.0, "empirical_fisher needs no loss");
        CHECK(param(opt, "needs_samples") == 1.0, "empirical_fisher needs samples");
        lre_optimizer_free(opt);
    }
}

static void test_component_names(void)
{
    lre_optimizer_t *opt = NULL;
    char name[64];
    size_t len = 0;
    if (!CHECK_STATUS(lre_optimizer_new("curvature=FullHutchinsonHessian; basis=Eigen", 5, &opt), LRE_OK,
                      "new hessian/eigen")) {
        return;
    }
    CHECK_STATUS(lre_optimizer_component(opt, "curvature", NULL, 0, &len), LRE_OK, "curvature size query");
    CHECK(len == strlen("full_hutchinson_hessian"), "curvature name length %zu", len);
    CHECK_STATUS(lre_optimizer_component(opt, "curvature", name, 4, &len), LRE_ERR_BUFFER_TOO_SMALL,
                 "curvature name into 4 bytes");
    if (CHECK_STATUS(lre_optimizer_component(opt, "curvature", name, sizeof name, &len), LRE_OK, "curvature")) {
        CHECK(strcmp(name, "full_hutchinson_hessian") == 0, "curvature name \"%s\"", name);
    }
    if (CHECK_STATUS(lre_optimizer_component(opt, "basis", name, sizeof name, &len), LRE_OK, "basis")) {
        CHECK(strcmp(name, "eigen") == 0, "basis name \"%s\"", name);
    }
    CHECK_STATUS(lre_optimizer_component(opt, "chain", name, sizeof name, &len), LRE_ERR_INVALID_ARGUMENT,
                 "an unknown family");
    CHECK_MESSAGE("curvature or basis", "an unknown family");
    lre_optimizer_free(opt);
}

/* The default GGT at n = 1000: a 1000 x 100 f32 window among the buffers, and the bound holds
 * every buffer at its largest. */
static void test_state_layout(void)
{
    enum { N = 1000, CAP = 64 };
    lre_optimizer_t *opt = NULL;
    lre_buffer_info info[CAP];
    size_t len = 0, i, bound = 0, window = CAP;
    uint64_t total = 0;
    if (!CHECK_STATUS(lre_optimizer_new(NULL, N, &opt), LRE_OK, "new default")) {
        return;
    }
    CHECK_STATUS(lre_optimizer_state_layout(opt, NULL, 0, &len), LRE_OK, "layout size query");
    CHECK(len > 1 && len <= CAP, "layout has %zu buffers", len);
    CHECK_STATUS(lre_optimizer_state_layout(opt, info, 1, &len), LRE_ERR_BUFFER_TOO_SMALL, "layout into 1");
    if (!CHECK_STATUS(lre_optimizer_state_layout(opt, info, CAP, &len), LRE_OK, "layout")) {
        lre_optimizer_free(opt);
        return;
    }
    for (i = 0; i < len; i++) {
        total += info[i].bytes;
        if (strcmp(info[i].name, "basis/window") == 0) {
            window = i;
        }
        CHECK(info[i].kind != LRE_BUFFER_VECTORS || info[i].rows == N, "%s: n-sized rows %llu", info[i].name,
              (unsigned long long)info[i].rows);
    }
    if (CHECK(window < len, "no basis/window in the layout")) {
        CHECK(info[window].kind == LRE_BUFFER_VECTORS && info[window].dtype == LRE_DTYPE_F32 &&
                  info[window].cols == 100 && info[window].bytes == (uint64_t)N * 100 * 4,
              "basis/window: kind %u dtype %u cols %llu bytes %llu", (unsigned)info[window].kind,
              (unsigned)info[window].dtype, (unsigned long long)info[window].cols,
              (unsigned long long)info[window].bytes);
    }
    if (CHECK_STATUS(lre_optimizer_state_bound(opt, &bound), LRE_OK, "state bound")) {
        CHECK(total < bound && bound < total + 4096, "bound %zu against %llu bytes of buffers", bound,
              (unsigned long long)total);
    }
    lre_optimizer_free(opt);

    /* A buffer as large as the batch has no size, and the bound says so. */
    opt = NULL;
    if (CHECK_STATUS(lre_optimizer_new("curvature=empirical_fisher; chain=[natural_gradient]", 5, &opt), LRE_OK,
                     "new natural_gradient")) {
        CHECK_STATUS(lre_optimizer_state_layout(opt, info, CAP, &len), LRE_OK, "layout of natural_gradient");
        for (window = len, i = 0; i < len; i++) {
            if (info[i].kind == LRE_BUFFER_BATCH_SIZED) {
                window = i;
            }
        }
        CHECK(window < len && strcmp(info[window].name, "chain/0/jacobian") == 0, "batch-sized buffer");
        CHECK_STATUS(lre_optimizer_state_bound(opt, &bound), LRE_ERR_UNSUPPORTED, "bound of natural_gradient");
        lre_optimizer_free(opt);
    }
}

/* A state that cannot be addressed is refused when the optimizer is created, naming n. */
static void test_unaddressable_state(void)
{
    lre_optimizer_t *opt = NULL;
    CHECK_STATUS(lre_optimizer_new(NULL, (size_t)1 << 62, &opt), LRE_ERR_INVALID_ARGUMENT, "n = 2^62");
    CHECK_MESSAGE("ndim = 4611686018427387904", "n = 2^62");
    CHECK(opt == NULL, "a refused lre_optimizer_new wrote its output");
}

int main(void)
{
    check_file = "describe_test.c";
    test_dtype_and_needs();
    test_component_names();
    test_state_layout();
    test_unaddressable_state();
    printf("describe: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
