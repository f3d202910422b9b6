//! The spec string (docs/design.md, "The spec string") ⇄ a typed [`Config`].
//!
//! ```text
//! spec      := [ entry ( ';' entry )* ]               whitespace is ignored
//! entry     := key '=' value
//! component := name [ '(' [ arg ( ',' arg )* ] ')' ]
//! arg       := key '=' scalar
//! chain     := component | '[' [ component ( ',' component )* ] ']'
//! scalar    := number | true | false | none | word
//! ```
//! Names and keys match case-insensitively with `_` and `-` ignored. Printing a `Config` gives
//! the canonical spec with every default filled in; parsing it back gives the same `Config`.

use crate::component::{Component, Kind, Value, format_number, normalize_name};
use crate::elem::Dtype;
use crate::error::{Error, Result};
use crate::family::Family;
use crate::{basis, curvature, inner};
use std::fmt;

/// The default configuration: the reference's recommended one with Adam's β2 = 0.999 in the
/// basis (the README's Performance section has the measurements behind the change).
pub const DEFAULT_SPEC: &str = "curvature=covariance; basis=ggt; chain=[adam(beta2=0.999), cautious, clip_norm_by_ema(normalize=true)]; lr=0.01";

/// The reference's recommended configuration (docs/algorithm.md §6.1), the default before
/// `DEFAULT_SPEC`: Adam's β2 = 0.99 (the `adam` component's default). Only the chain differs, so
/// it combines with every other key. Tests that compare with the reference use it.
pub const REFERENCE_SPEC: &str = "chain=[adam, cautious, clip_norm_by_ema(normalize=true)]";

/// Most threads accepted.
pub const MAX_THREADS: usize = 256;

/// Parameters per thread that `threads=auto` asks for: below this a thread's share of a pass over
/// a 100-column window (≈100 MB) streams in a few ms, and starting it is no longer negligible.
pub const AUTO_ROWS_PER_THREAD: usize = 1 << 18;

/// How many threads the n-sized loops use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// One thread per `AUTO_ROWS_PER_THREAD` parameters, at most the cores this process may run
    /// on (its CPU affinity), at least one.
    Auto,
    /// Exactly this many (1 to `MAX_THREADS`).
    Count(usize),
}

impl Threads {
    /// The thread count for n parameters.
    pub fn count(self, n: usize) -> usize {
        match self {
            Threads::Count(t) => t,
            Threads::Auto => {
                // On Linux this counts the CPUs in the process's affinity mask (and its cgroup
                // quota), not all the machine's.
                let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
                (n / AUTO_ROWS_PER_THREAD).clamp(1, cores.clamp(1, MAX_THREADS))
            }
        }
    }
}

impl fmt::Display for Threads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threads::Auto => f.write_str("auto"),
            Threads::Count(t) => write!(f, "{t}"),
        }
    }
}

/// Where n-sized work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(u32),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// A complete, validated optimizer configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub curvature: Component,
    pub basis: Component,
    pub chain: Vec<Component>,
    pub lr: f64,
    /// Decoupled weight decay: each step that moves the parameters first scales them by
    /// 1 − lr·weight_decay (see `Optimizer::advance`).
    pub weight_decay: f64,
    pub update_freq: u64,
    pub init_steps: u64,
    pub symmetrize: bool,
    pub seed: u64,
    pub dtype: Dtype,
    pub device: Device,
    pub threads: Threads,
    /// Sharded mode: the length of the global vectors, of which this optimizer holds rows
    /// `[shard_offset, shard_offset + ndim)`. `None` (the default) means ndim.
    pub global_ndim: Option<u64>,
    pub shard_offset: u64,
    /// An elementwise Adam beside the low-rank step (`src/optimizer/complement.rs`,
    /// `src/optimizer/graft.rs`).
    pub diagonal: Diagonal,
    /// Steps of plain (diagonal) Adam before the low-rank step starts (`src/optimizer/warmup.rs`).
    pub warmup: u64,
}

/// What the optimizer's diagonal Adam (n-sized host moments) does besides warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diagonal {
    /// Nothing: the step is the low-rank step alone (the reference's algorithm).
    None,
    /// Low rank plus diagonal: Adam on the gradient's part outside span(Q), added to the step.
    Complement,
    /// The low-rank step rescaled to the norm of Adam's step on the whole gradient.
    Graft,
}

impl fmt::Display for Diagonal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Diagonal::None => "none",
            Diagonal::Complement => "complement",
            Diagonal::Graft => "graft",
        })
    }
}

impl Config {
    /// Whether the optimizer keeps diagonal Adam moments (n-sized, host f64).
    pub fn has_diagonal(&self) -> bool {
        self.diagonal != Diagonal::None || self.warmup > 0
    }

    /// Whether the spec names a shard (either sharding key given): such an optimizer all-reduces
    /// its partial sums and needs a registered all-reduce.
    pub fn sharded(&self) -> bool {
        self.global_ndim.is_some() || self.shard_offset != 0
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::parse(DEFAULT_SPEC).expect("the default spec parses")
    }
}

impl fmt::Display for Config {
    /// The canonical spec: every key, every component parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chain: Vec<String> = self.chain.iter().map(|c| c.to_string()).collect();
        write!(
            f,
            "curvature={}; basis={}; chain=[{}]; lr={}; weight_decay={}; update_freq={}; init_steps={}; \
             symmetrize={}; seed={}; dtype={}; device={}; threads={}",
            self.curvature,
            self.basis,
            chain.join(", "),
            format_number(self.lr),
            format_number(self.weight_decay),
            self.update_freq,
            self.init_steps,
            self.symmetrize,
            self.seed,
            self.dtype,
            self.device,
            self.threads
        )?;
        // Printed only when set, so specs without them (and saved blobs) read as before.
        if self.diagonal != Diagonal::None {
            write!(f, "; diagonal={}", self.diagonal)?;
        }
        if self.warmup > 0 {
            write!(f, "; warmup={}", self.warmup)?;
        }
        // Printed only when sharded, so unsharded specs (and saved blobs) read as before.
        if self.sharded() {
            if let Some(g) = self.global_ndim {
                write!(f, "; global_ndim={g}")?;
            }
            write!(f, "; shard_offset={}", self.shard_offset)?;
        }
        Ok(())
    }
}

/// Top-level keys, in canonical order.
const KEYS: &[&str] = &[
    "curvature",
    "basis",
    "chain",
    "lr",
    "weight_decay",
    "update_freq",
    "init_steps",
    "symmetrize",
    "seed",
    "dtype",
    "device",
    "threads",
    "global_ndim",
    "shard_offset",
    "diagonal",
    "warmup",
];

impl Config {
    /// Parses a spec; keys not given keep the default configuration's values. An empty spec is
    /// the default configuration.
    pub fn parse(spec: &str) -> Result<Config> {
        let tokens = tokenize(spec)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            spec,
        };
        let mut config = Config {
            curvature: Component::with_defaults(&curvature::covariance::COMPONENTS[0]),
            basis: Component::with_defaults(&basis::ggt::COMPONENTS[0]),
            chain: Vec::new(),
            lr: 0.01,
            weight_decay: 0.0,
            update_freq: 1,
            init_steps: 0,
            symmetrize: true,
            seed: 0,
            dtype: Dtype::F32,
            device: Device::Cpu,
            threads: Threads::Count(1),
            global_ndim: None,
            shard_offset: 0,
            diagonal: Diagonal::None,
            warmup: 0,
        };
        let mut chain_given = false;
        let mut seen: Vec<&str> = Vec::new();
        while !p.at_end() {
            if p.eat(";") {
                continue;
            }
            let key_tok = p.word("a key")?;
            let key = KEYS
                .iter()
                .find(|k| normalize_name(k) == normalize_name(&key_tok.text))
                .ok_or_else(|| {
                    p.error_at(
                        &key_tok,
                        &format!(
                            "unknown key \"{}\"; valid keys: {}",
                            key_tok.text,
                            KEYS.join(", ")
                        ),
                    )
                })?;
            if seen.contains(key) {
                return Err(p.error_at(&key_tok, &format!("key \"{key}\" is given twice")));
            }
            seen.push(key);
            p.expect("=")?;
            match *key {
                "curvature" => config.curvature = p.component(&curvature::FAMILY)?,
                "basis" => config.basis = p.component(&basis::FAMILY)?,
                "chain" => {
                    chain_given = true;
                    config.chain = p.chain()?;
                }
                "lr" => config.lr = p.number(key, |x| x >= 0.0, "a finite number >= 0")?,
                "weight_decay" => {
                    config.weight_decay = p.number(key, |x| x >= 0.0, "a finite number >= 0")?
                }
                "update_freq" => config.update_freq = p.integer(key, 1, u64::MAX)?,
                "init_steps" => config.init_steps = p.integer(key, 0, u64::MAX)?,
                "symmetrize" => config.symmetrize = p.boolean(key)?,
                "seed" => config.seed = p.integer(key, 0, u64::MAX)?,
                "threads" => config.threads = p.threads()?,
                "global_ndim" => config.global_ndim = Some(p.integer(key, 1, u64::MAX)?),
                "shard_offset" => config.shard_offset = p.integer(key, 0, u64::MAX)?,
                "dtype" => config.dtype = p.dtype()?,
                "device" => config.device = p.device()?,
                "diagonal" => config.diagonal = p.diagonal()?,
                "warmup" => config.warmup = p.integer(key, 0, u64::MAX)?,
                _ => unreachable!("every key in KEYS is handled"),
            }
            if !p.at_end() {
                p.expect(";")?;
            }
        }
        if !chain_given {
            config.chain = Config::default_chain();
        }
        Ok(config)
    }

    /// The default chain: [adam(beta2=0.999), cautious, clip_norm_by_ema(normalize=true)].
    fn default_chain() -> Vec<Component> {
        ["adam(beta2=0.999)", "cautious", "normalize_by_ema"]
            .iter()
            .map(|name| parse_component(name, &inner::FAMILY).expect("default chain member parses"))
            .collect()
    }
}

/// Parses one component (`name(key=value, ...)`) of a family, e.g. for `lre_optimizer_chain_push`.
pub fn parse_component(text: &str, family: &'static Family) -> Result<Component> {
    let tokens = tokenize(text)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        spec: text,
    };
    let c = p.component(family)?;
    if let Some(extra) = p.tokens.get(p.pos) {
        return Err(p.error_at(extra, "unexpected text after the component"));
    }
    Ok(c)
}

#[derive(Clone, Debug)]
struct Token {
    text: String,
    /// Byte offset in the spec.
    at: usize,
}

const PUNCTUATION: &[char] = &[';', '=', ',', '(', ')', '[', ']'];

fn tokenize(spec: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = spec.char_indices().peekable();
    while let Some(&(at, ch)) = chars.peek() {
        if ch.is_whitespace() {
            chars.next();
        } else if PUNCTUATION.contains(&ch) {
            tokens.push(Token {
                text: ch.to_string(),
                at,
            });
            chars.next();
        } else {
            let mut text = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() || PUNCTUATION.contains(&c) {
                    break;
                }
                if c.is_control() {
                    return Err(Error::spec(format!(
                        "control character at byte {at} of the spec"
                    )));
                }
                text.push(c);
                chars.next();
            }
            tokens.push(Token { text, at });
        }
    }
    Ok(tokens)
}

struct Parser<'s> {
    tokens: Vec<Token>,
    pos: usize,
    spec: &'s str,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, punct: &str) -> bool {
        if self.peek().is_some_and(|t| t.text == punct) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn error_at(&self, token: &Token, what: &str) -> Error {
        Error::spec(format!(
            "at byte {} of \"{}\" (\"{}\"): {what}",
            token.at, self.spec, token.text
        ))
    }

    fn error_at_end(&self, what: &str) -> Error {
        Error::spec(format!("at the end of \"{}\": {what}", self.spec))
    }

    fn expect(&mut self, punct: &str) -> Result<()> {
        match self.peek() {
            Some(t) if t.text == punct => {
                self.pos += 1;
                Ok(())
            }
            Some(t) => Err(self.error_at(t, &format!("expected '{punct}'"))),
            None => Err(self.error_at_end(&format!("expected '{punct}'"))),
        }
    }

    /// The ',' between list items; the message also names the `close` that would end the list.
    fn separator(&mut self, close: &str) -> Result<()> {
        if self.eat(",") {
            return Ok(());
        }
        let what = format!("expected ',' or '{close}'");
        match self.peek() {
            Some(t) => Err(self.error_at(t, &what)),
            None => Err(self.error_at_end(&what)),
        }
    }

    /// A non-punctuation token.
    fn word(&mut self, what: &str) -> Result<Token> {
        match self.peek() {
            Some(t)
                if !(t.text.len() == 1
                    && PUNCTUATION.contains(&t.text.chars().next().unwrap_or(' '))) =>
            {
                let t = t.clone();
                self.pos += 1;
                Ok(t)
            }
            Some(t) => Err(self.error_at(t, &format!("expected {what}"))),
            None => Err(self.error_at_end(&format!("expected {what}"))),
        }
    }

    fn component(&mut self, family: &'static Family) -> Result<Component> {
        let name = self.word(&format!("a {} name", family.what))?;
        let (spec, preset) = family.lookup(&name.text).ok_or_else(|| {
            self.error_at(
                &name,
                &format!(
                    "unknown {} \"{}\"; valid: {}",
                    family.what,
                    name.text,
                    family.names()
                ),
            )
        })?;
        let mut component = Component::with_defaults(spec);
        for (key, value) in preset {
            component.set(key, *value)?;
        }
        if !self.eat("(") {
            return Ok(component);
        }
        let mut given: Vec<usize> = Vec::new();
        while !self.eat(")") {
            if !given.is_empty() {
                self.separator(")")?;
            }
            let key = self.word("an argument name")?;
            self.expect("=")?;
            let value_tok = self.word("a value")?;
            let index = component
                .index_of(&key.text)
                .map_err(|e| self.error_at(&key, &e.message))?;
            if given.contains(&index) {
                return Err(
                    self.error_at(&key, &format!("argument \"{}\" is given twice", key.text))
                );
            }
            given.push(index);
            let param = &spec.params[index];
            let value = scalar(&value_tok.text, param.kind).ok_or_else(|| {
                let what = format!(
                    "{}({}=...) expects {}",
                    spec.name,
                    param.name,
                    param.expected()
                );
                self.error_at(&value_tok, &what)
            })?;
            component
                .set_at(index, value)
                .map_err(|e| self.error_at(&value_tok, &e.message))?;
        }
        Ok(component)
    }

    fn chain(&mut self) -> Result<Vec<Component>> {
        if !self.eat("[") {
            return Ok(vec![self.component(&inner::FAMILY)?]);
        }
        let mut chain = Vec::new();
        while !self.eat("]") {
            if !chain.is_empty() {
                self.separator("]")?;
            }
            chain.push(self.component(&inner::FAMILY)?);
        }
        Ok(chain)
    }

    fn number(&mut self, key: &str, ok: impl Fn(f64) -> bool, expected: &str) -> Result<f64> {
        let t = self.word("a number")?;
        match t.text.parse::<f64>() {
            Ok(x) if x.is_finite() && ok(x) => Ok(x),
            _ => Err(self.error_at(&t, &format!("{key} must be {expected}"))),
        }
    }

    fn integer(&mut self, key: &str, min: u64, max: u64) -> Result<u64> {
        let t = self.word("an integer")?;
        match integer(&t.text) {
            Some(v) if v >= min && v <= max => Ok(v),
            _ => {
                let range = if max == u64::MAX {
                    format!(">= {min}")
                } else {
                    format!("in [{min}, {max}]")
                };
                Err(self.error_at(&t, &format!("{key} must be an integer {range}")))
            }
        }
    }

    /// `auto` or a count in [1, MAX_THREADS].
    fn threads(&mut self) -> Result<Threads> {
        let t = self.word("auto or a thread count")?;
        if t.text.eq_ignore_ascii_case("auto") {
            return Ok(Threads::Auto);
        }
        match integer(&t.text) {
            Some(v) if (1..=MAX_THREADS as u64).contains(&v) => Ok(Threads::Count(v as usize)),
            _ => Err(self.error_at(
                &t,
                &format!("threads must be auto or an integer in [1, {MAX_THREADS}]"),
            )),
        }
    }

    fn boolean(&mut self, key: &str) -> Result<bool> {
        let t = self.word("true or false")?;
        match t.text.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(self.error_at(&t, &format!("{key} must be true or false"))),
        }
    }

    fn diagonal(&mut self) -> Result<Diagonal> {
        let t = self.word("none, complement or graft")?;
        match normalize_name(&t.text).as_str() {
            "none" => Ok(Diagonal::None),
            "complement" => Ok(Diagonal::Complement),
            "graft" => Ok(Diagonal::Graft),
            _ => Err(self.error_at(&t, "diagonal must be none, complement or graft")),
        }
    }

    fn dtype(&mut self) -> Result<Dtype> {
        let t = self.word("a dtype")?;
        match t.text.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Dtype::F32),
            "f64" | "float64" => Ok(Dtype::F64),
            _ => Err(self.error_at(&t, "dtype must be f32 or f64")),
        }
    }

    fn device(&mut self) -> Result<Device> {
        let t = self.word("a device")?;
        let lower = t.text.to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => return Ok(Device::Cpu),
            "cuda" => return Ok(Device::Cuda(0)),
            _ => {}
        }
        match lower.strip_prefix("cuda:").map(str::parse::<u32>) {
            Some(Ok(index)) => Ok(Device::Cuda(index)),
            _ => Err(self.error_at(&t, "device must be cpu or cuda:N")),
        }
    }
}

/// A non-negative integer written as one (`12`) or as a whole number (`12.0`, `1e3`).
fn integer(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().or_else(|| {
        let x = text.parse::<f64>().ok()?;
        (x.fract() == 0.0 && (0.0..9.0e15).contains(&x)).then_some(x as u64)
    })
}

/// Reads a scalar token for a parameter of kind `kind`: true/false/none, a number, or one of
/// the kind's word choices. `None` when it is none of these.
fn scalar(text: &str, kind: Kind) -> Option<Value> {
    match text.to_ascii_lowercase().as_str() {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "none" | "null" => return Some(Value::None),
        _ => {}
    }
    if let Ok(x) = text.parse::<f64>() {
        return Some(Value::Num(x));
    }
    match kind {
        Kind::Word(choices) => choices
            .iter()
            .find(|c| normalize_name(c) == normalize_name(text))
            .map(|c| Value::Word(c)),
        _ => None,
    }
}
