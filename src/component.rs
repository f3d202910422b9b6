//! Component metadata (names, hyperparameters, defaults, valid ranges) and a parsed component.
//!
//! Each component's file declares its [`ComponentSpec`]s; its family lists the files once
//! (`crate::family`). The spec parser reads those tables, the canonical printer writes every
//! parameter from them, and each implementation reads its typed values from a [`Component`].

use crate::error::{Error, Result};
use std::fmt;

/// A scalar hyperparameter value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Num(f64),
    Bool(bool),
    None,
    /// One of the parameter's fixed choices.
    Word(&'static str),
}

/// An interval of allowed numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub lo: f64,
    pub hi: f64,
    pub lo_inclusive: bool,
    pub hi_inclusive: bool,
}

impl Range {
    pub const ANY: Range = Range::new(f64::NEG_INFINITY, f64::INFINITY, false, false);
    pub const POSITIVE: Range = Range::new(0.0, f64::INFINITY, false, false);
    pub const NON_NEGATIVE: Range = Range::new(0.0, f64::INFINITY, true, false);
    /// [0, 1): decay rates.
    pub const BETA: Range = Range::new(0.0, 1.0, true, false);
    /// [1, ∞): growth factors.
    pub const AT_LEAST_ONE: Range = Range::new(1.0, f64::INFINITY, true, false);

    pub const fn new(lo: f64, hi: f64, lo_inclusive: bool, hi_inclusive: bool) -> Range {
        Range {
            lo,
            hi,
            lo_inclusive,
            hi_inclusive,
        }
    }

    pub fn contains(&self, x: f64) -> bool {
        let above = if self.lo_inclusive {
            x >= self.lo
        } else {
            x > self.lo
        };
        let below = if self.hi_inclusive {
            x <= self.hi
        } else {
            x < self.hi
        };
        x.is_finite() && above && below
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.lo.is_finite(), self.hi.is_finite()) {
            (false, false) => write!(f, "a finite number"),
            (true, false) => {
                let op = if self.lo_inclusive { ">=" } else { ">" };
                write!(f, "a finite number {op} {}", format_number(self.lo))
            }
            _ => write!(
                f,
                "a number in {}{}, {}{}",
                if self.lo_inclusive { '[' } else { '(' },
                format_number(self.lo),
                format_number(self.hi),
                if self.hi_inclusive { ']' } else { ')' }
            ),
        }
    }
}

/// What kind of value a hyperparameter takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Float(Range),
    /// An integer >= the bound.
    Int(i64),
    Bool,
    Word(&'static [&'static str]),
}

/// One hyperparameter: its seed name, kind, default and whether `none` is allowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Value,
    pub nullable: bool,
    pub doc: &'static str,
}

pub const fn float(name: &'static str, default: f64, range: Range, doc: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind: Kind::Float(range),
        default: Value::Num(default),
        nullable: false,
        doc,
    }
}

/// A number that may also be `none` (disabled).
pub const fn opt_float(
    name: &'static str,
    default: Option<f64>,
    range: Range,
    doc: &'static str,
) -> ParamSpec {
    let default = match default {
        Some(x) => Value::Num(x),
        None => Value::None,
    };
    ParamSpec {
        name,
        kind: Kind::Float(range),
        default,
        nullable: true,
        doc,
    }
}

pub const fn int(name: &'static str, default: i64, min: i64, doc: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind: Kind::Int(min),
        default: Value::Num(default as f64),
        nullable: false,
        doc,
    }
}

/// An integer that may also be `none` (disabled).
pub const fn opt_int(
    name: &'static str,
    default: Option<i64>,
    min: i64,
    doc: &'static str,
) -> ParamSpec {
    let default = match default {
        Some(x) => Value::Num(x as f64),
        None => Value::None,
    };
    ParamSpec {
        name,
        kind: Kind::Int(min),
        default,
        nullable: true,
        doc,
    }
}

pub const fn boolean(name: &'static str, default: bool, doc: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind: Kind::Bool,
        default: Value::Bool(default),
        nullable: false,
        doc,
    }
}

pub const fn word(
    name: &'static str,
    default: &'static str,
    choices: &'static [&'static str],
    doc: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        kind: Kind::Word(choices),
        default: Value::Word(default),
        nullable: false,
        doc,
    }
}

impl ParamSpec {
    /// Checks `value` against this parameter; on success returns the value to store.
    pub fn check(&self, value: Value) -> std::result::Result<Value, String> {
        match (value, self.kind) {
            (Value::None, _) if self.nullable => Ok(Value::None),
            (Value::Num(x), Kind::Float(range)) if range.contains(x) => Ok(value),
            (Value::Num(x), Kind::Int(min))
                if x.fract() == 0.0 && x >= min as f64 && x < 9.0e15 =>
            {
                Ok(value)
            }
            (Value::Bool(_), Kind::Bool) => Ok(value),
            (Value::Word(w), Kind::Word(choices)) if choices.contains(&w) => Ok(value),
            _ => Err(self.expected()),
        }
    }

    /// "expected ..." text for error messages.
    pub fn expected(&self) -> String {
        let base = match self.kind {
            Kind::Float(range) => range.to_string(),
            Kind::Int(min) => format!("an integer >= {min}"),
            Kind::Bool => "true or false".to_string(),
            Kind::Word(choices) => format!("one of {}", choices.join(", ")),
        };
        if self.nullable {
            format!("{base}, or none")
        } else {
            base
        }
    }
}

/// A component: the seed name, its hyperparameters and one line about it. It lives in the
/// component's own file (`COMPONENTS`), next to its constructor and state declaration.
#[derive(Debug)]
pub struct ComponentSpec {
    /// Canonical snake_case name (the seed's class name in snake case).
    pub name: &'static str,
    pub params: &'static [ParamSpec],
    /// One line for the README's component table.
    pub summary: &'static str,
}

/// Names match case-insensitively with `_` and `-` ignored: `ClipNormByEMA` = `clip_norm_by_ema`.
pub fn normalize_name(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// A component with every hyperparameter filled in (defaults where the spec was silent).
#[derive(Clone, Debug)]
pub struct Component {
    pub spec: &'static ComponentSpec,
    /// One value per `spec.params`, in that order.
    pub values: Vec<Value>,
}

impl Component {
    /// The component with all defaults.
    pub fn with_defaults(spec: &'static ComponentSpec) -> Component {
        Component {
            spec,
            values: spec.params.iter().map(|p| p.default).collect(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    /// Index of a hyperparameter by (case-insensitive) name, or an error listing the valid keys.
    pub fn index_of(&self, key: &str) -> Result<usize> {
        let wanted = normalize_name(key);
        self.spec
            .params
            .iter()
            .position(|p| normalize_name(p.name) == wanted)
            .ok_or_else(|| {
                let valid: Vec<&str> = self.spec.params.iter().map(|p| p.name).collect();
                let valid = if valid.is_empty() {
                    "none (it takes no arguments)".to_string()
                } else {
                    valid.join(", ")
                };
                Error::spec(format!(
                    "unknown key \"{key}\" for {}; valid keys: {valid}",
                    self.spec.name
                ))
            })
    }

    /// Sets one hyperparameter by (case-insensitive) name, validating it.
    pub fn set(&mut self, key: &str, value: Value) -> Result<()> {
        let index = self.index_of(key)?;
        self.set_at(index, value)
    }

    /// Sets hyperparameter number `index`, validating it.
    pub fn set_at(&mut self, index: usize, value: Value) -> Result<()> {
        let param = &self.spec.params[index];
        let value = param.check(value).map_err(|expected| {
            Error::spec(format!(
                "{}({}={}) is out of range; expected {expected}",
                self.spec.name,
                param.name,
                format_value(value)
            ))
        })?;
        self.values[index] = value;
        Ok(())
    }

    fn value(&self, key: &str) -> Value {
        match self.spec.params.iter().position(|p| p.name == key) {
            Some(i) => self.values[i],
            None => panic!("{} has no parameter {key}", self.spec.name),
        }
    }

    /// A numeric parameter (panics if the name is not in the table: a bug caught by the
    /// registry tests, not a user error).
    pub fn f64(&self, key: &str) -> f64 {
        self.opt_f64(key)
            .unwrap_or_else(|| panic!("{}.{key} is none", self.spec.name))
    }

    /// A numeric parameter that may be `none`.
    pub fn opt_f64(&self, key: &str) -> Option<f64> {
        match self.value(key) {
            Value::Num(x) => Some(x),
            Value::None => None,
            other => panic!("{}.{key} is not a number: {other:?}", self.spec.name),
        }
    }

    pub fn usize(&self, key: &str) -> usize {
        self.f64(key) as usize
    }

    pub fn opt_usize(&self, key: &str) -> Option<usize> {
        self.opt_f64(key).map(|x| x as usize)
    }

    pub fn bool(&self, key: &str) -> bool {
        match self.value(key) {
            Value::Bool(b) => b,
            other => panic!("{}.{key} is not a bool: {other:?}", self.spec.name),
        }
    }

    pub fn word(&self, key: &str) -> &'static str {
        match self.value(key) {
            Value::Word(w) => w,
            other => panic!("{}.{key} is not a word: {other:?}", self.spec.name),
        }
    }
}

impl PartialEq for Component {
    /// Same registry entry (by identity) and same values.
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.spec, other.spec) && self.values == other.values
    }
}

impl fmt::Display for Component {
    /// Canonical form: `name` or `name(key=value, ...)` with every parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec.name)?;
        if self.values.is_empty() {
            return Ok(());
        }
        f.write_str("(")?;
        for (i, (param, value)) in self.spec.params.iter().zip(&self.values).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={}", param.name, format_value(*value))?;
        }
        f.write_str(")")
    }
}

pub fn format_value(value: Value) -> String {
    match value {
        Value::Num(x) => format_number(x),
        Value::Bool(b) => b.to_string(),
        Value::None => "none".to_string(),
        Value::Word(w) => w.to_string(),
    }
}

/// Shortest text that parses back to exactly `x`: integers plainly, 1e-3 <= |x| < 1e7 in decimal,
/// everything else in exponent form (`1e-8`).
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{}", x as i64)
    } else if x.abs() >= 1e-3 && x.abs() < 1e7 {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}
