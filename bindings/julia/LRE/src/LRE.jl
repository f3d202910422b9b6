"""
    LRE

Julia binding of liblre, the low-rank eigenbasis optimizers (the C API in `include/lre.h`).

    opt = LRE.Optimizer("basis=ggt(history_size=50); lr=0.1", length(x))
    step!(opt, x, g)                        # updates x in place
    step!(opt, x, g; hvp = v -> H * v)      # for curvatures that use Hessian-vector products

The library is the package's preference `libpath` (set it with `LRE.set_library!(path)`), else
`liblre` from the system's library path.
"""
module LRE

using Preferences

export LREError, set_allreduce!, step!, begin!, probes, finish!, cancel!, step_batch!

# A compile-time preference: Julia precompiles the package again when it changes, so the path is
# never stale (an environment variable read here would be frozen at precompile time).
const libLRE = @load_preference("libpath", "liblre")

"""
    LRE.set_library!(path)

Makes LRE load the library at `path` (a `liblre.so`) from the next Julia session on; `nothing`
goes back to `liblre` from the system's library path. The path is stored as the preference
`libpath` in the `LocalPreferences.toml` beside the active project.
"""
function set_library!(path::Union{AbstractString,Nothing})
    if path === nothing
        delete_preferences!(@__MODULE__, "libpath"; force = true)
    else
        isfile(path) || throw(ArgumentError("set_library!: $path is not a file"))
        set_preferences!(@__MODULE__, "libpath" => abspath(path); force = true)
    end
    @info "LRE will load $(something(path, "liblre")) after Julia restarts (now: $libLRE)"
    return nothing
end

# The header's values (tools/julia_checker compares them with include/lre.h).
const LRE_ABI_VERSION = UInt32(1)

const LRE_OK = Int32(0)
const LRE_ERR_NULL_POINTER = Int32(1)
const LRE_ERR_INVALID_ARGUMENT = Int32(2)
const LRE_ERR_SPEC = Int32(3)
const LRE_ERR_UNSUPPORTED = Int32(4)
const LRE_ERR_CALLBACK = Int32(5)
const LRE_ERR_NUMERICAL = Int32(6)
const LRE_ERR_STATE = Int32(7)
const LRE_ERR_IO = Int32(8)
const LRE_ERR_DEVICE = Int32(9)
const LRE_ERR_BUFFER_TOO_SMALL = Int32(10)
const LRE_ERR_CALL_ORDER = Int32(11)
const LRE_ERR_OUT_OF_MEMORY = Int32(12)
const LRE_ERR_PANIC = Int32(13)
const LRE_ERR_BUSY = Int32(14)

"""
    LREError(status, message)

A failed LRE call: `status` is the C API's `lre_status` (compare it with `LRE.LRE_ERR_SPEC` and
the other `LRE_ERR_*` constants) and `message` the library's explanation of what was wrong.
"""
struct LREError <: Exception
    status::Int32
    message::String
end

function Base.showerror(io::IO, e::LREError)
    what = unsafe_string(ccall((:lre_status_string, libLRE), Cstring, (Int32,), e.status))
    print(io, "LREError: ", what, " (status ", e.status, "): ", e.message)
end

# Throws the LREError of a failed call. The message is the calling thread's last error, so it is
# read right after the call, before anything else can call into the library.
function check(status::Integer)
    status == LRE_OK && return nothing
    message = unsafe_string(ccall((:lre_last_error_message, libLRE), Cstring, ()))
    throw(LREError(status, message))
end

"The version of the loaded library."
version() = VersionNumber(unsafe_string(ccall((:lre_version, libLRE), Cstring, ())))

# A library built for another ABI would misread this wrapper's calls.
function check_abi()
    abi = ccall((:lre_abi_version, libLRE), UInt32, ())
    abi == LRE_ABI_VERSION || throw(LREError(LRE_ERR_UNSUPPORTED,
        "the loaded liblre ($libLRE) has ABI version $abi but LRE.jl was written for " *
        "$LRE_ABI_VERSION; use a matching library"))
    return nothing
end

"""
    LRE.Optimizer(spec, n; dtype = nothing)

An optimizer for `n` parameters configured by a spec string (`""` is the default configuration;
see the README, "The spec string"). Its element type is `dtype` (`Float32` or `Float64`) when
given, else the spec's `dtype` (f32 unless it says `dtype=f64`). The library's memory is freed by
`close(opt)` or, later, by the garbage collector. One optimizer serves one call at a time: a call
that overlaps another on the same optimizer (from another thread, or from its own `hvp`) throws an
`LREError` with status `LRE_ERR_BUSY` and changes nothing; tasks that share one must take turns.
"""
mutable struct Optimizer{T<:Union{Float32,Float64}}
    ptr::Ptr{Cvoid}
    ndim::Int
    hvp::Any             # the callback of the step in progress
    callback_error::Any  # what it threw, rethrown once the C call has returned
    allreduce::Any       # sharded mode: the registered all-reduce (set_allreduce!)

    function Optimizer{T}(ptr::Ptr{Cvoid}, ndim::Integer) where {T}
        return finalizer(close, new{T}(ptr, ndim, nothing, nothing, nothing))
    end
end

function Optimizer(spec::AbstractString, n::Integer;
                   dtype::Union{Nothing,Type{Float32},Type{Float64}} = nothing)
    check_abi()
    # Empty entries are allowed, so this also works for spec == "".
    full = dtype === nothing ? spec : string(spec, "; dtype=", dtype === Float32 ? "f32" : "f64")
    out = Ref{Ptr{Cvoid}}(C_NULL)
    check(ccall((:lre_optimizer_new, libLRE), Cint, (Cstring, Csize_t, Ref{Ptr{Cvoid}}),
                full, n, out))
    return own(out[])
end

# Wraps a handle fresh from the library; its element type and size are read from the handle.
function own(ptr::Ptr{Cvoid})
    dtype, n = try
        (get_param(ptr, "dtype"), get_param(ptr, "ndim"))
    catch
        ccall((:lre_optimizer_free, libLRE), Cvoid, (Ptr{Cvoid},), ptr)
        rethrow()
    end
    # An lre_dtype code: LRE_DTYPE_F32 = 1, LRE_DTYPE_F64 = 2.
    T = dtype == 2 ? Float64 : Float32
    return Optimizer{T}(ptr, Int(n))
end

function Base.unsafe_convert(::Type{Ptr{Cvoid}}, opt::Optimizer)
    opt.ptr == C_NULL && throw(ArgumentError("this LRE.Optimizer was closed"))
    return opt.ptr
end

"""
    close(opt::LRE.Optimizer)

Frees the library's optimizer now instead of at garbage collection; `opt` is unusable afterwards.
Closing twice is harmless.
"""
function Base.close(opt::Optimizer)
    ptr, opt.ptr = opt.ptr, C_NULL
    ccall((:lre_optimizer_free, libLRE), Cvoid, (Ptr{Cvoid},), ptr)
    return nothing
end

function Base.show(io::IO, opt::Optimizer{T}) where {T}
    print(io, "LRE.Optimizer{", T, "}(ndim = ", opt.ndim)
    print(io, opt.ptr == C_NULL ? ", closed)" : ", step = $(Int(opt["step"])))")
end

"""
    step!(opt, x, g; hvp = nothing) -> x

One step: reads the gradient `g` and updates the parameters `x` in place, both arrays of the
optimizer's element type with `ndim` elements (dense arrays or strided views such as
`view(A, :, j)` or `x[1:2:end]`; see `with_contiguous`). Curvatures that use Hessian-vector products
call `hvp(v)`, which returns H·v (`v` is valid only during the call); an exception it throws
aborts the step and is rethrown here. A failed step leaves `x` and the optimizer unchanged.
"""
function step!(opt::Optimizer{T}, x::StridedArray{T}, g::StridedArray{T}; hvp = nothing) where {T}
    check_length(opt, x, "x")
    check_length(opt, g, "g")
    with_contiguous(x; write_back = true) do xc
        with_contiguous(g) do gc
            with_hvp(opt, hvp) do callback, user
                c_step(opt, xc, gc, callback, user)
            end
        end
    end
    return x
end

# Whether the elements of `a` are one column-major block of memory, as the C API reads arrays:
# dense arrays and views such as `x[2:5]` or `A[:, j]` are, `x[1:2:end]` or `A[1, :]` are not.
function is_contiguous(a::StridedArray)
    expected = 1
    for (n, stride) in zip(size(a), strides(a))
        n == 1 || stride == expected || return false
        expected *= n
    end
    return true
end

"""
    with_contiguous(f, a; write_back = false)

`f(a)` when `a`'s elements are contiguous in memory, else `f(copy)` with a contiguous copy of
`a`; with `write_back`, what the C call wrote into the copy is copied back into `a` when `f`
returns (not when it throws, so a failed step leaves `a` unchanged).
"""
function with_contiguous(f, a::StridedArray; write_back::Bool = false)
    is_contiguous(a) && return f(a)
    buffer = Array(a)
    result = f(buffer)
    write_back && copyto!(a, buffer)
    return result
end

function check_length(opt::Optimizer, a::AbstractArray, name::AbstractString)
    length(a) == opt.ndim ||
        throw(DimensionMismatch("$name has $(length(a)) elements; the optimizer has ndim = $(opt.ndim)"))
    return nothing
end

c_step(opt::Optimizer{Float32}, x, g, callback, user) =
    ccall((:lre_optimizer_step_f32, libLRE), Cint,
          (Ptr{Cvoid}, Ptr{Float32}, Ptr{Float32}, Ptr{Cvoid}, Ptr{Cvoid}), opt, x, g, callback, user)
c_step(opt::Optimizer{Float64}, x, g, callback, user) =
    ccall((:lre_optimizer_step_f64, libLRE), Cint,
          (Ptr{Cvoid}, Ptr{Float64}, Ptr{Float64}, Ptr{Cvoid}, Ptr{Cvoid}), opt, x, g, callback, user)

"""
    begin!(opt, g) -> k

Split step, phase one: validates the gradient and returns how many Hessian-vector products the
step needs (0 on steps that do not update the curvature). Then `probes(opt, k)` and
`finish!(opt, x, hvps)`; `cancel!(opt)` abandons the step.
"""
function begin!(opt::Optimizer{T}, g::StridedArray{T}) where {T}
    check_length(opt, g, "g")
    k = Ref{Csize_t}(0)
    with_contiguous(gc -> check(c_begin(opt, gc, k)), g)
    return Int(k[])
end

c_begin(opt::Optimizer{Float32}, g, k) =
    ccall((:lre_optimizer_begin_f32, libLRE), Cint, (Ptr{Cvoid}, Ptr{Float32}, Ref{Csize_t}), opt, g, k)
c_begin(opt::Optimizer{Float64}, g, k) =
    ccall((:lre_optimizer_begin_f64, libLRE), Cint, (Ptr{Cvoid}, Ptr{Float64}, Ref{Csize_t}), opt, g, k)

"""
    probes(opt, k) -> Matrix (ndim × k)

The begun split step's probe vectors, one per column.
"""
function probes(opt::Optimizer{T}, k::Integer) where {T}
    out = Matrix{T}(undef, opt.ndim, k)
    check(c_probes(opt, out))
    return out
end

c_probes(opt::Optimizer{Float32}, out) =
    ccall((:lre_optimizer_probes_f32, libLRE), Cint, (Ptr{Cvoid}, Ptr{Float32}), opt, out)
c_probes(opt::Optimizer{Float64}, out) =
    ccall((:lre_optimizer_probes_f64, libLRE), Cint, (Ptr{Cvoid}, Ptr{Float64}), opt, out)

"""
    finish!(opt, x, hvps)

Split step, phase two: `hvps` (ndim × k) holds H·probe for each probe; updates `x` in place.
Non-finite products throw `LREError` with nothing changed and the step still begun.
"""
function finish!(opt::Optimizer{T}, x::StridedArray{T}, hvps::StridedMatrix{T}) where {T}
    check_length(opt, x, "x")
    size(hvps, 1) == opt.ndim || throw(DimensionMismatch("hvps has $(size(hvps, 1)) rows; ndim = $(opt.ndim)"))
    with_contiguous(x; write_back = true) do xc
        with_contiguous(hc -> check(c_finish(opt, xc, hc)), hvps)
    end
    return x
end

c_finish(opt::Optimizer{Float32}, x, hvps) =
    ccall((:lre_optimizer_finish_f32, libLRE), Cint, (Ptr{Cvoid}, Ptr{Float32}, Ptr{Float32}), opt, x, hvps)
c_finish(opt::Optimizer{Float64}, x, hvps) =
    ccall((:lre_optimizer_finish_f64, libLRE), Cint, (Ptr{Cvoid}, Ptr{Float64}, Ptr{Float64}), opt, x, hvps)

"""
    cancel!(opt)

Abandons a begun split step; nothing changes.
"""
cancel!(opt::Optimizer) = (check(ccall((:lre_optimizer_cancel, libLRE), Cint, (Ptr{Cvoid},), opt)); opt)

"""
    step_batch!(opt, x, per_sample_grads; values = nothing)

A batch step: `per_sample_grads` is ndim × batch (one sample's gradient per column) and
`values` the per-sample residuals for `gauss_newton`.
"""
function step_batch!(opt::Optimizer{T}, x::StridedArray{T}, per_sample_grads::StridedMatrix{T};
                     values::Union{Nothing,StridedVector{T}} = nothing) where {T}
    check_length(opt, x, "x")
    size(per_sample_grads, 1) == opt.ndim ||
        throw(DimensionMismatch("per_sample_grads has $(size(per_sample_grads, 1)) rows; ndim = $(opt.ndim)"))
    batch = size(per_sample_grads, 2)
    values === nothing || length(values) == batch ||
        throw(DimensionMismatch("$(length(values)) values for a batch of $batch"))
    batch_step(vals) = with_contiguous(x; write_back = true) do xc
        with_contiguous(gc -> check(c_step_batch(opt, xc, gc, batch, vals)), per_sample_grads)
    end
    values === nothing ? batch_step(Ptr{T}(C_NULL)) : with_contiguous(batch_step, values)
    return x
end

c_step_batch(opt::Optimizer{Float32}, x, grads, batch, vals) =
    ccall((:lre_optimizer_step_batch_f32, libLRE), Cint,
          (Ptr{Cvoid}, Ptr{Float32}, Ptr{Float32}, Csize_t, Ptr{Float32}, Ptr{Cvoid}, Ptr{Cvoid}),
          opt, x, grads, batch, vals, C_NULL, C_NULL)
c_step_batch(opt::Optimizer{Float64}, x, grads, batch, vals) =
    ccall((:lre_optimizer_step_batch_f64, libLRE), Cint,
          (Ptr{Cvoid}, Ptr{Float64}, Ptr{Float64}, Csize_t, Ptr{Float64}, Ptr{Cvoid}, Ptr{Cvoid}),
          opt, x, grads, batch, vals, C_NULL, C_NULL)

# Runs `c_call(callback, user)`, a C call that may invoke the HVP callback, with `hvp` behind the
# trampoline, and rethrows what `hvp` threw. `opt` is the callback's user data: it must stay
# rooted while C holds its address.
function with_hvp(c_call, opt::Optimizer{T}, hvp) where {T}
    hvp === nothing && return check(c_call(C_NULL, C_NULL))
    # A call from inside `hvp` comes back here (and is refused as busy): it must leave the
    # callback of the step in progress in place.
    outer, opt.hvp = opt.hvp, hvp
    status = try
        GC.@preserve opt c_call(hvp_trampoline(T), pointer_from_objref(opt))
    finally
        opt.hvp = outer
    end
    err = opt.callback_error
    if err !== nothing
        opt.callback_error = nothing
        throw(err)
    end
    return check(status)
end

# The HVP callback the library calls (lre_hvp_f32_fn / lre_hvp_f64_fn). A Julia exception must
# not unwind through C frames: it is kept for with_hvp, and the non-zero return makes the library
# abort the step with LRE_ERR_CALLBACK, changing nothing.
function hvp_callback(user::Ptr{Cvoid}, v::Ptr{T}, hv::Ptr{T}, n::Csize_t)::Cint where {T}
    opt = unsafe_pointer_to_objref(user)::Optimizer{T}
    try
        unsafe_wrap(Array, hv, Int(n)) .= opt.hvp(unsafe_wrap(Array, v, Int(n)))
        return 0
    catch err
        opt.callback_error = err
        return 1
    end
end

hvp_trampoline(::Type{Float32}) =
    @cfunction(hvp_callback, Cint, (Ptr{Cvoid}, Ptr{Float32}, Ptr{Float32}, Csize_t))
hvp_trampoline(::Type{Float64}) =
    @cfunction(hvp_callback, Cint, (Ptr{Cvoid}, Ptr{Float64}, Ptr{Float64}, Csize_t))

"""
    set_allreduce!(opt, sum)

Sharded mode (spec keys `global_ndim` and `shard_offset`; README, "Sharded training"): registers
the all-reduce. `sum(buf)` sums the `Vector{Float64}` `buf` in place across all ranks, every rank
receiving the same bits (a reduce to one rank, then a broadcast), and returns. If it throws, the
step fails with `LRE_ERR_CALLBACK` and this rank's parameters and state are unchanged. The
optimizer keeps `sum` and must stay reachable while it steps.
"""
function set_allreduce!(opt::Optimizer, sum)
    opt.allreduce = sum
    GC.@preserve opt check(ccall((:lre_optimizer_set_allreduce, libLRE), Cint,
                                 (Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}),
                                 opt, allreduce_trampoline(), pointer_from_objref(opt)))
    return opt
end

# The all-reduce the library calls (lre_allreduce_fn); as with hvp_callback, an exception is kept
# rather than unwound through C frames.
function allreduce_callback(buf::Ptr{Cdouble}, len::Csize_t, user::Ptr{Cvoid})::Cint
    opt = unsafe_pointer_to_objref(user)::Optimizer
    try
        opt.allreduce(unsafe_wrap(Array, buf, Int(len)))
        return 0
    catch err
        opt.callback_error = err
        return 1
    end
end

allreduce_trampoline() = @cfunction(allreduce_callback, Cint, (Ptr{Cdouble}, Csize_t, Ptr{Cvoid}))

"""
    opt[key] -> Float64
    opt[key] = value

Reads a parameter (`"lr"`, and read-only `"step"`, `"rank"`, `"ndim"`, `"num_probes"`,
`"update_freq"`, `"init_steps"`, `"seed"`, `"threads"`, `"symmetrize"`) or sets one (`"lr"`).
"""
Base.getindex(opt::Optimizer, key::AbstractString) = get_param(opt, key)

function Base.setindex!(opt::Optimizer, value::Real, key::AbstractString)
    check(ccall((:lre_optimizer_set_param, libLRE), Cint, (Ptr{Cvoid}, Cstring, Cdouble),
                opt, key, value))
    return opt
end

# `handle` is an Optimizer or a raw handle that is not owned yet.
function get_param(handle, key::AbstractString)
    value = Ref{Cdouble}(0)
    check(ccall((:lre_optimizer_get_param, libLRE), Cint, (Ptr{Cvoid}, Cstring, Ref{Cdouble}),
                handle, key, value))
    return value[]
end

"""
    chain_push!(opt, component)

Appends an inner optimizer (e.g. `"adam(beta2=0.999)"`) to the chain; only before the first step.
"""
function chain_push!(opt::Optimizer, component::AbstractString)
    check(ccall((:lre_optimizer_chain_push, libLRE), Cint, (Ptr{Cvoid}, Cstring), opt, component))
    return opt
end

"The canonical spec string, every default filled in."
spec(opt::Optimizer) = read_spec(opt)

function read_spec(handle)
    bytes = read_buffer(UInt8, 1) do buf, cap, len
        ccall((:lre_optimizer_spec, libLRE), Cint, (Ptr{Cvoid}, Ptr{UInt8}, Csize_t, Ref{Csize_t}),
              handle, buf, cap, len)
    end
    return String(bytes)
end

"""
    eigenvalues(opt) -> Vector{Float64}

The regularized eigenvalues the chain used in the last step, ascending (`opt["rank"]` of them).
Bases without eigenvalues throw an `LREError` with `LRE_ERR_UNSUPPORTED`.
"""
function eigenvalues(opt::Optimizer)
    return read_buffer(Float64) do buf, cap, len
        ccall((:lre_optimizer_eigenvalues, libLRE), Cint,
              (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ref{Csize_t}), opt, buf, cap, len)
    end
end

"""
    state(opt) -> Vector{UInt8}

The optimizer's complete state, a versioned blob for `from_state` and `load_state!` (in any
binding: C, C++ and Julia read the same bytes).
"""
function state(opt::Optimizer)
    return read_buffer(UInt8) do buf, cap, len
        ccall((:lre_optimizer_state_save, libLRE), Cint,
              (Ptr{Cvoid}, Ptr{UInt8}, Csize_t, Ref{Csize_t}), opt, buf, cap, len)
    end
end

"""
    state_bound(opt) -> Int

The most bytes `state(opt)` can ever take with this spec and ndim (for fixed-size buffers);
configurations with per-sample batches throw an `LREError` with `LRE_ERR_UNSUPPORTED`.
"""
function state_bound(opt::Optimizer)
    bytes = Ref{Csize_t}(0)
    check(ccall((:lre_optimizer_state_bound, libLRE), Cint, (Ptr{Cvoid}, Ref{Csize_t}), opt, bytes))
    return Int(bytes[])
end

"""
    from_state(blob) -> LRE.Optimizer

A new optimizer, spec, ndim and element type included, from a blob of `state`.
"""
function from_state(blob::DenseVector{UInt8})
    check_abi()
    out = Ref{Ptr{Cvoid}}(C_NULL)
    check(ccall((:lre_optimizer_from_state, libLRE), Cint, (Ptr{UInt8}, Csize_t, Ref{Ptr{Cvoid}}),
                blob, length(blob), out))
    return own(out[])
end

"""
    load_state!(opt, blob) -> opt

Replaces the state with a blob of `state` from an optimizer with the same spec (lr and threads
aside), ndim and element type. On error nothing changes.
"""
function load_state!(opt::Optimizer, blob::DenseVector{UInt8})
    check(ccall((:lre_optimizer_state_load, libLRE), Cint, (Ptr{Cvoid}, Ptr{UInt8}, Csize_t),
                opt, blob, length(blob)))
    return opt
end

"""
    save(opt, path)

Writes the state to a file atomically: a crash mid-save leaves the previous file intact.
"""
function save(opt::Optimizer, path::AbstractString)
    check(ccall((:lre_optimizer_save_file, libLRE), Cint, (Ptr{Cvoid}, Cstring), opt, path))
    return nothing
end

"""
    load!(opt, path) -> opt

Replaces the state with a file written by `save` (as `load_state!`).
"""
function load!(opt::Optimizer, path::AbstractString)
    check(ccall((:lre_optimizer_load_file, libLRE), Cint, (Ptr{Cvoid}, Cstring), opt, path))
    return opt
end

# Reads a buffer through a two-call C function `fill(buf, cap, len)`: a size query with
# buf == C_NULL, then the copy; `terminator` is the extra room it needs (1 for a string's NUL).
function read_buffer(fill, ::Type{E}, terminator::Integer = 0) where {E}
    len = Ref{Csize_t}(0)
    check(fill(C_NULL, 0, len))
    buf = Vector{E}(undef, len[] + terminator)
    check(fill(buf, length(buf), len))
    return resize!(buf, len[])
end

end # module
