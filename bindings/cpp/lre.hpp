/*
 * lre.hpp — header-only C++17 binding of liblre (the C API in lre.h).
 *
 *   lre::Optimizer opt("basis=ggt(history_size=50); lr=0.1", x.size());
 *   opt.step(x, grad);                                   // std::vector, std::array, std::span, T*
 *   opt.step(x, grad, [&](const float *v, float *hv, std::size_t n) { ... });   // with HVPs
 *
 * Every failing call throws lre::Error, which carries the lre_status and the library's message.
 * Element types are float and double; they must match the optimizer's dtype (spec "dtype=f64").
 * An optimizer is move-only and frees its handle when destroyed. Like the C handle, one object
 * serves one call at a time: a call that overlaps another on the same object (from a second
 * thread, or from the object's own HVP callback) throws lre::Error with status LRE_ERR_BUSY and
 * changes nothing; threads that share an optimizer must take turns (a mutex, say).
 *
 * On a GPU (spec "device=cuda:0"): the T* overloads take device pointers (cudaMalloc'd, on that
 * GPU), as do the HVP callback's v and hv; the container overloads are host memory and must not
 * be used. set_stream(stream) queues the optimizer's work on a cudaStream_t. See
 * examples/cuda/train.cu.
 */

#ifndef LRE_HPP
#define LRE_HPP

#include "lre.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if __has_include(<span>)
#include <span>
#endif

namespace lre {

/// A failed LRE call: the status and the library's explanation (what was wrong, what is right).
/// Every lre_status comes through unchanged, LRE_ERR_BUSY (an overlapping call) included.
class Error : public std::runtime_error {
public:
    Error(lre_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}

    lre_status status() const noexcept { return status_; }

private:
    lre_status status_;
};

/// The version of the loaded library ("MAJOR.MINOR.PATCH").
inline std::string version() { return lre_version(); }

namespace detail {

inline void check(lre_status status) {
    if (status != LRE_OK) {
        throw Error(status, lre_last_error_message());
    }
}

template <class> inline constexpr bool always_false = false;

/// The C entry points of one element type.
template <class T> struct Entry {
    static_assert(always_false<T>, "LRE optimizes float or double parameters");
};

template <> struct Entry<float> {
    using Hvp = lre_hvp_f32_fn;
    static constexpr auto step = &lre_optimizer_step_f32;
    static constexpr auto begin = &lre_optimizer_begin_f32;
    static constexpr auto probes = &lre_optimizer_probes_f32;
    static constexpr auto finish = &lre_optimizer_finish_f32;
    static constexpr auto step_batch = &lre_optimizer_step_batch_f32;
};

template <> struct Entry<double> {
    using Hvp = lre_hvp_f64_fn;
    static constexpr auto step = &lre_optimizer_step_f64;
    static constexpr auto begin = &lre_optimizer_begin_f64;
    static constexpr auto probes = &lre_optimizer_probes_f64;
    static constexpr auto finish = &lre_optimizer_finish_f64;
    static constexpr auto step_batch = &lre_optimizer_step_batch_f64;
};

/// Calls `hvp` in whichever of the two supported forms it accepts.
template <class T, class Hvp> void invoke_hvp(Hvp &hvp, const T *v, T *hv, std::size_t n) {
    if constexpr (std::is_invocable_v<Hvp &, const T *, T *, std::size_t>) {
        std::invoke(hvp, v, hv, n);
#ifdef __cpp_lib_span
    } else if constexpr (std::is_invocable_v<Hvp &, std::span<const T>, std::span<T>>) {
        std::invoke(hvp, std::span<const T>(v, n), std::span<T>(hv, n));
#endif
    } else {
        static_assert(always_false<Hvp>,
                      "hvp must be invocable as hvp(const T *v, T *hv, std::size_t n) "
                      "(or, in C++20, as hvp(std::span<const T> v, std::span<T> hv)) and write H·v "
                      "into hv");
    }
}

/// Runs `c_call(trampoline, user)`, a C call that may invoke an lre_hvp_*_fn, with `hvp` behind
/// the trampoline. An exception must not unwind through the library's frames, so the trampoline
/// catches it and returns non-zero (the C call then fails with LRE_ERR_CALLBACK and changes
/// nothing), and it is rethrown here, unchanged, once the C call has returned.
template <class T, class Hvp, class CCall> void call_with_hvp(Hvp &hvp, CCall &&c_call) {
    struct Context {
        Hvp &hvp;
        std::exception_ptr error;
    };
    Context context{hvp, nullptr};
    typename Entry<T>::Hvp trampoline = [](void *user, const T *v, T *hv,
                                           std::size_t n) noexcept -> std::int32_t {
        auto &ctx = *static_cast<Context *>(user);
        try {
            invoke_hvp<T>(ctx.hvp, v, hv, n);
            return 0;
        } catch (...) {
            ctx.error = std::current_exception();
            return 1;
        }
    };
    lre_status status = c_call(trampoline, static_cast<void *>(&context));
    if (context.error) {
        std::rethrow_exception(context.error);
    }
    check(status);
}

/// The all-reduce a sharded optimizer keeps: any callable `sum(double *buf, std::size_t len)`
/// that returns true on success. An exception counts as a failure (LRE_ERR_CALLBACK): it must
/// not unwind through the library's frames.
struct AllreduceBase {
    virtual ~AllreduceBase() = default;
};

template <class Sum> struct Allreduce final : AllreduceBase {
    Sum sum;
    explicit Allreduce(Sum s) : sum(std::move(s)) {}
    static std::int32_t call(double *buf, std::size_t len, void *user) noexcept {
        try {
            return std::invoke(static_cast<Allreduce *>(user)->sum, buf, len) ? 0 : 1;
        } catch (...) {
            return 1;
        }
    }
};

/// Enables the container overloads for types with std::data and std::size (std::vector,
/// std::array, std::span, ...).
template <class C>
using contiguous_t =
    std::void_t<decltype(std::data(std::declval<C &>())), decltype(std::size(std::declval<C &>()))>;

/// Reads a buffer through a two-call C function `fill(buf, cap, &len)`: a size query with
/// buf == NULL, then the copy. `terminator` is the extra room the C call needs (1 for the NUL
/// of a string).
template <class E, class Fill> std::vector<E> read_buffer(Fill fill, std::size_t terminator = 0) {
    std::size_t len = 0;
    check(fill(nullptr, 0, &len));
    std::vector<E> buf(len + terminator);
    check(fill(buf.data(), buf.size(), &len));
    buf.resize(len);
    return buf;
}

} // namespace detail

/// An LRE optimizer over n parameters of the dtype its spec names (f32 unless "dtype=f64").
class Optimizer {
public:
    /// Creates an optimizer from a spec string ("" is the default configuration).
    Optimizer(const std::string &spec, std::size_t n) : Optimizer(create(spec, n)) {}

    /// Sharded mode (spec keys global_ndim, shard_offset): registers the all-reduce, any callable
    /// `sum(double *buf, std::size_t len)` that sums buf in place across all ranks, every rank
    /// receiving the same bits (e.g. MPI_Reduce then MPI_Bcast), and returns true; false or an
    /// exception fails the step with LRE_ERR_CALLBACK, this rank unchanged. The optimizer keeps
    /// the callable.
    template <class Sum> void set_allreduce(Sum &&sum) {
        using Owned = detail::Allreduce<std::decay_t<Sum>>;
        auto owned = std::make_unique<Owned>(std::forward<Sum>(sum));
        detail::check(lre_optimizer_set_allreduce(handle_.get(), &Owned::call, owned.get()));
        allreduce_ = std::move(owned);
    }

    /// device=cuda:N: queues the optimizer's GPU work on `stream` (a cudaStream_t of that
    /// device; nullptr: the optimizer's own stream). The caller keeps the stream alive while set.
    void set_stream(void *stream) { detail::check(lre_optimizer_set_stream(handle_.get(), stream)); }

    /// One step: reads grad, updates params in place (n elements each). On error nothing changed.
    template <class T> void step(T *params, const T *grad) {
        detail::check(detail::Entry<T>::step(handle_.get(), params, grad, nullptr, nullptr));
    }

    /// One step for curvatures that need Hessian-vector products: `hvp(v, hv, n)` writes H·v
    /// into hv. An exception it throws aborts the step (nothing changed) and is rethrown here.
    template <class T, class Hvp> void step(T *params, const T *grad, Hvp &&hvp) {
        detail::call_with_hvp<T>(hvp, [&](typename detail::Entry<T>::Hvp fn, void *user) {
            return detail::Entry<T>::step(handle_.get(), params, grad, fn, user);
        });
    }

    /// As step(T *, const T *) for contiguous containers; their sizes must equal ndim().
    template <class Params, class Grad, class = detail::contiguous_t<Params>,
              class = detail::contiguous_t<Grad>>
    void step(Params &&params, const Grad &grad) {
        step(checked_data(params, "params"), checked_data(grad, "grad"));
    }

    /// As step(T *, const T *, hvp) for contiguous containers.
    template <class Params, class Grad, class Hvp, class = detail::contiguous_t<Params>,
              class = detail::contiguous_t<Grad>>
    void step(Params &&params, const Grad &grad, Hvp &&hvp) {
        step(checked_data(params, "params"), checked_data(grad, "grad"), std::forward<Hvp>(hvp));
    }

    /// Split step, phase one: validates grad and returns how many Hessian-vector products the
    /// step needs (0 on steps that do not update the curvature).
    template <class T> std::size_t begin(const T *grad) {
        std::size_t k = 0;
        detail::check(detail::Entry<T>::begin(handle_.get(), grad, &k));
        return k;
    }

    /// Split step: the begun step's probe vectors, k × ndim() values (row-major).
    template <class T> void probes(T *out) const {
        detail::check(detail::Entry<T>::probes(handle_.get(), out));
    }

    /// Split step, phase two: hvps holds H·probe for each probe (k × ndim()); moves params.
    /// Non-finite HVPs throw LRE_ERR_NUMERICAL with nothing changed and the step still begun.
    template <class T> void finish(T *params, const T *hvps) {
        detail::check(detail::Entry<T>::finish(handle_.get(), params, hvps));
    }

    /// Abandons a begun split step; nothing changes.
    void cancel() { detail::check(lre_optimizer_cancel(handle_.get())); }

    /// A batch step: `batch` rows of ndim() per-sample gradients (row-major) and, for
    /// gauss_newton, `batch` residuals (nullptr where the curvature needs none).
    template <class T>
    void step_batch(T *params, const T *per_sample_grads, std::size_t batch,
                    const T *per_sample_values = nullptr) {
        detail::check(detail::Entry<T>::step_batch(handle_.get(), params, per_sample_grads, batch,
                                                    per_sample_values, nullptr, nullptr));
    }

    /// Sets a parameter: "lr", or "loss" (the next step's loss, for curvatures that use it).
    void set(const std::string &key, double value) {
        detail::check(lre_optimizer_set_param(handle_.get(), key.c_str(), value));
    }

    /// Reads a parameter: "lr", "step", "rank", "ndim", "num_probes", "update_freq", ...
    double get(const std::string &key) const {
        double value = 0.0;
        detail::check(lre_optimizer_get_param(handle_.get(), key.c_str(), &value));
        return value;
    }

    /// Appends an inner optimizer to the chain (before the first step only).
    void chain_push(const std::string &component) {
        detail::check(lre_optimizer_chain_push(handle_.get(), component.c_str()));
    }

    /// The canonical spec, every default filled in.
    std::string spec() const {
        auto text = detail::read_buffer<char>(
            [&](char *buf, std::size_t cap, std::size_t *len) {
                return lre_optimizer_spec(handle_.get(), buf, cap, len);
            },
            1);
        return std::string(text.begin(), text.end());
    }

    /// The regularized eigenvalues the chain used in the last step, ascending (get("rank") of
    /// them). Throws LRE_ERR_UNSUPPORTED for bases without eigenvalues.
    std::vector<double> eigenvalues() const {
        return detail::read_buffer<double>([&](double *buf, std::size_t cap, std::size_t *len) {
            return lre_optimizer_eigenvalues(handle_.get(), buf, cap, len);
        });
    }

    /// The complete state (a versioned, checksummed blob), for from_state() and load_state().
    std::vector<std::uint8_t> state() const {
        return detail::read_buffer<std::uint8_t>(
            [&](std::uint8_t *buf, std::size_t cap, std::size_t *len) {
                return lre_optimizer_state_save(handle_.get(), buf, cap, len);
            });
    }

    /// The most bytes state() can ever take with this spec and ndim (for fixed-size buffers);
    /// throws LRE_ERR_UNSUPPORTED for configurations with per-sample batches.
    std::size_t state_bound() const {
        std::size_t bytes = 0;
        detail::check(lre_optimizer_state_bound(handle_.get(), &bytes));
        return bytes;
    }

    /// An optimizer, spec, ndim and dtype included, from a blob of state().
    static Optimizer from_state(const std::uint8_t *data, std::size_t len) {
        check_abi();
        lre_optimizer_t *raw = nullptr;
        detail::check(lre_optimizer_from_state(data, len, &raw));
        return Optimizer(raw);
    }

    static Optimizer from_state(const std::vector<std::uint8_t> &blob) {
        return from_state(blob.data(), blob.size());
    }

    /// Replaces the state with a blob of state() from an optimizer with the same spec (lr,
    /// weight_decay and threads aside), ndim and dtype. On error nothing changed.
    void load_state(const std::uint8_t *data, std::size_t len) {
        detail::check(lre_optimizer_state_load(handle_.get(), data, len));
    }

    void load_state(const std::vector<std::uint8_t> &blob) { load_state(blob.data(), blob.size()); }

    /// Writes the state to a file atomically (a crash mid-save keeps the previous file).
    void save(const std::string &path) const {
        detail::check(lre_optimizer_save_file(handle_.get(), path.c_str()));
    }

    /// Replaces the state with a file written by save() (as load_state()).
    void load(const std::string &path) {
        detail::check(lre_optimizer_load_file(handle_.get(), path.c_str()));
    }

    /// The number of parameters.
    std::size_t ndim() const noexcept { return ndim_; }

    /// The C handle, for C calls this class does not wrap; it stays owned by this object.
    lre_optimizer_t *handle() const noexcept { return handle_.get(); }

private:
    struct Free {
        void operator()(lre_optimizer_t *opt) const noexcept { lre_optimizer_free(opt); }
    };

    /// Takes ownership of a handle from the C API.
    explicit Optimizer(lre_optimizer_t *raw) : handle_(raw), ndim_(read_ndim(raw)) {}

    static lre_optimizer_t *create(const std::string &spec, std::size_t n) {
        check_abi();
        lre_optimizer_t *raw = nullptr;
        detail::check(lre_optimizer_new(spec.c_str(), n, &raw));
        return raw;
    }

    /// A library built for another ABI would misread this header's calls.
    static void check_abi() {
        if (lre_abi_version() != LRE_ABI_VERSION) {
            throw Error(LRE_ERR_UNSUPPORTED,
                        "the loaded liblre has ABI version " + std::to_string(lre_abi_version()) +
                            " but lre.hpp was compiled against LRE_ABI_VERSION " +
                            std::to_string(LRE_ABI_VERSION) +
                            "; rebuild against the installed lre.h");
        }
    }

    static std::size_t read_ndim(const lre_optimizer_t *raw) {
        double n = 0.0;
        detail::check(lre_optimizer_get_param(raw, "ndim", &n));
        return static_cast<std::size_t>(n);
    }

    /// The data pointer of a container argument, after checking that it holds ndim elements.
    template <class C> auto checked_data(C &c, const char *what) const {
        if (std::size(c) != ndim_) {
            throw Error(LRE_ERR_INVALID_ARGUMENT,
                        std::string(what) + " has " + std::to_string(std::size(c)) +
                            " elements; expected ndim = " + std::to_string(ndim_));
        }
        return std::data(c);
    }

    std::unique_ptr<lre_optimizer_t, Free> handle_;
    std::size_t ndim_;
    std::unique_ptr<detail::AllreduceBase> allreduce_;
};

} // namespace lre

#endif /* LRE_HPP */
