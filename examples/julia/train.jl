# Trains a rotated, ill-conditioned quadratic f(x) = ½(x−x*)ᵀH(x−x*) with LRE and with Adam,
# passing the exact Hessian-vector product, and resumes LRE from a saved state.
#
#   julia --project=bindings/julia/LRE -e 'using LRE; LRE.set_library!("target/release/liblre.so")'
#   julia --project=bindings/julia/LRE examples/julia/train.jl
using LRE
using LinearAlgebra
using Random

const n = 64
rng = Xoshiro(7)
Q = Matrix(qr(randn(rng, n, n)).Q)                 # a random rotation
H = Q * Diagonal(exp10.(range(0, 3; length = n))) * Q'   # condition number 1e3
xstar = randn(rng, n)

loss(x) = dot(x - xstar, H * (x - xstar)) / 2
grad(x) = H * (x - xstar)

function train(spec, steps)
    opt = LRE.Optimizer(spec, n; dtype = Float64)
    x = zeros(n)
    losses = [loss(x)]
    for _ in 1:steps
        # Curvatures built from Hessian-vector products call hvp; the default one needs none.
        step!(opt, x, grad(x); hvp = v -> H * v)
        push!(losses, loss(x))
    end
    return opt, x, losses
end

opt, x, lre_losses = train("lr=0.1", 300)
_, _, adam_losses = train("basis=identity; chain=[adam]; lr=0.1", 300)
println("LRE ", LRE.version(), ": rotated quadratic, n = $n, condition number 1e3")
println(rpad("step", 6), lpad("LRE", 12), lpad("Adam", 12))
for s in 0:50:300
    println(rpad(s, 6), lpad(round(lre_losses[s+1]; sigdigits = 4), 12),
            lpad(round(adam_losses[s+1]; sigdigits = 4), 12))
end

# Checkpoint and resume: the restored optimizer continues exactly where this one stands.
restored = LRE.from_state(LRE.state(opt))
y = copy(x)
step!(opt, x, grad(x))
step!(restored, y, grad(y))
println("resumed from the state: ", x == y ? "identical step" : "different step")
close(opt)
close(restored)
