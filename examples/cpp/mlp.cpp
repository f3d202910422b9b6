// Trains a small MLP with LRE (the default configuration) and with Adam
// ("basis=identity; chain=[adam]"), prints both loss curves, and passes a Hessian-vector
// product callback (central differences of the gradient) to the LRE steps.
//
// Build against an installed LRE (README, "C++"):
//   cmake -S examples/cpp -B build/example -DCMAKE_PREFIX_PATH=$PREFIX
//   cmake --build build/example && build/example/lre_mlp

#include <lre.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

constexpr int kHidden = 32;
constexpr int kSamples = 256;
constexpr int kSteps = 1000;
// Parameter layout: W1 (kHidden x 2), b1 (kHidden), w2 (kHidden), b2.
constexpr std::size_t kParams = kHidden * 2 + kHidden + kHidden + 1;

// A small deterministic generator (xorshift64), uniform in [-0.5, 0.5).
struct Rng {
    std::uint64_t state;
    double uniform() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return static_cast<double>(state >> 11) / 9007199254740992.0 - 0.5;
    }
};

// A 2-32-1 tanh network fitting y = sin(3a)·cos(2b) on 256 random points (mean squared error).
class Mlp {
public:
    Mlp() {
        Rng rng{11};
        for (int s = 0; s < kSamples; s++) {
            double a = 2.0 * rng.uniform(), b = 2.0 * rng.uniform();
            inputs_.push_back({a, b});
            targets_.push_back(std::sin(3.0 * a) * std::cos(2.0 * b));
        }
    }

    std::vector<float> init() const {
        Rng rng{3};
        std::vector<float> x(kParams);
        for (auto &v : x) v = static_cast<float>(rng.uniform());
        return x;
    }

    // The loss at x, and its gradient into g; computed in double for any element type.
    template <class T> double loss_grad(const T *x, T *g) const {
        const T *w1 = x, *b1 = x + 2 * kHidden, *w2 = x + 3 * kHidden, *b2 = x + 4 * kHidden;
        std::vector<double> grad(kParams, 0.0);
        double loss = 0.0, scale = 1.0 / kSamples;
        for (int s = 0; s < kSamples; s++) {
            const auto &in = inputs_[s];
            std::array<double, kHidden> h;
            double out = b2[0];
            for (int j = 0; j < kHidden; j++) {
                h[j] = std::tanh(w1[2 * j] * in[0] + w1[2 * j + 1] * in[1] + b1[j]);
                out += w2[j] * h[j];
            }
            double err = out - targets_[s];
            loss += 0.5 * err * err * scale;
            double d_out = err * scale;
            for (int j = 0; j < kHidden; j++) {
                double d_h = d_out * w2[j] * (1.0 - h[j] * h[j]);
                grad[2 * j] += d_h * in[0];
                grad[2 * j + 1] += d_h * in[1];
                grad[2 * kHidden + j] += d_h;
                grad[3 * kHidden + j] += d_out * h[j];
            }
            grad[4 * kHidden] += d_out;
        }
        for (std::size_t i = 0; i < kParams; i++) g[i] = static_cast<T>(grad[i]);
        return loss;
    }

    // H·v by central differences of the gradient: (g(x + εv) − g(x − εv)) / 2ε, in double.
    void hvp(const float *x, const float *v, float *hv, std::size_t n) const {
        const double eps = 1e-4;
        std::vector<double> plus(n), minus(n), g_plus(n), g_minus(n);
        for (std::size_t i = 0; i < n; i++) {
            plus[i] = x[i] + eps * v[i];
            minus[i] = x[i] - eps * v[i];
        }
        loss_grad(plus.data(), g_plus.data());
        loss_grad(minus.data(), g_minus.data());
        for (std::size_t i = 0; i < n; i++) {
            hv[i] = static_cast<float>((g_plus[i] - g_minus[i]) / (2.0 * eps));
        }
    }

private:
    std::vector<std::array<double, 2>> inputs_;
    std::vector<double> targets_;
};

struct Run {
    std::string spec;           // canonical: every default filled in
    std::vector<double> losses; // before each step, and after the last
    double num_probes = 0;      // HVPs per step that the configuration asks for
    int hvp_calls = 0;
};

Run train(const Mlp &mlp, const std::string &spec) {
    lre::Optimizer opt(spec, kParams);
    std::vector<float> x = mlp.init();
    std::vector<float> g(kParams);
    Run run{opt.spec(), {}, opt.get("num_probes")};
    for (int step = 0; step < kSteps; step++) {
        run.losses.push_back(mlp.loss_grad(x.data(), g.data()));
        // Curvatures built from Hessian-vector products call this during the step; an
        // exception thrown here aborts the step and comes out of opt.step unchanged.
        opt.step(x, g, [&](const float *v, float *hv, std::size_t n) {
            run.hvp_calls++;
            mlp.hvp(x.data(), v, hv, n);
        });
    }
    run.losses.push_back(mlp.loss_grad(x.data(), g.data()));
    return run;
}

} // namespace

int main() {
    const std::string lre_spec = "lr=0.1";
    const std::string adam_spec = "basis=identity; chain=[adam]; lr=0.003";
    Mlp mlp;
    try {
        Run lre_run = train(mlp, lre_spec);
        Run adam_run = train(mlp, adam_spec);
        std::printf("LRE %s: MLP 2-%d-1 (n=%zu), %d samples, %d steps, f32\n",
                    lre::version().c_str(), kHidden, kParams, kSamples, kSteps);
        std::printf("  LRE:  %s\n  Adam: %s\n\n", lre_run.spec.c_str(), adam_run.spec.c_str());

        std::printf("%6s  %12s  %12s\n", "step", "LRE", "Adam");
        for (int step = 0; step <= kSteps; step += kSteps / 20) {
            std::printf("%6d  %12.4e  %12.4e\n", step, lre_run.losses[step],
                        adam_run.losses[step]);
        }
        std::printf("\nfinal loss: LRE %.4e, Adam %.4e\n", lre_run.losses.back(),
                    adam_run.losses.back());
        std::printf("HVP callback calls: %d (num_probes = %g: the default covariance "
                    "curvature needs no Hessian-vector products)\n",
                    lre_run.hvp_calls, lre_run.num_probes);
    } catch (const lre::Error &e) {
        std::fprintf(stderr, "LRE error %d: %s\n", e.status(), e.what());
        return 1;
    }
    return 0;
}
