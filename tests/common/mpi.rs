//! OpenMPI for the sharded tests and benchmark: installed by the test setup, `mpirun` as root
//! too and with more ranks than cores. Included with `#[path = "common/mpi.rs"] mod mpi;` next
//! to `process` and `setup`.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Installs OpenMPI (Debian's packages) unless `mpicc`, `mpicxx` and `mpirun` are on PATH.
pub fn install() {
    crate::setup::system_packages("OpenMPI", &["openmpi-bin", "libopenmpi-dev"], || {
        ["mpicc", "mpicxx", "mpirun"]
            .iter()
            .all(|tool| crate::setup::on_path(tool))
    });
}

/// `mpirun -np ranks exe` (oversubscribing the cores, allowed as root), with the library found
/// through the program's rpath rather than cargo's LD_LIBRARY_PATH.
pub fn mpirun(ranks: usize, exe: &Path) -> Command {
    let mut mpirun = Command::new("mpirun");
    mpirun
        .env_remove("LD_LIBRARY_PATH")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "-np", &ranks.to_string()])
        .arg(exe);
    mpirun
}
