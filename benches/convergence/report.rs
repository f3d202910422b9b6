//! Printing the results: a Markdown table per task, the final loss at every learning rate, and
//! the CSV of the best runs' loss curves.

use crate::run::Run;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// One configuration's sweep on one task.
pub struct Entry {
    pub config: &'static str,
    pub runs: Vec<Run>,
    /// Index of the best learning rate in `runs` (none if every run diverged or failed).
    pub best: Option<usize>,
}

impl Entry {
    pub fn best_run(&self) -> Option<&Run> {
        self.best.map(|i| &self.runs[i])
    }
}

fn steps_cell(step: Option<usize>) -> String {
    step.map_or("never".into(), |s| s.to_string())
}

/// | configuration | best lr | final loss | f − f* | steps to Adam's final loss | evaluations
/// to it | … | test accuracy | wall time | (f − f* is "—" when the task's minimum is unknown;
/// L-BFGS-B has no lr).
pub fn task_table(entries: &[Entry], target: f64, minimum: Option<f64>) -> String {
    let mut out = String::from(
        "| configuration | best lr | final loss | final loss − f* | steps to Adam's final loss | gradient evaluations to it (HVPs counted) | seconds to it | test accuracy | wall time (s) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for entry in entries {
        let Some(run) = entry.best_run() else {
            writeln!(
                out,
                "| {} | — | diverged at every lr | — | never | never | — | — | — |",
                entry.config
            )
            .unwrap();
            continue;
        };
        let reached = run.steps_to(target);
        writeln!(
            out,
            "| {} | {} | {:.4e} | {} | {} | {} | {} | {} | {:.2} |",
            entry.config,
            if run.lr.is_nan() {
                "—".into()
            } else {
                run.lr.to_string()
            },
            run.final_loss(),
            minimum.map_or("—".into(), |m| format!("{:.1e}", run.final_loss() - m)),
            steps_cell(reached),
            steps_cell(run.evaluations_to(target)),
            reached.map_or("—".into(), |s| format!("{:.2}", run.seconds[s])),
            run.accuracy
                .map_or("—".into(), |a| format!("{:.1} %", 100.0 * a)),
            run.seconds.last().unwrap()
        )
        .unwrap();
    }
    out
}

/// The final loss (or how it ended) of every configuration at every learning rate.
pub fn grid_table(entries: &[Entry], grid: &[f64]) -> String {
    let mut out = String::from("| configuration |");
    for lr in grid {
        write!(out, " lr={lr} |").unwrap();
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(grid.len()));
    out.push('\n');
    for entry in entries.iter().filter(|e| e.runs.len() == grid.len()) {
        write!(out, "| {} |", entry.config).unwrap();
        for run in &entry.runs {
            write!(out, " {} |", run.summary()).unwrap();
        }
        out.push('\n');
    }
    out
}

/// Appends the best run of every entry as CSV rows: task,config,lr,step,loss,excess,seconds,
/// where excess = loss − f* (empty when the task's minimum f* is unknown).
pub fn csv_rows(task: &str, minimum: Option<f64>, entries: &[Entry], out: &mut String) {
    for entry in entries {
        let Some(run) = entry.best_run() else {
            continue;
        };
        for (step, (loss, secs)) in run.losses.iter().zip(&run.seconds).enumerate() {
            let excess = minimum.map_or(String::new(), |m| format!("{:e}", loss - m));
            writeln!(
                out,
                "{task},{},{},{step},{loss:e},{excess},{secs:.6}",
                entry.config, run.lr
            )
            .unwrap();
        }
    }
}

pub fn write_csv(path: &Path, rows: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::File::create(path)?;
    file.write_all(b"task,config,lr,step,loss,excess,seconds\n")?;
    file.write_all(rows.as_bytes())
}
