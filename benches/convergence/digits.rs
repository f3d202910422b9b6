//! Multinomial logistic regression on scikit-learn's bundled `digits` (1797 8×8 images, 10
//! classes; 64·10 weights + 10 biases = 650 parameters), full batch. The data is not committed:
//! `python3 benches/data/export_digits.py` writes it as CSV (pixels scaled to [0, 1], label
//! last) to `target/bench-data/digits.csv`; `LRE_DIGITS_CSV` points elsewhere.

use crate::logistic::{Dataset, Logistic};
use crate::task::Matrix;
use std::path::PathBuf;

const FEATURES: usize = 64;
const CLASSES: usize = 10;

pub fn digits_csv() -> PathBuf {
    std::env::var_os("LRE_DIGITS_CSV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/digits.csv"),
        PathBuf::from,
    )
}

/// The digits task, or why it cannot run (the file is missing or malformed).
pub fn digits_logistic() -> Result<Logistic, String> {
    Ok(Logistic::new(
        "digits",
        "digits logistic regression (scikit-learn)",
        digits_dataset()?,
    ))
}

/// The digits data, or why it cannot be read.
pub fn digits_dataset() -> Result<Dataset, String> {
    let path = digits_csv();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e}. Create it with `pip install scikit-learn && python3 benches/data/export_digits.py` \
             (or set LRE_DIGITS_CSV)",
            path.display()
        )
    })?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Rows of 64 features and a label; a first line that does not parse as numbers is a header.
fn parse(text: &str) -> Result<Dataset, String> {
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let fields: Result<Vec<f64>, _> =
            line.split(',').map(|f| f.trim().parse::<f64>()).collect();
        let fields = match fields {
            Ok(fields) => fields,
            Err(_) if number == 0 => continue,
            Err(e) => return Err(format!("line {}: {e}", number + 1)),
        };
        if fields.len() != FEATURES + 1 {
            return Err(format!(
                "line {}: {} fields; expected {} features and a label",
                number + 1,
                fields.len(),
                FEATURES
            ));
        }
        let label = fields[FEATURES];
        if label.fract() != 0.0 || !(0.0..CLASSES as f64).contains(&label) {
            return Err(format!(
                "line {}: label {label}; expected 0..=9",
                number + 1
            ));
        }
        features.extend_from_slice(&fields[..FEATURES]);
        labels.push(label as usize);
    }
    if labels.is_empty() {
        return Err("no samples".into());
    }
    Ok(Dataset {
        features: Matrix {
            rows: labels.len(),
            cols: FEATURES,
            data: features,
        },
        labels,
        classes: CLASSES,
    })
}
