/*
 * lre::Optimizer must refuse a library of another ABI. This program defines lre_abi_version
 * itself, so its calls see a different ABI number than the header's LRE_ABI_VERSION.
 * Built and run by tests/cpp_bindings.rs; prints "ABI check: 1 passed, 0 failed" on success.
 */

#include "lre.hpp"

#include <cstdio>
#include <cstring>

extern "C" uint32_t lre_abi_version(void) { return LRE_ABI_VERSION + 1; }

int main() {
    try {
        lre::Optimizer opt("", 4);
    } catch (const lre::Error &e) {
        if (e.status() == LRE_ERR_UNSUPPORTED && std::strstr(e.what(), "ABI version") != nullptr) {
            std::printf("ABI check: 1 passed, 0 failed\n");
            return 0;
        }
        std::fprintf(stderr, "wrong error: status %d, \"%s\"\n", e.status(), e.what());
        return 1;
    }
    std::fprintf(stderr, "an optimizer was created although the ABI versions differ\n");
    return 1;
}
