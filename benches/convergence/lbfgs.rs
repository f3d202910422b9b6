//! The reference rows: scipy's L-BFGS-B (`benches/data/lbfgs.py`) on a deterministic task, in
//! f64, with its gradient evaluations as the steps. The script runs in a child process and asks
//! for every evaluation over a pipe. The Python interpreter is `LRE_BENCH_PYTHON`, else
//! `target/bench-env/bin/python` when it exists, else `python3`.

use crate::run::{Outcome, Run};
use crate::task::Task;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/bench-env/bin/python");
    std::env::var_os("LRE_BENCH_PYTHON").map_or_else(
        || {
            if venv.exists() {
                venv
            } else {
                "python3".into()
            }
        },
        PathBuf::from,
    )
}

/// L-BFGS-B with `memory` pairs for up to `evaluations` gradient evaluations. Entry e of the
/// losses is the lowest loss among the first e + 1 evaluations (the point L-BFGS-B would
/// return then); if it stops early the last value is held. Err: why it could not run.
pub fn lbfgs(task: &dyn Task, memory: usize, evaluations: usize) -> Result<Run, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data/lbfgs.py");
    let mut child = Command::new(python())
        .arg(&script)
        .args([memory.to_string(), evaluations.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", python().display()))?;
    let mut to_python = child.stdin.take().expect("piped stdin");
    let mut from_python = BufReader::new(child.stdout.take().expect("piped stdout"));
    let send = |out: &mut dyn Write, values: &[f64]| {
        let line: Vec<String> = values.iter().map(|v| format!("{v:e}")).collect();
        writeln!(out, "{}", line.join(" ")).and_then(|()| out.flush())
    };
    let init = task.init();
    let mut run = Run {
        lr: f64::NAN,
        losses: Vec::with_capacity(evaluations + 1),
        seconds: Vec::with_capacity(evaluations + 1),
        outcome: Outcome::Finished,
        evaluations_per_step: 1,
        accuracy: None,
    };
    let start = Instant::now();
    let _ = send(&mut to_python, &init);
    let mut grad = vec![0.0; init.len()];
    let mut line = String::new();
    loop {
        line.clear();
        if from_python.read_line(&mut line).unwrap_or(0) == 0 || line.trim() == "done" {
            break;
        }
        let x: Vec<f64> = line
            .split_whitespace()
            .map(|f| f.parse().map_err(|e| format!("L-BFGS-B sent {f:?}: {e}")))
            .collect::<Result<_, _>>()?;
        let loss = task.loss_grad(&x, &mut grad);
        if run.losses.len() <= evaluations {
            let best = run.losses.last().map_or(loss, |b: &f64| b.min(loss));
            run.losses.push(best);
            run.seconds.push(start.elapsed().as_secs_f64());
        }
        let mut reply = vec![loss];
        reply.extend_from_slice(&grad);
        if send(&mut to_python, &reply).is_err() {
            break;
        }
    }
    drop(to_python);
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if run.losses.is_empty() {
        return Err(format!(
            "{} {} failed: {}",
            python().display(),
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    while run.losses.len() <= evaluations {
        run.losses.push(*run.losses.last().unwrap());
        run.seconds.push(*run.seconds.last().unwrap());
    }
    Ok(run)
}
