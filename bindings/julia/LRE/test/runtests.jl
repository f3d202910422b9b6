# Tests of the Julia binding. They need Julia, which the development machines lack; there
# tools/julia_checker checks every ccall in this package against include/lre.h statically.
#   julia --project=bindings/julia/LRE -e 'using LRE; LRE.set_library!("target/debug/liblre.so")'
#   julia --project=bindings/julia/LRE -e 'using Pkg; Pkg.test()'
using LRE
using Test

quadratic_grad(x) = collect(eltype(x), 1:length(x)) .* x           # f(x) = Σ i·x_i² / 2
quadratic_loss(x) = sum(collect(1:length(x)) .* x .^ 2) / 2

function train!(opt, x, steps)
    for _ in 1:steps
        step!(opt, x, quadratic_grad(x))
    end
    return x
end

@testset "LRE.jl" begin
    @test LRE.version() isa VersionNumber

    @testset "create, parameters, spec" begin
        opt = LRE.Optimizer("lr=0.1", 8)
        @test opt isa LRE.Optimizer{Float32}
        @test opt.ndim == 8 && opt["ndim"] == 8 && opt["step"] == 0
        opt["lr"] = 0.25
        @test opt["lr"] == 0.25
        @test startswith(LRE.spec(opt), "curvature=covariance; basis=ggt(")
        @test LRE.Optimizer("", 4; dtype = Float64) isa LRE.Optimizer{Float64}
        @test LRE.Optimizer("dtype=f64", 4) isa LRE.Optimizer{Float64}
        again = LRE.Optimizer(LRE.spec(opt), 8)     # the canonical spec recreates it
        @test LRE.spec(again) == LRE.spec(opt)
    end

    @testset "errors" begin
        err = try
            LRE.Optimizer("basis=ggtt", 4)
        catch e
            e
        end
        @test err isa LREError && err.status == LRE.LRE_ERR_SPEC && occursin("ggtt", err.message)
        @test occursin("invalid spec", sprint(showerror, err))
        @test_throws LREError LRE.Optimizer("basis=full_matrix", 2000)
        @test_throws LREError LRE.Optimizer("dtype=f32", 4; dtype = Float64)
        opt = LRE.Optimizer("lr=0.1", 4)
        x = ones(Float32, 4)
        @test_throws DimensionMismatch step!(opt, x, ones(Float32, 3))
        @test_throws MethodError step!(opt, ones(Float64, 4), ones(Float64, 4))
        @test_throws LREError step!(opt, x, Float32[1, NaN, 1, 1])
        @test x == ones(Float32, 4) && opt["step"] == 0
        @test_throws LREError (opt["step"] = 3)
    end

    @testset "training, Float32 and Float64" for T in (Float32, Float64)
        opt = LRE.Optimizer("basis=ggt(history_size=20); lr=0.1", 8; dtype = T)
        x = ones(T, 8)
        start = quadratic_loss(x)
        train!(opt, x, 200)
        @test quadratic_loss(x) < 1e-3 * start
        @test opt["step"] == 200
        values = LRE.eigenvalues(opt)
        @test length(values) == opt["rank"] && issorted(values)
    end

    @testset "chain_push!" begin
        opt = LRE.Optimizer("chain=[]", 4)
        LRE.chain_push!(opt, "adam(beta2=0.999)")
        @test occursin("chain=[adam(beta1=0.9, beta2=0.999", LRE.spec(opt))
        train!(opt, ones(Float32, 4), 1)
        @test_throws LREError LRE.chain_push!(opt, "ema")
    end

    @testset "hvp callback" begin
        opt = LRE.Optimizer("lr=0.1", 4)
        calls = Ref(0)
        x = ones(Float32, 4)
        step!(opt, x, quadratic_grad(x); hvp = v -> (calls[] += 1; v))
        @test calls[] == 0 && opt["num_probes"] == 0 && opt["step"] == 1

        # The trampoline, called through its C pointer the way the library calls it.
        v = Float32[1, 2, 3, 4]
        hv = zeros(Float32, 4)
        invoke_once(callback, user) =
            ccall(callback, Cint, (Ptr{Cvoid}, Ptr{Float32}, Ptr{Float32}, Csize_t), user, v, hv, 4) == 0 ?
                LRE.LRE_OK : LRE.LRE_ERR_CALLBACK
        LRE.with_hvp(invoke_once, opt, w -> 2 .* w)
        @test hv == 2 .* v
        @test_throws DomainError LRE.with_hvp(invoke_once, opt, w -> throw(DomainError(w)))
        @test opt.callback_error === nothing && opt.hvp === nothing
        @test_throws DimensionMismatch LRE.with_hvp(invoke_once, opt, w -> w[1:2])
    end

    @testset "a call from the hvp callback is refused as busy" begin
        opt = LRE.Optimizer("curvature=full_hutchinson_hessian", 4; dtype = Float64)
        x = ones(Float64, 4)
        refused = LREError[]
        function nosy(v)
            try
                opt["step"]
            catch err
                err isa LREError && push!(refused, err)
            end
            return 2 .* v
        end
        step!(opt, x, 2 .* x; hvp = nosy)
        @test length(refused) == 1 && refused[1].status == LRE.LRE_ERR_BUSY
        @test opt["step"] == 1 && opt.hvp === nothing
        before = copy(x)
        meddling(v) = (step!(opt, x, 2 .* x; hvp = nosy); 2 .* v)
        thrown = try
            step!(opt, x, 2 .* x; hvp = meddling)
            nothing
        catch err
            err
        end
        @test thrown isa LREError && thrown.status == LRE.LRE_ERR_BUSY
        @test x == before && opt["step"] == 1
    end

    @testset "state" begin
        spec = "basis=ggt(history_size=8); lr=0.05"
        reference = train!(LRE.Optimizer(spec, 6; dtype = Float64), ones(6), 30)
        before = LRE.Optimizer(spec, 6; dtype = Float64)
        start = train!(before, ones(6), 12)
        blob = LRE.state(before)
        @test length(blob) <= LRE.state_bound(before)
        path = joinpath(mktempdir(), "lre.state")
        LRE.save(before, path)
        restored = LRE.from_state(blob)
        @test restored isa LRE.Optimizer{Float64} && restored["step"] == 12
        loaded = LRE.load_state!(LRE.Optimizer(spec, 6; dtype = Float64), blob)
        from_file = LRE.load!(LRE.Optimizer(spec, 6; dtype = Float64), path)
        for opt in (restored, loaded, from_file)
            @test train!(opt, copy(start), 18) == reference
        end
        @test_throws LREError LRE.from_state(UInt8[1, 2, 3])
        @test_throws LREError LRE.load!(restored, joinpath(path, "missing"))
    end

    @testset "strided views" begin
        spec = "basis=ggt(history_size=8); lr=0.1"
        dense = train!(LRE.Optimizer(spec, 6), ones(Float32, 6), 20)
        # A row of a matrix has stride 3: it goes through a contiguous copy, written back.
        storage = ones(Float32, 3, 6)
        row = view(storage, 2, :)
        @test !LRE.is_contiguous(row)
        @test train!(LRE.Optimizer(spec, 6), row, 20) == dense
        @test storage[1, :] == ones(Float32, 6) && storage[3, :] == ones(Float32, 6)
        # A column is contiguous: C reads and writes it in place.
        column = view(ones(Float32, 6, 2), :, 2)
        @test LRE.is_contiguous(column)
        @test train!(LRE.Optimizer(spec, 6), column, 20) == dense
        # A failed step leaves a strided view unchanged.
        opt = LRE.Optimizer(spec, 6)
        before = copy(row)
        @test_throws LREError step!(opt, row, view(Float32[1, 0, NaN, 0, 1, 0, 1, 0, 1, 0, 1, 0], 1:2:12))
        @test row == before
        # Batch steps and split steps take views too.
        batch_dense = LRE.Optimizer("curvature=empirical_fisher; lr=0.1", 4; dtype = Float64)
        batch_view = LRE.Optimizer("curvature=empirical_fisher; lr=0.1", 4; dtype = Float64)
        grads = reshape(collect(1.0:12.0), 4, 3) ./ 12
        wide = zeros(4, 6)
        wide[:, 1:2:5] = grads
        x_dense, x_parent = ones(4), ones(2, 4)
        step_batch!(batch_dense, x_dense, grads)
        step_batch!(batch_view, view(x_parent, 1, :), view(wide, :, 1:2:5))
        @test view(x_parent, 1, :) == x_dense && x_parent[2, :] == ones(4)
    end

    @testset "set_library!" begin
        @test_throws ArgumentError LRE.set_library!(joinpath(mktempdir(), "missing.so"))
    end

    @testset "close" begin
        opt = LRE.Optimizer("", 4)
        close(opt)
        close(opt)
        @test_throws ArgumentError opt["step"]
        @test occursin("closed", sprint(show, opt))
        LRE.Optimizer("", 4)
        GC.gc()    # the finalizer frees the unreachable one
    end
end
