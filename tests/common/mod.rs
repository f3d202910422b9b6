//! Helpers shared by the integration tests (each test crate uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A tiny deterministic generator for test data (xorshift64), uniform in [-0.5, 0.5).
pub struct Xorshift(pub u64);

impl Xorshift {
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }

    pub fn vector(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.uniform()).collect()
    }
}

/// k orthonormal vectors in R^n (Gram–Schmidt, twice is enough).
pub fn orthonormal(rng: &mut Xorshift, n: usize, k: usize) -> Vec<Vec<f64>> {
    let mut q: Vec<Vec<f64>> = Vec::new();
    while q.len() < k {
        let mut v = rng.vector(n);
        for _ in 0..2 {
            for c in &q {
                let p: f64 = c.iter().zip(&v).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(c).for_each(|(x, ci)| *x -= p * ci);
            }
        }
        let len = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        q.push(v.iter().map(|x| x / len).collect());
    }
    q
}

/// The directory holding the shared library built for this test run. The test executable lives
/// in `target/<profile>/deps/`; cargo builds the library's cdylib next to it. It copies it up
/// to `target/<profile>/` only when the library itself is a requested target (`cargo build`),
/// so a copy there may be stale; it is used only when `deps/` has none.
pub fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let name = format!(
        "{}lre{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let deps = exe.parent().expect("the test executable has a directory");
    let candidates: Vec<&Path> = [Some(deps), deps.parent()].into_iter().flatten().collect();
    candidates
        .iter()
        .find(|dir| dir.join(&name).is_file())
        .map(|dir| dir.to_path_buf())
        .unwrap_or_else(|| {
            let looked: Vec<String> = candidates
                .iter()
                .map(|d| d.join(&name).display().to_string())
                .collect();
            panic!(
                "the shared library {name} is missing (looked at {}); cargo builds it for this test \
                 (crate-type includes \"cdylib\")",
                looked.join(", ")
            )
        })
}

/// A directory where a program links the library under test with `-llre` and, given it as its
/// rpath, loads it by its soname: symlinks `liblre.so` and `liblre.so.<ABI version>` to the
/// library in [`library_dir`]. Cargo's output has only `liblre.so` (whose soname is
/// `liblre.so.<ABI version>`, build.rs); an install (bindings/cpp/CMakeLists.txt) creates both.
pub fn linkable_library_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let library = library_dir().join("liblre.so");
        let profile = library_dir()
            .ancestors()
            .find_map(|d| Some(d.file_name()?.to_str()?.to_owned()).filter(|n| n != "deps"))
            .unwrap_or_default();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("linkable-lre-{profile}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let soname = format!("liblre.so.{}", lre::ffi::LRE_ABI_VERSION);
        for name in ["liblre.so", soname.as_str()] {
            let link = dir.join(name);
            if std::fs::read_link(&link).ok().as_deref() != Some(library.as_path()) {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&library, &link)
                    .unwrap_or_else(|e| panic!("cannot link {}: {e}", link.display()));
            }
        }
        dir
    })
    .clone()
}

/// f(x) = ½(x−x*)ᵀ·H·(x−x*) with H = R·diag(d)·Rᵀ: a random rotation R and eigenvalues d
/// log-spaced from 1 to `condition`; x* uniform in [-1, 1).
pub struct Quadratic {
    pub rotation: Vec<Vec<f64>>,
    pub diag: Vec<f64>,
    pub optimum: Vec<f64>,
}

impl Quadratic {
    pub fn new(n: usize, condition: f64, seed: u64) -> Self {
        let mut rng = Xorshift(seed);
        let rotation = orthonormal(&mut rng, n, n);
        let diag = (0..n)
            .map(|i| condition.powf(i as f64 / (n - 1) as f64))
            .collect();
        let optimum = (0..n).map(|_| 2.0 * rng.uniform()).collect();
        Quadratic {
            rotation,
            diag,
            optimum,
        }
    }

    /// H·v.
    pub fn times(&self, v: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; v.len()];
        for (c, d) in self.rotation.iter().zip(&self.diag) {
            let z: f64 = c.iter().zip(v).map(|(a, b)| a * b).sum();
            out.iter_mut().zip(c).for_each(|(o, ci)| *o += d * z * ci);
        }
        out
    }

    /// H as columns.
    pub fn dense(&self) -> Vec<Vec<f64>> {
        let n = self.diag.len();
        (0..n)
            .map(|j| {
                self.times(
                    &(0..n)
                        .map(|i| f64::from(u8::from(i == j)))
                        .collect::<Vec<_>>(),
                )
            })
            .collect()
    }

    /// f(x) and ∇f(x).
    pub fn loss_and_grad(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let e: Vec<f64> = x.iter().zip(&self.optimum).map(|(a, b)| a - b).collect();
        let g = self.times(&e);
        (0.5 * e.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>(), g)
    }
}
