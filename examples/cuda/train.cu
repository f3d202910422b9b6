// Trains a small problem on the GPU with LRE through the C++ binding: the parameters and the
// gradient are cudaMalloc'd device vectors, the gradient is computed by a kernel on the
// caller's stream, and LRE (spec "device=cuda:0") steps them in place on the same stream.
//
// The problem: f(x) = ½ Σ d_i x_i² with curvatures d_i spread over three decades.
// Build (the library built by cargo, the headers of this repository):
//   nvcc -std=c++17 -Iinclude -Ibindings/cpp examples/cuda/train.cu -Ltarget/release -llre \
//        -o train && LD_LIBRARY_PATH=target/release ./train
// It runs only where there is an NVIDIA GPU; tests/gpu/run.sh runs it. Exit status 0 when the
// loss fell at least a hundredfold.

#include "lre.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

__global__ void quadratic_gradient(const float *d, const float *x, float *g, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) g[i] = d[i] * x[i];
}

void check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
        std::exit(2);
    }
}

double loss(const std::vector<float> &d, const float *x_device, cudaStream_t stream) {
    std::vector<float> x(d.size());
    check(cudaMemcpyAsync(x.data(), x_device, x.size() * sizeof(float), cudaMemcpyDeviceToHost,
                          stream),
          "copying x back");
    check(cudaStreamSynchronize(stream), "waiting for the stream");
    double f = 0.0;
    for (std::size_t i = 0; i < x.size(); i++) f += 0.5 * d[i] * double(x[i]) * x[i];
    return f;
}

}  // namespace

int main() {
    const int n = 100000;
    const int steps = 300;
    std::vector<float> d(n), x(n, 1.0f);
    for (int i = 0; i < n; i++) d[i] = std::pow(10.0f, 3.0f * i / n - 2.0f);

    float *d_dev = nullptr, *x_dev = nullptr, *g_dev = nullptr;
    check(cudaMalloc(&d_dev, n * sizeof(float)), "cudaMalloc d");
    check(cudaMalloc(&x_dev, n * sizeof(float)), "cudaMalloc x");
    check(cudaMalloc(&g_dev, n * sizeof(float)), "cudaMalloc g");
    check(cudaMemcpy(d_dev, d.data(), n * sizeof(float), cudaMemcpyHostToDevice), "copying d");
    check(cudaMemcpy(x_dev, x.data(), n * sizeof(float), cudaMemcpyHostToDevice), "copying x");
    cudaStream_t stream;
    check(cudaStreamCreate(&stream), "cudaStreamCreate");

    int status = 0;
    try {
        lre::Optimizer opt("device=cuda:0; lr=0.05", n);
        opt.set_stream(stream);
        const double first = loss(d, x_dev, stream);
        for (int step = 0; step < steps; step++) {
            quadratic_gradient<<<(n + 255) / 256, 256, 0, stream>>>(d_dev, x_dev, g_dev, n);
            check(cudaGetLastError(), "launching the gradient");
            opt.step(x_dev, g_dev);  // device pointers
        }
        const double last = loss(d, x_dev, stream);
        std::printf("loss %.6g -> %.6g after %d steps on the GPU\n", first, last, steps);
        status = last < first / 100 ? 0 : 1;
    } catch (const lre::Error &e) {
        std::fprintf(stderr, "LRE: %s\n", e.what());
        status = 2;
    }
    cudaStreamDestroy(stream);
    cudaFree(d_dev);
    cudaFree(x_dev);
    cudaFree(g_dev);
    return status;
}
