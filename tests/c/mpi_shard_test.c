/*
 * Sharded optimizers over real MPI ranks (run with mpirun -np P by tests/sharded.rs).
 *
 * Each rank holds rows [offset, offset + ndim) of a 37-row quadratic ½·Σ aᵢxᵢ²: uneven shards,
 * and with P ≥ 2 the last rank holds none. Every rank also runs the unsharded optimizer on all
 * rows; for each configuration and dtype the sharded trajectory must equal it over 200 steps
 * (relative 1e-10 in f64, 1e-5 in f32). Each rank saves its final state to
 * <dir>/<config>-<dtype>-P<P>-r<rank>.lre, and the Rust test compares the k-sized buffers of
 * the ranks' states bit for bit.
 *
 * The all-reduce is a reduce to rank 0 followed by a broadcast, so every rank receives the same
 * bits (MPI_Allreduce may round differently on different ranks).
 */
#include "check.h"

#include <math.h>
#include "mpi_sum.h"

#define N 37
#define STEPS 200

static const char *const SPECS[] = {
    "",
    "basis=ggt; chain=[adam]",
    "basis=eigen; chain=[adam]",
    "basis=random; chain=[adam]",
    "basis=randomized_eigen(eig_tol=1e-4, update_damping=1e-4); chain=[adam]",
    "basis=nystrom(eig_tol=1e-4, update_damping=1e-4); chain=[adam]",
    "curvature=full_hutchinson_hessian(z=gaussian); basis=eigen; chain=[adam]",
};

/* Distinct: a repeated eigenvalue would leave the basis within its eigenspace to rounding. */
static double curvature_at(size_t i) { return 1.0 + 0.25 * (double)i; }

/* The HVP of the quadratic for rows starting at *(size_t *)user. */
static int hvp_f64(void *user, const double *v, double *hv, size_t n)
{
    size_t offset = *(size_t *)user;
    for (size_t i = 0; i < n; i++)
        hv[i] = curvature_at(offset + i) * v[i];
    return 0;
}

static int hvp_f32(void *user, const float *v, float *hv, size_t n)
{
    size_t offset = *(size_t *)user;
    for (size_t i = 0; i < n; i++)
        hv[i] = (float)(curvature_at(offset + i) * (double)v[i]);
    return 0;
}

/* One step on rows [offset, offset + n) of x (kept as double; f32 optimizers step a float copy). */
static lre_status step(lre_optimizer_t *opt, int f64, double *x, size_t n, size_t *offset)
{
    double g[N];
    float xf[N], gf[N];
    for (size_t i = 0; i < n; i++)
        g[i] = curvature_at(*offset + i) * x[i];
    if (f64)
        return lre_optimizer_step_f64(opt, x, g, hvp_f64, offset);
    for (size_t i = 0; i < n; i++) {
        xf[i] = (float)x[i];
        gf[i] = (float)(curvature_at(*offset + i) * (double)xf[i]);
    }
    lre_status s = lre_optimizer_step_f32(opt, xf, gf, hvp_f32, offset);
    for (size_t i = 0; i < n; i++)
        x[i] = xf[i];
    return s;
}

int main(int argc, char **argv)
{
    check_file = "mpi_shard_test.c";
    MPI_Init(&argc, &argv);
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    const char *dir = argc > 1 ? argv[1] : ".";

    /* Uneven cuts r²·N/h² among h holders; the ranks after them hold no rows. */
    size_t holders = size == 1 ? 1 : (size_t)size - 1, cut[5];
    for (int r = 0; r <= size; r++)
        cut[r] = (size_t)r <= holders ? (size_t)r * r * N / (holders * holders) : N;
    size_t offset = cut[rank], n = cut[rank + 1] - cut[rank], zero = 0;

    for (int f64 = 0; f64 <= 1; f64++) {
        for (size_t c = 0; c < sizeof SPECS / sizeof *SPECS; c++) {
            double tolerance = f64 ? 1e-10 : 1e-5;
            char spec[512];
            lre_optimizer_t *whole = NULL, *mine = NULL;
            snprintf(spec, sizeof spec, "%s; dtype=%s", SPECS[c], f64 ? "f64" : "f32");
            CHECK_STATUS(lre_optimizer_new(spec, N, &whole), LRE_OK, "new (unsharded)");
            snprintf(spec, sizeof spec, "%s; dtype=%s; global_ndim=%d; shard_offset=%zu",
                     SPECS[c], f64 ? "f64" : "f32", N, offset);
            CHECK_STATUS(lre_optimizer_new(spec, n, &mine), LRE_OK, "new (sharded)");
            CHECK_STATUS(lre_optimizer_set_allreduce(mine, sum_then_broadcast, &comm), LRE_OK,
                         "set_allreduce");
            double x[N], xs[N];
            for (size_t i = 0; i < N; i++)
                x[i] = sin((double)(i + 1));
            memcpy(xs, x + offset, n * sizeof(double));
            double worst = 0;
            for (int t = 0; t < STEPS; t++) {
                CHECK_STATUS(step(whole, f64, x, N, &zero), LRE_OK, "unsharded step");
                CHECK_STATUS(step(mine, f64, xs, n, &offset), LRE_OK, "sharded step");
                double scale = 1e-30;
                for (size_t i = 0; i < N; i++)
                    scale = fmax(scale, fabs(x[i]));
                for (size_t i = 0; i < n; i++)
                    worst = fmax(worst, fabs(xs[i] - x[offset + i]) / scale);
            }
            CHECK(worst <= tolerance, "%s, P = %d, rank %d: relative error %g", spec, size, rank,
                  worst);
            char path[1024];
            snprintf(path, sizeof path, "%s/%zu-%s-P%d-r%d.lre", dir, c, f64 ? "f64" : "f32",
                     size, rank);
            CHECK_STATUS(lre_optimizer_save_file(mine, path), LRE_OK, "save_file");
            lre_optimizer_free(whole);
            lre_optimizer_free(mine);
        }
    }
    int failures = failed, total = 0;
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, comm);
    printf("%s rank %d: %d passed, %d failed\n", check_file, rank, passed, failed);
    MPI_Finalize();
    return total != 0;
}
