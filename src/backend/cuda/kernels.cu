// The CUDA backend's kernels: the n-sized operations that keep the CPU backend's contract
// (src/backend/mod.rs), one entry point per operation and element type (suffix _f32 / _f64).
//
// Contract kept, as on the CPU:
// - reductions accumulate in f64: each block writes one partial sum per output, and
//   `finish_sums` adds the partials of an output in block order, so results do not depend on
//   scheduling (no floating-point atomics);
// - combinations are formed in f64 with fused multiply-adds in input order and rounded once;
// - the Gaussian stream is the counter-based one of src/backend/normal.rs, operation for
//   operation (compiled with --fmad=false so that only the explicit fma() calls fuse).
//
// Matrices are column-major n x cols; a list of column indices (`cols`, device memory) picks
// the columns an operation touches, so a ring window that wraps is one call.
// Compiled to PTX by tests/cuda_kernels.rs (see the README, "GPU").

#include <stdint.h>

#define THREADS 256
// Columns that share each load of x in `column_dots`.
#define DOT_GROUP 8
// Side of the column-pair tile of `cross`.
#define TILE 4
// Rows per block of `combine` (one warp wide); the block is COMBINE_ROWS x COMBINE_WARPS.
#define COMBINE_ROWS 32
#define COMBINE_WARPS 8

__device__ __forceinline__ double widen(float x) { return (double)x; }
__device__ __forceinline__ double widen(double x) { return x; }

template <typename T> __device__ __forceinline__ T narrow(double x);
template <> __device__ __forceinline__ float narrow<float>(double x) { return (float)x; }
template <> __device__ __forceinline__ double narrow<double>(double x) { return x; }

// Tree sum of `count` arrays of THREADS values in shared memory (deterministic order);
// the sums end up in sums[c * THREADS].
__device__ void block_sums(double *sums, int count) {
    for (int width = THREADS / 2; width > 0; width /= 2) {
        __syncthreads();
        if (threadIdx.x < width) {
            for (int c = 0; c < count; c++) {
                sums[c * THREADS + threadIdx.x] += sums[c * THREADS + threadIdx.x + width];
            }
        }
    }
    __syncthreads();
}

// out[j] = sum over b < blocks of partials[j * blocks + b], in block order.
extern "C" __global__ void finish_sums(const double *partials, int blocks, int count,
                                       double *out) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= count) return;
    double s = 0.0;
    for (int b = 0; b < blocks; b++) s += partials[(int64_t)j * blocks + b];
    out[j] = s;
}

// dst = src; partials[block] = this block's sum of squares (f64); *first_bad = the smallest
// index of a non-finite entry (left alone when all are finite).
template <typename T>
__device__ void load_checked(const T *src, T *dst, int64_t n, double *partials,
                             unsigned long long *first_bad) {
    __shared__ double sums[THREADS];
    double s = 0.0;
    for (int64_t i = blockIdx.x * (int64_t)THREADS + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * THREADS) {
        T x = src[i];
        double v = widen(x);
        if (!isfinite(v)) atomicMin(first_bad, (unsigned long long)i);
        s = fma(v, v, s);
        dst[i] = x;
    }
    sums[threadIdx.x] = s;
    block_sums(sums, 1);
    if (threadIdx.x == 0) partials[blockIdx.x] = sums[0];
}

// partials[j * gridDim.x + block] = this block's part of <m[:, cols[j]], x> for the group of
// DOT_GROUP columns blockIdx.y.
template <typename T>
__device__ void column_dots(const T *m, int64_t n, const int *cols, int count, const T *x,
                            double *partials) {
    __shared__ double sums[DOT_GROUP * THREADS];
    int first = blockIdx.y * DOT_GROUP;
    int here = min(DOT_GROUP, count - first);
    double acc[DOT_GROUP];
    for (int c = 0; c < DOT_GROUP; c++) acc[c] = 0.0;
    for (int64_t i = blockIdx.x * (int64_t)THREADS + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * THREADS) {
        double xi = widen(x[i]);
        for (int c = 0; c < DOT_GROUP; c++) {
            if (c < here) acc[c] = fma(widen(m[(int64_t)cols[first + c] * n + i]), xi, acc[c]);
        }
    }
    for (int c = 0; c < DOT_GROUP; c++) sums[c * THREADS + threadIdx.x] = acc[c];
    block_sums(sums, here);
    if (threadIdx.x < here) {
        partials[(int64_t)(first + threadIdx.x) * gridDim.x + blockIdx.x] =
            sums[threadIdx.x * THREADS];
    }
}

// partials[(a * right_count + b) * gridDim.x + block] = this block's part of
// <m[:, left[a]], m[:, right[b]]> for the TILE x TILE tile blockIdx.y. With `symmetric`
// (left and right the same list) tiles wholly below the diagonal are skipped.
template <typename T>
__device__ void cross(const T *m, int64_t n, const int *left, int left_count, const int *right,
                      int right_count, int symmetric, double *partials) {
    __shared__ double sums[TILE * TILE * THREADS];
    int right_tiles = (right_count + TILE - 1) / TILE;
    int a0 = (blockIdx.y / right_tiles) * TILE;
    int b0 = (blockIdx.y % right_tiles) * TILE;
    if (symmetric && b0 + TILE <= a0) return;
    int rows_here = min(TILE, left_count - a0);
    int cols_here = min(TILE, right_count - b0);
    double acc[TILE][TILE];
    for (int a = 0; a < TILE; a++)
        for (int b = 0; b < TILE; b++) acc[a][b] = 0.0;
    for (int64_t i = blockIdx.x * (int64_t)THREADS + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * THREADS) {
        double l[TILE], r[TILE];
        for (int a = 0; a < TILE; a++)
            l[a] = a < rows_here ? widen(m[(int64_t)left[a0 + a] * n + i]) : 0.0;
        for (int b = 0; b < TILE; b++)
            r[b] = b < cols_here ? widen(m[(int64_t)right[b0 + b] * n + i]) : 0.0;
        for (int a = 0; a < TILE; a++)
            for (int b = 0; b < TILE; b++) acc[a][b] = fma(l[a], r[b], acc[a][b]);
    }
    for (int a = 0; a < TILE; a++)
        for (int b = 0; b < TILE; b++) sums[(a * TILE + b) * THREADS + threadIdx.x] = acc[a][b];
    block_sums(sums, TILE * TILE);
    if (threadIdx.x < TILE * TILE) {
        int a = threadIdx.x / TILE, b = threadIdx.x % TILE;
        if (a < rows_here && b < cols_here) {
            partials[((int64_t)(a0 + a) * right_count + b0 + b) * gridDim.x + blockIdx.x] =
                sums[threadIdx.x * THREADS];
        }
    }
}

// With A = m[:, inputs] (p columns) as it is before the call: m[:, outputs[j]] = A * coef[j]
// for j < q and, when y is not null, y += A * coef[q] (coef is output-major, p per output).
// Each block stages its COMBINE_ROWS rows of A in shared memory (f64, p * COMBINE_ROWS values,
// dynamic) before writing anything, so outputs may be among the inputs.
template <typename T>
__device__ void combine(T *m, int64_t n, const int *inputs, int p, const int *outputs, int q,
                        const double *coef, T *y) {
    extern __shared__ double staged[];
    int lane = threadIdx.x, warp = threadIdx.y;
    int64_t row = blockIdx.x * (int64_t)COMBINE_ROWS + lane;
    bool live = row < n;
    for (int a = warp; a < p; a += COMBINE_WARPS) {
        staged[a * COMBINE_ROWS + lane] = live ? widen(m[(int64_t)inputs[a] * n + row]) : 0.0;
    }
    __syncthreads();
    if (!live) return;
    int sums = q + (y != 0 ? 1 : 0);
    for (int j = warp; j < sums; j += COMBINE_WARPS) {
        double s = 0.0;
        for (int a = 0; a < p; a++) s = fma(staged[a * COMBINE_ROWS + lane], coef[j * p + a], s);
        if (j < q) {
            m[(int64_t)outputs[j] * n + row] = narrow<T>(s);
        } else {
            y[row] = narrow<T>(widen(y[row]) + s);
        }
    }
}

// --- The counter-based Gaussian stream of src/backend/normal.rs, operation for operation. ---

#define GAMMA 0x9e3779b97f4a7c15ULL
#define ONE_BITS 0x3ff0000000000000ULL

__device__ __forceinline__ uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

__device__ __forceinline__ double unit(uint64_t h) {
    return __longlong_as_double((long long)((h >> 12) | ONE_BITS)) - 1.0;
}

// c[0] + x * (c[1] + x * (...)) with fused multiply-adds.
__device__ __forceinline__ double horner(double x, const double *c, int k) {
    double p = c[k - 1];
    for (int i = k - 2; i >= 0; i--) p = fma(p, x, c[i]);
    return p;
}

__device__ double log_normal_positive(double u) {
    const double odd_coefficients[9] = {1.0,       1.0 / 3.0,  1.0 / 5.0,  1.0 / 7.0, 1.0 / 9.0,
                                        1.0 / 11.0, 1.0 / 13.0, 1.0 / 15.0, 1.0 / 17.0};
    uint64_t bits = (uint64_t)__double_as_longlong(u);
    double exponent = (double)((bits >> 52) & 0x7ff) - 1023.0;
    double m = __longlong_as_double((long long)((bits & 0x000fffffffffffffULL) | ONE_BITS));
    if (m > 1.4142135623730951) {
        m = 0.5 * m;
        exponent = exponent + 1.0;
    }
    double s = (m - 1.0) / (m + 1.0);
    double odd = horner(s * s, odd_coefficients, 9);
    return fma(exponent, 0.6931471805599453, 2.0 * s * odd);
}

// (-1)^i / (2i + first)!, as src/backend/normal.rs computes them (products of doubles).
__device__ void taylor(int first, double *c) {
    for (int i = 0; i < 9; i++) {
        double f = 1.0;
        for (int k = 2; k <= 2 * i + first; k++) f *= (double)k;
        c[i] = (i % 2 == 0 ? 1.0 : -1.0) * (1.0 / f);
    }
}

__device__ void sincos_turns(double t, double *sin_out, double *cos_out) {
    double sin_c[9], cos_c[9];
    taylor(1, sin_c);
    taylor(0, cos_c);
    double x = 4.0 * t;
    double q = floor(x + 0.5);
    double theta = (x - q) * 1.5707963267948966;
    double t2 = theta * theta;
    double s = theta * horner(t2, sin_c, 9);
    double c = horner(t2, cos_c, 9);
    if (q == 1.0 || q == 3.0) {
        double swap = s;
        s = c;
        c = swap;
    }
    if (q == 2.0 || q == 3.0) s = -s;
    if (q == 1.0 || q == 2.0) c = -c;
    *sin_out = s;
    *cos_out = c;
}

// m[:, cols[j]] = stream j (state bases[j]); one thread per pair of rows.
template <typename T>
__device__ void gaussian(T *m, int64_t n, const int *cols, const uint64_t *bases) {
    T *col = m + (int64_t)cols[blockIdx.y] * n;
    uint64_t base = bases[blockIdx.y];
    int64_t pairs = (n + 1) / 2;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < pairs;
         i += (int64_t)gridDim.x * blockDim.x) {
        uint64_t h1 = mix(base + (2 * (uint64_t)i + 1) * GAMMA);
        uint64_t h2 = mix(base + (2 * (uint64_t)i + 2) * GAMMA);
        double radius = sqrt(-2.0 * log_normal_positive(1.0 - unit(h1)));
        double s, c;
        sincos_turns(unit(h2), &s, &c);
        col[2 * i] = narrow<T>(radius * c);
        if (2 * i + 1 < n) col[2 * i + 1] = narrow<T>(radius * s);
    }
}

// --- Entry-wise operations. ---

template <typename T>
__device__ void clamp_columns(T *m, int64_t n, const int *cols, double limit) {
    T *col = m + (int64_t)cols[blockIdx.y] * n;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        col[i] = narrow<T>(fmin(fmax(widen(col[i]), -limit), limit));
    }
}

// y = round(alpha * x + y), one fused rounding in f64.
template <typename T> __device__ void axpy(double alpha, const T *x, T *y, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        y[i] = narrow<T>(fma(alpha, widen(x[i]), widen(y[i])));
    }
}

template <typename T> __device__ void scale(double alpha, T *y, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        y[i] = narrow<T>(alpha * widen(y[i]));
    }
}

// y = round(y + w) for an f64 vector w.
template <typename T> __device__ void add_f64(T *y, const double *w, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        y[i] = narrow<T>(widen(y[i]) + w[i]);
    }
}

// out = x as f64 (so a download is one f64 copy).
template <typename T> __device__ void to_f64(const T *x, double *out, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        out[i] = widen(x[i]);
    }
}

// One extern "C" entry point per operation and element type.
#define ENTRY_POINTS(T, SUFFIX)                                                                   \
    extern "C" __global__ void load_checked_##SUFFIX(const T *src, T *dst, int64_t n,             \
                                                     double *partials,                            \
                                                     unsigned long long *first_bad) {             \
        load_checked<T>(src, dst, n, partials, first_bad);                                        \
    }                                                                                             \
    extern "C" __global__ void column_dots_##SUFFIX(const T *m, int64_t n, const int *cols,       \
                                                    int count, const T *x, double *partials) {    \
        column_dots<T>(m, n, cols, count, x, partials);                                           \
    }                                                                                             \
    extern "C" __global__ void cross_##SUFFIX(const T *m, int64_t n, const int *left,             \
                                              int left_count, const int *right, int right_count,  \
                                              int symmetric, double *partials) {                  \
        cross<T>(m, n, left, left_count, right, right_count, symmetric, partials);                \
    }                                                                                             \
    extern "C" __global__ void combine_##SUFFIX(T *m, int64_t n, const int *inputs, int p,        \
                                                const int *outputs, int q, const double *coef,    \
                                                T *y) {                                           \
        combine<T>(m, n, inputs, p, outputs, q, coef, y);                                         \
    }                                                                                             \
    extern "C" __global__ void gaussian_##SUFFIX(T *m, int64_t n, const int *cols,                \
                                                 const uint64_t *bases) {                         \
        gaussian<T>(m, n, cols, bases);                                                           \
    }                                                                                             \
    extern "C" __global__ void clamp_columns_##SUFFIX(T *m, int64_t n, const int *cols,           \
                                                      double limit) {                             \
        clamp_columns<T>(m, n, cols, limit);                                                      \
    }                                                                                             \
    extern "C" __global__ void axpy_##SUFFIX(double alpha, const T *x, T *y, int64_t n) {         \
        axpy<T>(alpha, x, y, n);                                                                  \
    }                                                                                             \
    extern "C" __global__ void scale_##SUFFIX(double alpha, T *y, int64_t n) {                    \
        scale<T>(alpha, y, n);                                                                    \
    }                                                                                             \
    extern "C" __global__ void add_f64_##SUFFIX(T *y, const double *w, int64_t n) {               \
        add_f64<T>(y, w, n);                                                                      \
    }                                                                                             \
    extern "C" __global__ void to_f64_##SUFFIX(const T *x, double *out, int64_t n) {              \
        to_f64<T>(x, out, n);                                                                     \
    }

ENTRY_POINTS(float, f32)
ENTRY_POINTS(double, f64)
