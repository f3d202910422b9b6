// One LRE optimizer over all MPI ranks: each rank holds a slice of the parameters, and the
// optimizer's reductions over n go through one all-reduce callback.
//
//   mpicxx -std=c++17 -I include -I bindings/cpp examples/mpi/sharded.cpp -L target/release -llre
//   mpirun -np 4 ./a.out
#include <lre.hpp>
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const std::size_t global = 1000;
    // Rows [offset, offset + n) of the global vector; shards may be uneven or empty.
    const std::size_t offset = global * rank / size, n = global * (rank + 1) / size - offset;
    int status = 0;
    try {
        lre::Optimizer opt("chain=[adam]; lr=0.1; dtype=f64; global_ndim=" + std::to_string(global) +
                               "; shard_offset=" + std::to_string(offset),
                           n);
        // Reduce to rank 0, then broadcast: every rank receives the same bits, so every rank's
        // small dense state stays identical (MPI_Allreduce does not promise that).
        opt.set_allreduce([](double *buf, std::size_t len) {
            int me = 0;
            MPI_Comm_rank(MPI_COMM_WORLD, &me);
            const int count = static_cast<int>(len);
            const int reduced =
                me == 0 ? MPI_Reduce(MPI_IN_PLACE, buf, count, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD)
                        : MPI_Reduce(buf, nullptr, count, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
            return reduced == MPI_SUCCESS &&
                   MPI_Bcast(buf, count, MPI_DOUBLE, 0, MPI_COMM_WORLD) == MPI_SUCCESS;
        });
        // f(x) = ½·Σ (1 + i/global)·x_i², the gradient row by row.
        std::vector<double> x(n, 1.0), g(n);
        for (int t = 0; t < 300; t++) {
            for (std::size_t i = 0; i < n; i++) {
                g[i] = (1.0 + double(offset + i) / global) * x[i];
            }
            opt.step(x, g);
        }
        double local = 0, total = 0;
        for (double v : x) {
            local += v * v;
        }
        MPI_Allreduce(&local, &total, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (rank == 0) {
            std::printf("|x| after 300 steps on %d ranks: %.3e (from %.3e)\n", size, std::sqrt(total),
                        std::sqrt(double(global)));
        }
        status = std::sqrt(total) < 0.5 * std::sqrt(double(global)) ? 0 : 1;
    } catch (const lre::Error &e) {
        std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
        status = 1;
    }
    MPI_Finalize();
    return status;
}
