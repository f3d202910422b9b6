/*
 * Overlapping calls on one handle, built and run by tests/c_api.rs (also under valgrind, with
 * --quick): a call that overlaps another on the same optimizer gets LRE_ERR_BUSY and changes
 * nothing, whether it comes from an HVP callback of the optimizer's own step or from a second
 * thread; two threads hammering one handle see only LRE_OK and LRE_ERR_BUSY, and the step count
 * equals the steps that succeeded.
 */

#define _POSIX_C_SOURCE 200809L

#include "check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 32
#define BUSY_TEXT "in use by another call"

static const char *HVP_SPEC = "curvature=full_hutchinson_hessian; dtype=f64";

static void quadratic_grad(const double *x, double *g)
{
    int i;
    for (i = 0; i < N; i++) {
        g[i] = (double)(i % 5 + 1) * (x[i] - 1.0);
    }
}

static void diag_hvp(const double *v, double *hv, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        hv[i] = (double)(i % 5 + 1) * v[i];
    }
}

static int32_t hvp_plain(void *user, const double *v, double *hv, size_t n)
{
    (void)user;
    diag_hvp(v, hv, n);
    return 0;
}

/* ---- an HVP callback that calls back into the optimizer whose step called it ---- */

struct reentry {
    lre_optimizer_t *opt;
    int32_t verdict; /* what the callback returns */
    int calls;
    lre_status get, set, step, save, cancel;
    int message_named_it;
};

static int32_t hvp_reenters(void *user, const double *v, double *hv, size_t n)
{
    struct reentry *r = user;
    double value = 0.0, x[N], g[N];
    size_t len = 0;
    memset(x, 0, sizeof x);
    memset(g, 0, sizeof g);
    r->calls++;
    r->get = lre_optimizer_get_param(r->opt, "step", &value);
    r->message_named_it = strstr(lre_last_error_message(), BUSY_TEXT) != NULL;
    r->set = lre_optimizer_set_param(r->opt, "lr", 0.5);
    r->step = lre_optimizer_step_f64(r->opt, x, g, NULL, NULL);
    r->save = lre_optimizer_state_save(r->opt, NULL, 0, &len);
    r->cancel = lre_optimizer_cancel(r->opt);
    lre_optimizer_free(r->opt); /* refused: the optimizer is in use */
    diag_hvp(v, hv, n);
    return r->verdict;
}

static void check_reentry(const char *what, const struct reentry *r)
{
    CHECK(r->calls > 0, "%s: the callback never ran", what);
    CHECK_STATUS(r->get, LRE_ERR_BUSY, "get_param from the callback");
    CHECK(r->message_named_it, "%s: the busy message does not say \"" BUSY_TEXT "\"", what);
    CHECK_STATUS(r->set, LRE_ERR_BUSY, "set_param from the callback");
    CHECK_STATUS(r->step, LRE_ERR_BUSY, "step from the callback");
    CHECK_STATUS(r->save, LRE_ERR_BUSY, "state_save from the callback");
    CHECK_STATUS(r->cancel, LRE_ERR_BUSY, "cancel from the callback");
}

static void test_reentry(void)
{
    struct reentry r;
    lre_optimizer_t *opt = NULL;
    double x[N], g[N], before[N], value = 0.0;
    uint8_t *state, *state_after;
    size_t state_len, after_len;
    int i;
    CHECK_STATUS(lre_optimizer_new(HVP_SPEC, N, &opt), LRE_OK, "create");
    for (i = 0; i < N; i++) {
        x[i] = 0.0;
    }
    quadratic_grad(x, g);

    /* The callback reports success: the inner calls were refused, the step itself goes on. */
    memset(&r, 0, sizeof r);
    r.opt = opt;
    CHECK_STATUS(lre_optimizer_step_f64(opt, x, g, hvp_reenters, &r), LRE_OK, "step whose callback re-enters");
    check_reentry("callback returning 0", &r);
    CHECK_STATUS(lre_optimizer_get_param(opt, "step", &value), LRE_OK, "step count");
    CHECK(value == 1.0, "step count %g after one step (the refused inner step must not count)", value);
    CHECK_STATUS(lre_optimizer_get_param(opt, "lr", &value), LRE_OK, "lr");
    CHECK(value != 0.5, "the refused set_param changed lr to %g", value);

    /* The callback reports failure: the outer step fails as any failing callback does. */
    memcpy(before, x, sizeof x);
    state = snapshot(opt, &state_len);
    memset(&r, 0, sizeof r);
    r.opt = opt;
    r.verdict = 1;
    quadratic_grad(x, g);
    CHECK_STATUS(lre_optimizer_step_f64(opt, x, g, hvp_reenters, &r), LRE_ERR_CALLBACK,
                 "step whose re-entering callback fails");
    check_reentry("callback returning 1", &r);
    state_after = snapshot(opt, &after_len);
    CHECK(memcmp(before, x, sizeof x) == 0, "a failed step moved the parameters");
    CHECK(state != NULL && state_after != NULL && state_len == after_len &&
              memcmp(state, state_after, state_len) == 0,
          "a failed step changed the state");
    free(state);
    free(state_after);

    /* Not busy any more: the handle works and frees normally. */
    CHECK_STATUS(lre_optimizer_step_f64(opt, x, g, hvp_plain, NULL), LRE_OK, "step after");
    lre_optimizer_free(opt);
}

/* ---- a second thread calls in while a step waits inside its HVP callback ---- */

struct meeting {
    lre_optimizer_t *opt;
    pthread_barrier_t inside, tried;
    int met;
    double x[N];
    lre_status get, step, load;
    int message_named_it;
};

static int32_t hvp_waits(void *user, const double *v, double *hv, size_t n)
{
    struct meeting *m = user;
    if (!m->met) {
        m->met = 1;
        pthread_barrier_wait(&m->inside); /* the step holds the optimizer now */
        pthread_barrier_wait(&m->tried);  /* until the other thread has tried */
    }
    diag_hvp(v, hv, n);
    return 0;
}

static void *intruder(void *arg)
{
    struct meeting *m = arg;
    double g[N], value = 0.0;
    uint8_t blob[16];
    memset(blob, 0, sizeof blob);
    quadratic_grad(m->x, g);
    pthread_barrier_wait(&m->inside);
    m->get = lre_optimizer_get_param(m->opt, "step", &value);
    m->message_named_it = strstr(lre_last_error_message(), BUSY_TEXT) != NULL;
    m->step = lre_optimizer_step_f64(m->opt, m->x, g, NULL, NULL);
    m->load = lre_optimizer_state_load(m->opt, blob, sizeof blob);
    lre_optimizer_free(m->opt); /* refused: the other thread is using it */
    pthread_barrier_wait(&m->tried);
    return NULL;
}

static void test_second_thread(void)
{
    static struct meeting m;
    pthread_t other;
    double x[N], g[N], value = 0.0, zeros[N];
    int i;
    memset(&m, 0, sizeof m);
    memset(zeros, 0, sizeof zeros);
    CHECK_STATUS(lre_optimizer_new(HVP_SPEC, N, &m.opt), LRE_OK, "create");
    for (i = 0; i < N; i++) {
        x[i] = 0.0;
    }
    quadratic_grad(x, g);
    pthread_barrier_init(&m.inside, NULL, 2);
    pthread_barrier_init(&m.tried, NULL, 2);
    CHECK(pthread_create(&other, NULL, intruder, &m) == 0, "pthread_create");
    CHECK_STATUS(lre_optimizer_step_f64(m.opt, x, g, hvp_waits, &m), LRE_OK, "the step the other thread overlaps");
    pthread_join(other, NULL);
    pthread_barrier_destroy(&m.inside);
    pthread_barrier_destroy(&m.tried);
    CHECK_STATUS(m.get, LRE_ERR_BUSY, "get_param from the other thread");
    CHECK(m.message_named_it, "the other thread's busy message does not say \"" BUSY_TEXT "\"");
    CHECK_STATUS(m.step, LRE_ERR_BUSY, "step from the other thread");
    CHECK_STATUS(m.load, LRE_ERR_BUSY, "state_load from the other thread");
    CHECK(memcmp(m.x, zeros, sizeof zeros) == 0, "the refused step moved the other thread's parameters");
    CHECK_STATUS(lre_optimizer_get_param(m.opt, "step", &value), LRE_OK, "step count");
    CHECK(value == 1.0, "step count %g: only the first thread's step counts", value);
    lre_optimizer_free(m.opt);
}

/* ---- two threads hammer one handle ---- */

struct worker {
    lre_optimizer_t *opt;
    int id, iterations;
    long ok_steps, busy, other;
    lre_status other_status;
    double x[N];
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    double g[N], value = 0.0;
    size_t len = 0;
    int k = 0, attempts;
    /* Refused calls take nanoseconds, steps microseconds: count the calls that got through, so
     * that both threads keep calling while the other one works (bounded, in case one starves). */
    for (attempts = 0; k < w->iterations && attempts < 1000 * w->iterations; attempts++) {
        lre_status s;
        switch ((k + w->id) % 4) {
        case 2:
            s = lre_optimizer_get_param(w->opt, "step", &value);
            break;
        case 3:
            s = lre_optimizer_state_save(w->opt, NULL, 0, &len);
            break;
        default:
            quadratic_grad(w->x, g);
            s = lre_optimizer_step_f64(w->opt, w->x, g, NULL, NULL);
            w->ok_steps += s == LRE_OK;
            break;
        }
        if (s == LRE_OK) {
            k++;
        } else if (s == LRE_ERR_BUSY) {
            w->busy++;
        } else {
            w->other++;
            w->other_status = s;
        }
    }
    return NULL;
}

static void test_hammer(int iterations)
{
    static struct worker workers[2];
    pthread_t threads[2];
    lre_optimizer_t *opt = NULL;
    double value = 0.0;
    int i;
    CHECK_STATUS(lre_optimizer_new("basis=ggt(history_size=4); dtype=f64", N, &opt), LRE_OK, "create");
    for (i = 0; i < 2; i++) {
        memset(&workers[i], 0, sizeof workers[i]);
        workers[i].opt = opt;
        workers[i].id = i;
        workers[i].iterations = iterations;
        CHECK(pthread_create(&threads[i], NULL, hammer, &workers[i]) == 0, "pthread_create %d", i);
    }
    for (i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
    }
    for (i = 0; i < 2; i++) {
        CHECK(workers[i].other == 0, "thread %d: %ld calls failed with %s, not LRE_OK or LRE_ERR_BUSY", i,
              workers[i].other, status_name(workers[i].other_status));
    }
    CHECK_STATUS(lre_optimizer_get_param(opt, "step", &value), LRE_OK, "step count");
    CHECK(value == (double)(workers[0].ok_steps + workers[1].ok_steps),
          "step count %g, but %ld + %ld steps succeeded", value, workers[0].ok_steps, workers[1].ok_steps);
    printf("hammer: %ld + %ld steps succeeded, %ld + %ld calls refused as busy\n", workers[0].ok_steps,
           workers[1].ok_steps, workers[0].busy, workers[1].busy);
    lre_optimizer_free(opt);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    check_file = "busy_test.c";
    test_reentry();
    test_second_thread();
    test_hammer(quick ? 100 : 2000);
    printf("C busy: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
