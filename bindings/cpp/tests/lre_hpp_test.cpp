/*
 * Test of bindings/cpp/lre.hpp, built as C++17 and as C++20 and run by tests/cpp_bindings.rs
 * (`cargo test --test cpp_bindings`).
 *
 * It writes one file, lre_hpp_test.state, into the current directory.
 *
 * Build by hand (from the crate root, after `cargo build`):
 *   g++ -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -Ibindings/cpp \
 *       bindings/cpp/tests/lre_hpp_test.cpp target/debug/liblre.a -lpthread -ldl -lm \
 *       -o /tmp/lre_hpp_test
 * (the static library: cargo's liblre.so has the soname liblre.so.1, which only an install names)
 *
 * Every check prints what failed; the program exits non-zero if any check failed and always ends
 * with "C++ API: N passed, M failed".
 */

#include "lre.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

static int passed = 0;
static int failed = 0;

static void check(bool ok, int line, const std::string &what) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    std::fprintf(stderr, "FAILED (lre_hpp_test.cpp:%d): %s\n", line, what.c_str());
}

#define CHECK(cond, what) check((cond), __LINE__, (what))

/// Runs `body`, which must throw lre::Error with `status` and a message containing `needle`.
template <class Body>
static void expect_error(lre_status status, const char *needle, Body body, int line) {
    try {
        body();
        check(false, line, std::string("no lre::Error thrown; expected status ") +
                               std::to_string(status));
    } catch (const lre::Error &e) {
        check(e.status() == status, line,
              "status " + std::to_string(e.status()) + ", expected " + std::to_string(status) +
                  " (message: \"" + e.what() + "\")");
        check(std::strstr(e.what(), needle) != nullptr, line,
              std::string("message \"") + e.what() + "\" does not contain \"" + needle + "\"");
    }
}

#define EXPECT_ERROR(status, needle, ...) expect_error((status), (needle), [&] { __VA_ARGS__; }, __LINE__)

/// f(x) = sum_i (i+1) x_i^2 / 2 and its gradient.
template <class T> static double quadratic(const std::vector<T> &x, std::vector<T> &g) {
    double loss = 0.0;
    for (std::size_t i = 0; i < x.size(); i++) {
        g[i] = static_cast<T>(i + 1) * x[i];
        loss += 0.5 * static_cast<double>(g[i] * x[i]);
    }
    return loss;
}

/// Trains the quadratic for `steps` steps from x = 1 and returns the final loss.
template <class T> static double train(lre::Optimizer &opt, std::vector<T> &x, int steps) {
    std::vector<T> g(x.size());
    for (int s = 0; s < steps; s++) {
        quadratic(x, g);
        opt.step(x, g);
    }
    return quadratic(x, g);
}

static_assert(!std::is_copy_constructible_v<lre::Optimizer>, "move-only");
static_assert(!std::is_copy_assignable_v<lre::Optimizer>, "move-only");
static_assert(std::is_nothrow_move_constructible_v<lre::Optimizer>, "cheap moves");
static_assert(std::is_nothrow_move_assignable_v<lre::Optimizer>, "cheap moves");
static_assert(std::is_base_of_v<std::runtime_error, lre::Error>, "lre::Error is a runtime_error");

static void test_create_and_introspect() {
    lre::Optimizer opt("", 8);
    CHECK(opt.ndim() == 8, "ndim() " + std::to_string(opt.ndim()));
    CHECK(opt.get("ndim") == 8.0, "get(ndim)");
    CHECK(opt.get("step") == 0.0, "get(step) before the first step");
    CHECK(opt.get("lr") == 0.01, "the default lr");
    std::string spec = opt.spec();
    CHECK(spec.find("curvature=covariance; basis=ggt(") == 0, "canonical spec: " + spec);
    CHECK(spec.find("dtype=f32") != std::string::npos, "canonical spec names the dtype: " + spec);
    CHECK(lre::version() == std::to_string(LRE_VERSION_MAJOR) + "." +
                               std::to_string(LRE_VERSION_MINOR) + "." +
                               std::to_string(LRE_VERSION_PATCH),
          "version " + lre::version());
    double steps = 0.0;
    CHECK(lre_optimizer_get_param(opt.handle(), "step", &steps) == LRE_OK,
          "handle() is the live C handle");
}

static void test_errors() {
    EXPECT_ERROR(LRE_ERR_SPEC, "ggtt", lre::Optimizer("basis=ggtt", 4));
    EXPECT_ERROR(LRE_ERR_SPEC, "", lre::Optimizer("lr=0.1; lr=0.2", 4));
    EXPECT_ERROR(LRE_ERR_DEVICE, "CUDA", lre::Optimizer("device=cuda:0", 4));
    EXPECT_ERROR(LRE_ERR_INVALID_ARGUMENT, "ndim", lre::Optimizer("", 0));
    try {
        lre::Optimizer("basis=ggtt", 4);
    } catch (const lre::Error &e) {
        CHECK(std::string(e.what()) == lre_last_error_message(),
              "what() is the library's message: " + std::string(e.what()));
    }

    lre::Optimizer opt("lr=0.1", 4);
    std::vector<float> x{1, 2, 3, 4};
    std::vector<float> g{1, 1, 1, 1};
    std::vector<float> short_grad{1, 1, 1};
    EXPECT_ERROR(LRE_ERR_INVALID_ARGUMENT, "grad has 3 elements; expected ndim = 4",
                 opt.step(x, short_grad));
    std::vector<double> xd{1, 2, 3, 4};
    std::vector<double> gd{1, 1, 1, 1};
    EXPECT_ERROR(LRE_ERR_INVALID_ARGUMENT, "f32", opt.step(xd, gd));
    g[2] = std::nanf("");
    EXPECT_ERROR(LRE_ERR_NUMERICAL, "", opt.step(x, g));
    CHECK(x == (std::vector<float>{1, 2, 3, 4}), "a failed step leaves params unchanged");
    CHECK(opt.get("step") == 0.0, "a failed step is not counted");
    EXPECT_ERROR(LRE_ERR_INVALID_ARGUMENT, "read-only", opt.set("step", 3));
    EXPECT_ERROR(LRE_ERR_INVALID_ARGUMENT, "unknown parameter", opt.get("nonsense"));
}

static void test_f32_and_f64_train() {
    lre::Optimizer opt32("basis=ggt(history_size=20); lr=0.1", 8);
    std::vector<float> x32(8, 1.0f);
    std::vector<float> g32(8);
    double start32 = quadratic(x32, g32);
    double end32 = train(opt32, x32, 200);
    CHECK(end32 < 1e-3 * start32, "f32 loss " + std::to_string(start32) + " -> " +
                                      std::to_string(end32));
    CHECK(opt32.get("step") == 200.0, "200 steps counted");

    lre::Optimizer opt64("basis=ggt(history_size=20); lr=0.1; dtype=f64", 8);
    std::vector<double> x64(8, 1.0);
    std::vector<double> g64(8);
    double start64 = quadratic(x64, g64);
    double end64 = train(opt64, x64, 200);
    CHECK(end64 < 1e-3 * start64, "f64 loss " + std::to_string(start64) + " -> " +
                                      std::to_string(end64));
    EXPECT_ERROR(LRE_ERR_INVALID_ARGUMENT, "f64", opt64.step(x32, g32));
}

/// The binding passes the same pointers as a direct C call: same spec, same steps, same bits.
static void test_matches_c_api() {
    const char *spec = "chain=[adam, cautious]; lr=0.05; seed=3";
    lre::Optimizer opt(spec, 6);
    lre_optimizer_t *raw = nullptr;
    CHECK(lre_optimizer_new(spec, 6, &raw) == LRE_OK, "C optimizer");
    std::vector<float> a(6, 0.5f), b(6, 0.5f), ga(6), gb(6);
    for (int s = 0; s < 20; s++) {
        quadratic(a, ga);
        quadratic(b, gb);
        opt.step(a.data(), ga.data());
        CHECK(lre_optimizer_step_f32(raw, b.data(), gb.data(), nullptr, nullptr) == LRE_OK,
              "C step");
    }
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0,
          "lre::Optimizer and the C API give bit-identical parameters");
    lre_optimizer_free(raw);
}

static void test_containers() {
    lre::Optimizer opt("lr=0.1", 4);
    std::array<float, 4> x{1, 1, 1, 1};
    const std::array<float, 4> g{1, 2, 3, 4};
    opt.step(x, g);
    float raw_x[4] = {1, 1, 1, 1};
    const float raw_g[4] = {1, 2, 3, 4};
    opt.step(raw_x, raw_g);
    CHECK(opt.get("step") == 2.0, "std::array and C arrays step");
#ifdef __cpp_lib_span
    std::vector<float> xv(4, 1.0f);
    const std::vector<float> gv{1, 2, 3, 4};
    opt.step(std::span<float>(xv), std::span<const float>(gv));
    CHECK(opt.get("step") == 3.0, "std::span steps");
    CHECK(xv[0] != 1.0f, "std::span step moved the parameters");
    EXPECT_ERROR(LRE_ERR_INVALID_ARGUMENT, "params has 2 elements",
                 opt.step(std::span<float>(xv).first(2), std::span<const float>(gv)));
#endif
}

static void test_set_get() {
    lre::Optimizer opt("lr=0.1", 4);
    opt.set("lr", 0.25);
    CHECK(opt.get("lr") == 0.25, "set(lr) then get(lr)");
    EXPECT_ERROR(LRE_ERR_INVALID_ARGUMENT, "lr", opt.set("lr", -1.0));
    CHECK(opt.get("lr") == 0.25, "a refused set changes nothing");
}

static void test_eigenvalues_and_chain() {
    lre::Optimizer opt("basis=ggt(history_size=10); lr=0.1", 8);
    CHECK(opt.eigenvalues().empty(), "no eigenvalues before the first step");
    std::vector<float> x(8, 1.0f);
    train(opt, x, 5);
    std::vector<double> values = opt.eigenvalues();
    CHECK(values.size() == static_cast<std::size_t>(opt.get("rank")) && !values.empty(),
          "eigenvalues() has rank = " + std::to_string(opt.get("rank")) + " values, got " +
              std::to_string(values.size()));
    for (std::size_t i = 1; i < values.size(); i++) {
        CHECK(values[i - 1] <= values[i], "eigenvalues ascend");
    }
    lre::Optimizer identity("basis=identity; chain=[adam]", 8);
    EXPECT_ERROR(LRE_ERR_UNSUPPORTED, "", identity.eigenvalues());

    lre::Optimizer pushed("chain=[]", 4);
    pushed.chain_push("adam(beta2=0.999)");
    pushed.chain_push("cautious");
    std::string spec = pushed.spec();
    CHECK(spec.find("chain=[adam(beta1=0.9, beta2=0.999") != std::string::npos &&
              spec.find("cautious]") != std::string::npos,
          "chain_push shows in the spec: " + spec);
    EXPECT_ERROR(LRE_ERR_SPEC, "nonsense", pushed.chain_push("nonsense"));
    std::vector<float> y(4, 1.0f);
    train(pushed, y, 1);
    EXPECT_ERROR(LRE_ERR_CALL_ORDER, "", pushed.chain_push("ema"));
}

static void test_move() {
    lre::Optimizer a("lr=0.1", 4);
    lre_optimizer_t *handle = a.handle();
    lre::Optimizer b(std::move(a));
    CHECK(b.handle() == handle && a.handle() == nullptr, "move construction transfers the handle");
    CHECK(b.ndim() == 4, "move construction keeps ndim");
    EXPECT_ERROR(LRE_ERR_NULL_POINTER, "", a.get("step")); // NOLINT: use after move on purpose
    lre::Optimizer c("dtype=f64", 2);
    c = std::move(b); // frees c's own handle (the leak check of the sanitizer build sees it)
    CHECK(c.handle() == handle && c.ndim() == 4, "move assignment transfers the handle");
    std::vector<float> x(4, 1.0f);
    train(c, x, 3);
    CHECK(c.get("step") == 3.0, "the moved-to optimizer steps");
    std::vector<lre::Optimizer> many;
    for (int i = 0; i < 10; i++) {
        many.emplace_back("lr=0.1", 4); // reallocation moves them
    }
    CHECK(many.front().get("ndim") == 4.0, "optimizers survive vector reallocation");
}

/// Running N steps equals running K, saving, restoring into another optimizer and running N−K,
/// bit for bit, through each of the three ways to save: a blob into a fresh optimizer
/// (from_state), a blob into an existing one (load_state), and a file (save/load).
static void test_state() {
    const std::string spec = "basis=ggt(history_size=8); lr=0.05; dtype=f64";
    lre::Optimizer whole(spec, 6);
    std::vector<double> reference(6, 1.0);
    train(whole, reference, 30);

    lre::Optimizer first(spec, 6);
    std::vector<double> start(6, 1.0);
    train(first, start, 12);
    std::vector<std::uint8_t> blob = first.state();
    CHECK(!blob.empty(), "state() is a non-empty blob");
    CHECK(blob.size() <= first.state_bound() && whole.state().size() <= whole.state_bound(),
          "state_bound() bounds the state");
    EXPECT_ERROR(LRE_ERR_UNSUPPORTED, "batch",
                 lre::Optimizer("curvature=empirical_fisher; chain=[natural_gradient]", 6).state_bound());
    first.save("lre_hpp_test.state");

    lre::Optimizer restored = lre::Optimizer::from_state(blob);
    CHECK(restored.ndim() == 6 && restored.spec() == first.spec() && restored.get("step") == 12.0,
          "from_state restores spec, ndim and step count: " + restored.spec());
    lre::Optimizer loaded(spec, 6);
    loaded.load_state(blob);
    lre::Optimizer from_file(spec, 6);
    from_file.load("lre_hpp_test.state");
    for (lre::Optimizer *opt : {&restored, &loaded, &from_file}) {
        std::vector<double> x = start;
        train(*opt, x, 18);
        CHECK(std::memcmp(x.data(), reference.data(), x.size() * sizeof(double)) == 0,
              "resuming from the state gives the uninterrupted run's parameters");
    }

    const std::vector<std::uint8_t> garbage{1, 2, 3, 4};
    EXPECT_ERROR(LRE_ERR_STATE, "", lre::Optimizer::from_state(garbage));
    lre::Optimizer other("basis=ggt(history_size=9); lr=0.05; dtype=f64", 6);
    EXPECT_ERROR(LRE_ERR_STATE, "", other.load_state(blob));
    CHECK(other.get("step") == 0.0, "a refused load changes nothing");
    EXPECT_ERROR(LRE_ERR_IO, "", other.load("no/such/dir/lre.state"));
    EXPECT_ERROR(LRE_ERR_IO, "", other.save("no/such/dir/lre.state"));
}

struct CustomError {
    int code;
};

/// Counts its calls and writes hv = 2·v; a callable object rather than a lambda.
struct Doubling {
    int *calls;
    void operator()(const double *v, double *hv, std::size_t n) const {
        ++*calls;
        for (std::size_t i = 0; i < n; i++) hv[i] = 2.0 * v[i];
    }
};

static void test_hvp() {
    // No curvature implemented today asks for HVPs (num_probes = 0), so the callback must not
    // run; the step itself must still happen.
    lre::Optimizer opt("lr=0.1", 4);
    CHECK(opt.get("num_probes") == 0.0, "covariance needs no HVPs");
    int calls = 0;
    std::vector<float> x(4, 1.0f), g{1, 2, 3, 4};
    opt.step(x, g, [&](const float *, float *, std::size_t) { ++calls; });
    opt.step(x.data(), g.data(), [&](const float *, float *, std::size_t) { ++calls; });
    CHECK(calls == 0 && opt.get("step") == 2.0, "hvp steps run without calling the callback");
    lre::Optimizer opt64("lr=0.1; dtype=f64", 3);
    std::vector<double> xd(3, 1.0), gd{1, 2, 3};
    opt64.step(xd, gd, Doubling{&calls});
    CHECK(calls == 0 && opt64.get("step") == 1.0, "f64 hvp step with a callable object");
#ifdef __cpp_lib_span
    opt.step(x, g, [&](std::span<const float>, std::span<float>) { ++calls; });
    CHECK(calls == 0 && opt.get("step") == 3.0, "hvp taking spans");
#endif

    // The capture and rethrow, with a stand-in for a C call that invokes the callback the way
    // the library does.
    int c_side_result = -1;
    auto c_call_once = [&](lre_hvp_f64_fn fn, void *user) {
        double v[3] = {1, 2, 3}, hv[3] = {0, 0, 0};
        c_side_result = fn(user, v, hv, 3);
        return c_side_result == 0 && hv[2] == 6.0 ? LRE_OK : LRE_ERR_CALLBACK;
    };
    Doubling doubling{&calls};
    lre::detail::call_with_hvp<double>(doubling, c_call_once);
    CHECK(calls == 1 && c_side_result == 0, "a succeeding callback returns 0 and writes H·v");

    auto throwing = [](const double *, double *, std::size_t) { throw CustomError{42}; };
    try {
        lre::detail::call_with_hvp<double>(throwing, c_call_once);
        CHECK(false, "the callback's exception was swallowed");
    } catch (const CustomError &e) {
        CHECK(e.code == 42, "the original exception is rethrown after the C call");
    } catch (...) {
        CHECK(false, "another exception than the callback's came out");
    }
    CHECK(c_side_result != 0, "the trampoline returns non-zero to C when the callback throws");

    auto c_call_failing = [](lre_hvp_f64_fn, void *) { return LRE_ERR_CALLBACK; };
    EXPECT_ERROR(LRE_ERR_CALLBACK, "", lre::detail::call_with_hvp<double>(doubling, c_call_failing));
}

/// The library's own HVP curvatures: the callback runs once per probe, an exception thrown in it
/// aborts the step with nothing changed and is rethrown; the split step matches the callback
/// step bit for bit; the batch step takes per-sample gradients.
static void test_hessian_split_and_batch() {
    const char *spec = "curvature=sr1; basis=ggt(history_size=6); dtype=f64; lr=0.1";
    auto hessian = [](const double *v, double *hv, std::size_t n) {
        for (std::size_t i = 0; i < n; i++) hv[i] = static_cast<double>(i + 1) * v[i];
    };
    lre::Optimizer a(spec, 5), b(spec, 5);
    CHECK(a.get("num_probes") == 1.0, "sr1 needs one HVP");
    std::vector<double> x(5, 1.0), y(5, 1.0), g(5), probes(5), hvps(5);
    int calls = 0;
    for (int t = 0; t < 10; t++) {
        for (std::size_t i = 0; i < 5; i++) g[i] = static_cast<double>(i + 1) * x[i];
        a.step(x, g, [&](const double *v, double *hv, std::size_t n) {
            ++calls;
            hessian(v, hv, n);
        });
        for (std::size_t i = 0; i < 5; i++) g[i] = static_cast<double>(i + 1) * y[i];
        std::size_t k = b.begin(g.data());
        CHECK(k == 1, "one probe per step");
        b.probes(probes.data());
        hessian(probes.data(), hvps.data(), 5);
        b.finish(y.data(), hvps.data());
    }
    CHECK(calls == 10, "the callback ran once per step: " + std::to_string(calls));
    CHECK(x == y, "the split step and the callback step agree bit for bit");

    std::vector<double> before = x;
    auto state = a.state();
    try {
        a.step(x, g, [](const double *, double *, std::size_t) { throw CustomError{7}; });
        CHECK(false, "the callback's exception was swallowed");
    } catch (const CustomError &e) {
        CHECK(e.code == 7, "the callback's own exception comes out of step()");
    }
    CHECK(x == before && a.state() == state, "an aborted step changes nothing");
    EXPECT_ERROR(LRE_ERR_INVALID_ARGUMENT, "Hessian-vector", a.step(x, g));

    // A callback that calls its own optimizer is refused with LRE_ERR_BUSY: caught there, the
    // step goes on; let through, it aborts the step like any exception of the callback.
    double steps = a.get("step");
    int refused = 0;
    a.step(x, g, [&](const double *v, double *hv, std::size_t n) {
        try {
            a.get("step");
        } catch (const lre::Error &e) {
            refused += e.status() == LRE_ERR_BUSY && std::strstr(e.what(), "in use") != nullptr;
        }
        hessian(v, hv, n);
    });
    CHECK(refused == 1 && a.get("step") == steps + 1, "the nested call is refused as busy");
    before = x;
    state = a.state();
    EXPECT_ERROR(LRE_ERR_BUSY, "in use", a.step(x, g, [&](const double *v, double *hv, std::size_t n) {
        a.step(x, g, hessian);
        hessian(v, hv, n);
    }));
    CHECK(x == before && a.state() == state, "a step aborted by a busy nested call changes nothing");
    EXPECT_ERROR(LRE_ERR_CALL_ORDER, "begin", b.finish(y.data(), hvps.data()));
    b.begin(g.data());
    b.cancel();

    lre::Optimizer gn("curvature=gauss_newton; basis=ggt(history_size=2); chain=[l_inv]; lr=1", 2);
    std::vector<float> p{0.0f, 0.0f};
    for (int t = 0; t < 3; t++) {
        // r = A·p − b with A = [[1, 2], [3, 1]], b = [1, 2]: rows of A are the per-sample gradients.
        std::vector<float> rows{1, 2, 3, 1};
        std::vector<float> r{p[0] + 2 * p[1] - 1, 3 * p[0] + p[1] - 2};
        gn.step_batch(p.data(), rows.data(), 2, r.data());
    }
    CHECK(std::fabs(p[0] - 0.6f) < 1e-4f && std::fabs(p[1] - 0.2f) < 1e-4f,
          "gauss_newton solves the linear least-squares problem: " + std::to_string(p[0]) + ", " +
              std::to_string(p[1]));
}

int main() {
    test_create_and_introspect();
    test_errors();
    test_f32_and_f64_train();
    test_matches_c_api();
    test_containers();
    test_set_get();
    test_eigenvalues_and_chain();
    test_move();
    test_state();
    test_hvp();
    test_hessian_split_and_batch();
    std::printf("C++ API (C++%ld): %d passed, %d failed\n", __cplusplus / 100 % 100, passed,
                failed);
    return failed == 0 ? 0 : 1;
}
