// Continues an LRE run with the C++ wrapper, for the state exchange checks of tests/test_jax.py
// and tests/test_torch.py.
//
//   resume SPEC|@STATE_FILE PARAMS_FILE STEPS OUT_STATE OUT_PARAMS [--in-place]
//
// Starts from a spec (a fresh optimizer) or, with a leading '@', from a saved state file; reads
// float32 parameters; takes STEPS steps on the quadratic 0.5·|x|² (gradient x), applying each
// step's update the way optax.apply_updates does (x + (x_new − x)), or with --in-place keeping
// x_new as lre.torch does; saves the state and params.
#include <lre.hpp>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

static std::vector<char> read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

int main(int argc, char **argv) {
    const bool in_place = argc == 7 && std::string(argv[6]) == "--in-place";
    if (argc != 6 && !in_place) {
        std::cerr << "usage: resume SPEC|@STATE PARAMS STEPS OUT_STATE OUT_PARAMS [--in-place]\n";
        return 2;
    }
    try {
        std::vector<char> raw = read_file(argv[2]);
        std::vector<float> x(raw.size() / sizeof(float));
        std::copy(raw.begin(), raw.end(), reinterpret_cast<char *>(x.data()));
        std::string source = argv[1];
        lre::Optimizer opt = [&] {
            if (source.rfind('@', 0) == 0) {
                std::vector<char> blob = read_file(source.substr(1));
                return lre::Optimizer::from_state(
                    std::vector<std::uint8_t>(blob.begin(), blob.end()));
            }
            return lre::Optimizer(source, x.size());
        }();
        for (long t = 0; t < std::atol(argv[3]); ++t) {
            std::vector<float> moved = x;
            const std::vector<float> grad = x;
            opt.step(moved, grad);
            if (in_place) {
                x = moved;
                continue;
            }
            for (std::size_t i = 0; i < x.size(); ++i) {
                float update = moved[i] - x[i];
                x[i] = x[i] + update;
            }
        }
        opt.save(argv[4]);
        std::ofstream(argv[5], std::ios::binary)
            .write(reinterpret_cast<const char *>(x.data()), x.size() * sizeof(float));
    } catch (const std::exception &e) {
        std::cerr << "resume: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
