//! Rego through `regorus`, with a budget (SPEC.md §13.3).
//!
//! A script compiles once ([`Script::compile`]) and evaluates many times
//! ([`Script::eval`]) on clones of the compiled engine. Nothing reaches a
//! policy but its input: `regorus` is built without `http.send`,
//! `opa.runtime`, the clock and UUIDs, and a script that calls what remains
//! of the non-deterministic builtins (`rand.intn`) is refused at compile
//! time. Each evaluation has a wall-clock budget; the process has a heap
//! ceiling past which an evaluation fails instead of growing.

use std::num::NonZeroU32;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;

/// The budget of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one evaluation may take.
    pub time: Duration,
    /// The process's heap ceiling while policies evaluate (bytes).
    pub memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time: Duration::from_secs(2),
            memory: 2 << 30,
        }
    }
}

impl Limits {
    /// The defaults, overridden by `TALLY_POLICY_TIMEOUT_MS` and
    /// `TALLY_POLICY_MEMORY_MIB` (the CLI's; the server reads its config).
    pub fn from_env() -> Limits {
        let mut l = Limits::default();
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
        };
        if let Some(ms) = num("TALLY_POLICY_TIMEOUT_MS") {
            l.time = Duration::from_millis(ms);
        }
        if let Some(mib) = num("TALLY_POLICY_MEMORY_MIB") {
            l.memory = mib << 20;
        }
        l
    }

    /// Applies the heap ceiling (process-wide: it bounds every evaluation).
    pub fn install(&self) {
        regorus::set_global_memory_limit(Some(self.memory));
    }
}

/// Builtins a policy may not call: they read the network, the clock, the
/// environment or randomness, so a verdict could not be re-checked.
pub const FORBIDDEN: &[&str] = &[
    "http.send",
    "opa.runtime",
    "time.now_ns",
    "rand.intn",
    "uuid.rfc4122",
    "net.lookup_ip_addr",
    "trace",
];

/// The rules Chainloop's result convention reads; a script declaring only
/// some of them gets the rest (as Chainloop injects them).
const CONVENTION: &[&str] = &[
    "result",
    "skipped",
    "skip_reason",
    "valid_input",
    "violations",
    "ignore",
];

/// A compiled script.
#[derive(Debug, Clone)]
pub struct Script {
    engine: regorus::Engine,
    query: String,
}

/// What one evaluation says, in Chainloop's convention.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The messages of `violations` (objects: their `message`, or their JSON).
    pub violations: Vec<String>,
    /// Whether the policy did not apply to the input.
    pub skipped: bool,
    /// Why it was skipped.
    pub skip_reason: String,
    /// Whether the policy asked for its result to be ignored.
    pub ignore: bool,
}

fn new_engine(v1: bool, limits: &Limits) -> regorus::Engine {
    let mut e = regorus::Engine::new();
    e.set_rego_v0(!v1);
    e.set_strict_builtin_errors(true);
    for f in ["units.parse", "units.parse_bytes"] {
        // Registered on a fresh engine: the names cannot be taken.
        let _ = e.add_extension(
            f.to_owned(),
            1,
            Box::new(move |args: Vec<regorus::Value>| guarded_units(f, args)),
        );
    }
    e.set_execution_timer_config(ExecutionTimerConfig {
        limit: limits.time,
        // The clock is read every 64 work units (every unit cost ~5% of an
        // evaluation, BENCHMARKS.md); the budget overshoots by microseconds.
        check_interval: NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN),
    });
    e
}

/// Where a script sits in the file it was read from: the file, and the
/// lines and columns before its first character (an embedded YAML block).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The file (repository path).
    pub file: String,
    /// Lines before the script's first line.
    pub line_offset: usize,
    /// Columns before each of its lines (the block's indentation).
    pub indent: usize,
}

/// `file:line:col: message` from regorus' error text (`--> origin:l:c` and
/// an `error: …` line), mapped to the file's own lines.
fn compile_error(origin: &str, at: &Origin, e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let place = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("--> "))
        .and_then(|p| {
            let mut parts = p.rsplitn(3, ':');
            let col = parts.next()?.trim().parse::<usize>().ok()?;
            let line = parts.next()?.trim().parse::<usize>().ok()?;
            Some((line, col))
        });
    let message = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("error: "))
        .unwrap_or(text.trim())
        .to_owned();
    match place {
        Some((line, col)) => format!(
            "{}:{}:{}: {message}",
            at.file,
            line + at.line_offset,
            col + at.indent
        ),
        None if text.contains(origin) => format!("{}: {message}", at.file),
        None => format!("{}: {text}", at.file),
    }
}

impl Script {
    /// Compiles `rego` (named `origin` in errors). Rego v1 when the file
    /// imports `rego.v1`, else v0 (how OPA 0.x, and so Chainloop, reads it).
    pub fn compile(origin: &str, rego: &str, limits: &Limits) -> Result<Script, String> {
        Self::compile_at(
            origin,
            &Origin {
                file: origin.to_owned(),
                ..Origin::default()
            },
            rego,
            limits,
        )
    }

    /// [`Script::compile`], with errors placed in the file `at` names.
    pub fn compile_at(origin: &str, at: &Origin, rego: &str, limits: &Limits) -> Result<Script, String> {
        forbidden_calls(at, rego)?;
        number_literals(at, rego)?;
        recursive_functions(at, rego)?;
        nesting(at, rego)?;
        let v1 = rego.lines().any(|l| l.trim_start().starts_with("import rego.v1"));
        let mut engine = new_engine(v1, limits);
        let package = engine
            .add_policy(origin.to_owned(), rego.to_owned())
            .map_err(|e| compile_error(origin, at, &e))?;
        let declared =
            |e: &regorus::Engine, rule: &str| e.has_declared_rule_rooted_at(origin, rule).unwrap_or(false);
        let missing: Vec<&str> = CONVENTION
            .iter()
            .copied()
            .filter(|r| !declared(&engine, r))
            .collect();
        if !missing.is_empty() {
            let has = |r: &str| !missing.contains(&r);
            let extra = boilerplate(v1, &has);
            if !extra.is_empty() {
                engine = new_engine(v1, limits);
                engine
                    .add_policy(origin.to_owned(), format!("{rego}\n{extra}"))
                    .map_err(|e| compile_error(origin, at, &e))?;
            }
        }
        let script = Script {
            engine,
            query: format!("{package}.result"),
        };
        // Analysis (rule scheduling, imports, recursion) happens on the
        // first evaluation: run one now on an empty input so a broken
        // policy fails here, not at its first push. Runtime errors of the
        // empty input itself are not compile errors.
        let mut probe = script.engine.clone();
        probe.set_input(regorus::Value::new_object());
        if let Err(e) = probe.eval_rule(script.query.clone()) {
            let text = format!("{e:#}");
            if is_static(&text) {
                return Err(compile_error(origin, at, &e));
            }
        }
        Ok(script)
    }

    /// Evaluates on `input` (an object), within the budget.
    pub fn eval(&self, input: regorus::Value) -> Result<Outcome, String> {
        let mut engine = self.engine.clone();
        engine.set_input(input);
        let v = engine
            .eval_rule(self.query.clone())
            .map_err(|e| runtime_error(&e))?;
        outcome(&v)
    }
}

/// Errors that no input could avoid (the policy itself is wrong).
fn is_static(text: &str) -> bool {
    [
        "recursion",
        "could not find function",
        "undefined",
        "unknown",
        "import",
        "conflict",
    ]
    .iter()
    .any(|w| text.contains(w))
        && !text.contains("input")
}

fn runtime_error(e: &anyhow::Error) -> String {
    if let Some(l) = e.downcast_ref::<regorus::LimitError>() {
        return match l {
            regorus::LimitError::MemoryLimitExceeded { usage, limit } => format!(
                "the policy exceeded the memory budget ({} MiB in use, ceiling {} MiB)",
                usage >> 20,
                limit >> 20
            ),
            regorus::LimitError::TimeLimitExceeded { .. } => {
                format!("the policy exceeded its time budget ({l})")
            }
            other => format!("the policy exceeded its budget: {other}"),
        };
    }
    let text = format!("{e:#}");
    if text.contains("time limit") || text.contains("execution exceeded") || text.contains("TimeLimit") {
        return format!("the policy exceeded its time budget: {text}");
    }
    text
}

fn boilerplate(v1: bool, has: &dyn Fn(&str) -> bool) -> String {
    let mut s = String::new();
    let (iff, assign) = if v1 { ("if ", ":=") } else { ("", "=") };
    if !has("result") {
        s += &format!(
            "result {assign} {{\"skipped\": skipped, \"violations\": violations, \"skip_reason\": skip_reason, \"ignore\": ignore}}\n"
        );
    }
    if !has("skip_reason") {
        s += "default skip_reason := \"\"\n";
        s += &format!("skip_reason {assign} m {iff}{{\n  not valid_input\n  m := \"the file content is not recognized\"\n}}\n");
    }
    if !has("valid_input") {
        s += "default valid_input := true\n";
    }
    if !has("skipped") {
        s += "default skipped := true\n";
        s += &format!("skipped {assign} false {iff}{{ valid_input }}\n");
    }
    if !has("ignore") {
        s += "default ignore := false\n";
    }
    if !has("violations") {
        s += "default violations := []\n";
    }
    s
}

/// Reads the `result` object.
fn outcome(v: &regorus::Value) -> Result<Outcome, String> {
    if *v == regorus::Value::Undefined {
        return Err(
            "the policy's `result` is undefined for this input (a rule it is built from has no value)".into(),
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&v.to_json_str().map_err(|e| format!("result: {e:#}"))?)
            .map_err(|e| format!("result: {e}"))?;
    let obj = json
        .as_object()
        .ok_or_else(|| format!("the policy's `result` must be an object, not {json}"))?;
    let mut out = Outcome {
        skipped: obj.get("skipped").and_then(|b| b.as_bool()).unwrap_or(false),
        skip_reason: obj
            .get("skip_reason")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_owned(),
        ignore: obj.get("ignore").and_then(|b| b.as_bool()).unwrap_or(false),
        violations: Vec::new(),
    };
    let list = match obj.get("violations") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(a)) => a.clone(),
        Some(other) => return Err(format!("`violations` must be a set or an array, not {other}")),
    };
    for v in list {
        out.violations.push(match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Object(o) => match o.get("message").or_else(|| o.get("violation")) {
                Some(serde_json::Value::String(m)) => m.clone(),
                _ => serde_json::Value::Object(o).to_string(),
            },
            other => return Err(format!("a violation must be a string or an object, not {other}")),
        });
    }
    out.violations.sort();
    out.violations.dedup();
    Ok(out)
}

/// Refuses calls to [`FORBIDDEN`] builtins (outside comments and strings).
fn forbidden_calls(at: &Origin, rego: &str) -> Result<(), String> {
    for (n, line) in rego.lines().enumerate() {
        let code = strip_comment_and_strings(line);
        for f in FORBIDDEN {
            let mut from = 0;
            while let Some(i) = code[from..].find(f) {
                let col = from + i;
                let before = code[..col].chars().next_back();
                let after = code[col + f.len()..].trim_start();
                let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
                if !before.is_some_and(ident) && after.starts_with('(') {
                    return Err(format!(
                        "{}:{}:{}: `{f}` is not available to policies: a verdict may depend only on its input and arguments (no network, clock, environment or randomness)",
                        at.file,
                        n + 1 + at.line_offset,
                        col + 1 + at.indent
                    ));
                }
                from = col + f.len();
            }
        }
    }
    Ok(())
}

/// Deepest nesting of array and object brackets (`[`, `{`) a script may
/// have, and of all brackets: regorus' compile time doubles with each level
/// of nested array or object literals past about 12 (16 levels: 4.5 s, 20:
/// over a minute, in a debug build), and compiling happens before any
/// budget applies. Real policies nest a handful of levels.
pub const MAX_LITERAL_NESTING: usize = 10;
/// Deepest nesting of all brackets, parentheses included.
pub const MAX_NESTING: usize = 32;
/// Most unary minus operators one expression may chain (`- - x`,
/// `-a * -b`, across lines and enclosing brackets): regorus parses each
/// one by a recursive call outside its own expression-depth limit, so a
/// long chain (a few hundred on a 2 MiB thread stack) overflows the stack
/// and kills the process. Real policies use one or two.
pub const MAX_UNARY_CHAIN: usize = 16;

/// Largest exponent (`1e400`) and most digits a number may have, in a
/// script or in a string `units.parse`/`units.parse_bytes` read: regorus
/// turns a number in scientific notation into an exact integer, so
/// `0e724333332` multiplies out ten to the 724 millionth power (minutes of
/// CPU, before and outside any budget). `1e308` is the largest finite double.
pub const MAX_EXPONENT: u64 = 400;
/// See [`MAX_EXPONENT`] (a longer run of digits parses in quadratic time).
pub const MAX_DIGITS: usize = 400;

/// Why `text` (a number, or a number with a unit suffix) is too large to
/// parse, if it is.
fn oversized_number(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i - start > MAX_DIGITS {
                return Some(format!("a number has more than {MAX_DIGITS} digits"));
            }
            continue;
        }
        if matches!(b[i], b'e' | b'E') && i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
            let mut j = i + 1;
            if j < b.len() && matches!(b[j], b'+' | b'-') {
                j += 1;
            }
            let digits = b[j..].iter().take_while(|c| c.is_ascii_digit()).count();
            let exponent = b[j..j + digits].iter().fold(0u64, |n, d| {
                n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            });
            if exponent > MAX_EXPONENT {
                return Some(format!("a number's exponent is larger than {MAX_EXPONENT}"));
            }
        }
        i += 1;
    }
    None
}

/// Refuses number literals past [`MAX_EXPONENT`] / [`MAX_DIGITS`]
/// (outside strings and comments).
fn number_literals(at: &Origin, rego: &str) -> Result<(), String> {
    for (n, line) in rego.lines().enumerate() {
        let code = strip_comment_and_strings(line);
        let b = code.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
            if !b[i].is_ascii_digit() || (i > 0 && ident(b[i - 1])) {
                i += 1;
                continue;
            }
            // A literal: digits, a fraction, an exponent.
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                let sign = matches!(b[i], b'e' | b'E') && matches!(b.get(i + 1), Some(b'+' | b'-'));
                i += if sign { 2 } else { 1 };
            }
            if let Some(why) = oversized_number(&code[start..i.min(b.len())]) {
                return Err(format!(
                    "{}:{}:{}: {why}",
                    at.file,
                    n + 1 + at.line_offset,
                    start + 1 + at.indent
                ));
            }
        }
    }
    Ok(())
}

/// A script whose only rules are the `units` builtins, which the guarded
/// extensions call once the argument is known to be small.
fn units_engine() -> &'static regorus::Engine {
    static ENGINE: std::sync::OnceLock<regorus::Engine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut e = regorus::Engine::new();
        e.set_rego_v0(false);
        e.set_strict_builtin_errors(true);
        let script =
            "package tally_units\nparse := units.parse(input.s)\nparse_bytes := units.parse_bytes(input.s)\n";
        if let Err(err) = e.add_policy("units.rego".into(), script.into()) {
            tracing::error!("the units script does not compile: {err}");
        }
        e
    })
}

/// `units.parse`/`units.parse_bytes` (`f`) on `args`, refusing a string
/// argument past [`MAX_EXPONENT`] / [`MAX_DIGITS`]: the strings come from
/// materials, and regorus' own parse has no bound.
fn guarded_units(f: &str, args: Vec<regorus::Value>) -> anyhow::Result<regorus::Value> {
    let [arg] =
        <[regorus::Value; 1]>::try_from(args).map_err(|_| anyhow::anyhow!("`{f}` takes one argument"))?;
    if let regorus::Value::String(s) = &arg {
        if let Some(why) = oversized_number(s) {
            anyhow::bail!("`{f}`: {why}");
        }
    }
    let mut e = units_engine().clone();
    let mut input = regorus::Value::new_object();
    input.as_object_mut()?.insert("s".into(), arg);
    e.set_input(input);
    let rule = if f == "units.parse" {
        "parse"
    } else {
        "parse_bytes"
    };
    e.eval_rule(format!("data.tally_units.{rule}"))
}

/// Refuses scripts nested deeper than [`MAX_LITERAL_NESTING`] /
/// [`MAX_NESTING`], or with more than [`MAX_UNARY_CHAIN`] unary minus
/// operators in one expression (outside strings and comments).
fn nesting(at: &Origin, rego: &str) -> Result<(), String> {
    // Per open bracket (and the top level, first): the bracket and the
    // unary minus operators met in its current expression.
    let mut stack: Vec<(char, usize)> = vec![(' ', 0)];
    // Whether the last token ends an operand (a `-` after one is binary).
    let mut after_operand = false;
    let mut word = String::new();
    let place =
        |n: usize, col: usize| format!("{}:{}:{}", at.file, n + 1 + at.line_offset, col + 1 + at.indent);
    for (n, line) in rego.lines().enumerate() {
        // A line break after a whole operand ends a body's expression; one
        // after an operator (`x *`) or inside a call's arguments does not
        // end anything, so the count goes on.
        if after_operand {
            if let Some(top) = stack.last_mut() {
                top.1 = 0;
            }
        }
        for (col, c) in strip_comment_and_strings(line)
            .chars()
            .chain(std::iter::once(' '))
            .enumerate()
        {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                after_operand = !UNARY_KEYWORDS.contains(&word.as_str());
                word.clear();
            }
            match c {
                '(' | '[' | '{' => {
                    stack.push((c, 0));
                    let brackets = stack.len() - 1;
                    let literal = stack.iter().filter(|b| matches!(b.0, '[' | '{')).count();
                    if brackets > MAX_NESTING || literal > MAX_LITERAL_NESTING {
                        return Err(format!(
                            "{}: brackets nested deeper than {MAX_NESTING} ({MAX_LITERAL_NESTING} for arrays, sets and objects)",
                            place(n, col)
                        ));
                    }
                    after_operand = false;
                }
                ')' | ']' | '}' => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    after_operand = true;
                }
                '"' | '`' => after_operand = true,
                ',' | ';' => {
                    if let Some(top) = stack.last_mut() {
                        top.1 = 0;
                    }
                    after_operand = false;
                }
                '-' if !after_operand => {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    // Each unary minus is a level of regorus' parser's
                    // recursion, and the levels of enclosing brackets add up.
                    if stack.iter().map(|b| b.1).sum::<usize>() > MAX_UNARY_CHAIN {
                        return Err(format!(
                            "{}: more than {MAX_UNARY_CHAIN} unary minus operators in one expression",
                            place(n, col)
                        ));
                    }
                }
                c if c.is_whitespace() => {}
                _ => after_operand = false,
            }
        }
    }
    Ok(())
}

/// Words after which a `-` is a unary minus (`x in -1`, `not -x`).
const UNARY_KEYWORDS: &[&str] = &[
    "as", "contains", "default", "else", "every", "if", "import", "in", "not", "package", "some", "with",
];

/// Refuses recursive functions (`f(x) := f(x)`, or `f` → `g` → `f`).
/// Rego forbids recursion; regorus catches it between rules at run time,
/// not between functions, where it would exhaust the stack — so it is
/// found here, statically: functions are the definitions at the start of
/// a line (`name(` … `:=`/`=`/`if`/`{`), a body runs to the next one.
fn recursive_functions(at: &Origin, rego: &str) -> Result<(), String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    // (name, first line) of each definition, functions and rules alike.
    let mut defs: Vec<(String, usize, bool)> = Vec::new();
    let lines: Vec<String> = rego.lines().map(strip_comment_and_strings).collect();
    for (n, l) in lines.iter().enumerate() {
        if l.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            let l = l.strip_prefix("default ").unwrap_or(l);
            let name: String = l.chars().take_while(|&c| ident(c)).collect();
            // No name (`default (`…): not a definition; an empty name would
            // match everywhere below.
            if name.is_empty() || matches!(name.as_str(), "package" | "import") {
                continue;
            }
            let is_fn = l[name.len()..].starts_with('(');
            defs.push((name, n, is_fn));
        }
    }
    let functions: Vec<&str> = defs.iter().filter(|d| d.2).map(|d| d.0.as_str()).collect();
    // Calls from each function's bodies to functions of this module.
    let mut calls: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> = Default::default();
    for (i, (name, start, is_fn)) in defs.iter().enumerate() {
        if !is_fn {
            continue;
        }
        let end = defs.get(i + 1).map_or(lines.len(), |d| d.1);
        let head_len = name.len();
        for (k, l) in lines[*start..end].iter().enumerate() {
            let body = if k == 0 { &l[head_len..] } else { l.as_str() };
            for f in &functions {
                let mut from = 0;
                while let Some(p) = body[from..].find(f) {
                    let c = from + p;
                    let before = body[..c].chars().next_back();
                    let after = &body[c + f.len()..];
                    if !before.is_some_and(|b| ident(b) || b == '.') && after.starts_with('(') {
                        calls.entry(name.as_str()).or_default().insert(f);
                    }
                    from = c + f.len();
                }
            }
        }
    }
    // A cycle: depth-first search from each function.
    for f in &functions {
        let mut stack = vec![(*f, vec![*f])];
        let mut seen = std::collections::BTreeSet::new();
        while let Some((g, path)) = stack.pop() {
            for h in calls.get(g).into_iter().flatten() {
                if h == f {
                    let line = defs.iter().find(|d| d.0 == *f && d.2).map_or(0, |d| d.1);
                    return Err(format!(
                        "{}:{}:{}: function `{f}` is recursive ({} → {f}); Rego forbids recursion",
                        at.file,
                        line + 1 + at.line_offset,
                        1 + at.indent,
                        path.join(" → ")
                    ));
                }
                if seen.insert(*h) {
                    let mut p = path.clone();
                    p.push(h);
                    stack.push((h, p));
                }
            }
        }
    }
    Ok(())
}

/// The line with string literals blanked and any `#` comment removed.
fn strip_comment_and_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' => break,
            '"' => {
                out.push('"');
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        chars.next();
                        out.push(' ');
                    } else if c == '"' {
                        break;
                    }
                    out.push(' ');
                }
                out.push('"');
            }
            '`' => {
                out.push('`');
                for c in chars.by_ref() {
                    if c == '`' {
                        break;
                    }
                    out.push(' ');
                }
                out.push('`');
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: serde_json::Value) -> regorus::Value {
        serde_json::from_value(v).unwrap()
    }

    fn limits() -> Limits {
        Limits {
            time: Duration::from_millis(500),
            memory: 8 << 30,
        }
    }

    /// Found by the `policy` fuzz target: a line `default (` named nothing,
    /// and the recursion check then looped forever looking for "" calls.
    #[test]
    fn a_nameless_default_line_is_a_compile_error_not_a_hang() {
        let e = Script::compile("p.rego", "default (os\0%", &limits()).unwrap_err();
        assert!(!e.to_string().is_empty());
        let e = Script::compile("p.rego", "package p\ndefault (x) := 1\nf(x) := x\n", &limits()).unwrap_err();
        assert!(!e.to_string().is_empty());
    }

    /// Found by the `policy` fuzz target: regorus turned `0e724333332`
    /// into an exact integer (ten to the 724 millionth power) while parsing.
    #[test]
    fn a_number_with_a_huge_exponent_is_refused_before_regorus_reads_it() {
        let e =
            Script::compile("p.rego", "\tpackage b\t\tpa\t {0e724333332&rand.in ", &limits()).unwrap_err();
        assert!(
            e.contains("p.rego:1:18: a number's exponent is larger than 400"),
            "{e}"
        );
        let long = format!("package p\nx := {}\n", "9".repeat(MAX_DIGITS + 1));
        let e = Script::compile("p.rego", &long, &limits()).unwrap_err();
        assert!(e.contains("more than 400 digits"), "{e}");
        // Ordinary numbers, identifiers with digits and strings are fine.
        let ok = "package p\nimport rego.v1\nx := 1.5e300\ny1e999 := \"1e999999\"\nviolations contains \"n\" if input.n > 2.5E-3 # 7e9999\n";
        Script::compile("p.rego", ok, &limits()).unwrap();
    }

    /// The `units` builtins read strings from materials: a huge exponent
    /// there is an evaluation error, not minutes of CPU; ordinary strings
    /// parse as regorus parses them.
    #[test]
    fn units_parse_is_bounded_and_still_parses() {
        let s = Script::compile(
            "p.rego",
            "package p\nimport rego.v1\nviolations contains sprintf(\"%v %v\", [units.parse(input.s), units.parse_bytes(input.b)]) if input.s\n",
            &limits(),
        )
        .unwrap();
        let o = s
            .eval(json(serde_json::json!({"s": "10Ki", "b": "5MB"})))
            .unwrap();
        assert_eq!(o.violations, vec!["10240 5000000"]);
        let o = s
            .eval(json(serde_json::json!({"s": "1.5k", "b": "1KiB"})))
            .unwrap();
        assert_eq!(o.violations, vec!["1500 1024"]);
        let started = std::time::Instant::now();
        for (bad_s, bad_b) in [
            ("1e999999999", "1"),
            ("1", "2E724333332KB"),
            (&*"7".repeat(100_000), "1"),
        ] {
            let e = s
                .eval(json(serde_json::json!({"s": bad_s, "b": bad_b})))
                .unwrap_err();
            assert!(
                e.contains("exponent is larger than 400") || e.contains("more than 400 digits"),
                "{e}"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(s.eval(json(serde_json::json!({"s": "x", "b": "1"}))).is_err());
    }

    #[test]
    fn a_violations_only_policy_gets_chainloops_defaults() {
        let s = Script::compile(
            "p.rego",
            "package p\nimport rego.v1\nviolations contains m if {\n  input.n > 1\n  m := sprintf(\"n is %d\", [input.n])\n}\n",
            &limits(),
        )
        .unwrap();
        let o = s.eval(json(serde_json::json!({"n": 3}))).unwrap();
        assert_eq!(o.violations, vec!["n is 3"]);
        assert!(!o.skipped);
        assert!(s
            .eval(json(serde_json::json!({"n": 0})))
            .unwrap()
            .violations
            .is_empty());
    }

    #[test]
    fn valid_input_false_skips_with_a_reason() {
        let s = Script::compile(
            "p.rego",
            "package p\nimport rego.v1\nvalid_input if input.kind == \"x\"\nviolations contains \"bad\" if input.bad\n",
            &limits(),
        )
        .unwrap();
        let o = s
            .eval(json(serde_json::json!({"kind": "y", "bad": true})))
            .unwrap();
        assert!(o.skipped, "{o:?}");
        assert_eq!(o.skip_reason, "the file content is not recognized");
        let o = s
            .eval(json(serde_json::json!({"kind": "x", "bad": true})))
            .unwrap();
        assert_eq!((o.skipped, o.violations.len()), (false, 1));
    }

    #[test]
    fn a_full_result_object_is_read_as_written() {
        let s = Script::compile(
            "p.rego",
            "package main\nimport rego.v1\nresult := {\"skipped\": false, \"violations\": [{\"message\": \"m1\"}, \"m0\"], \"skip_reason\": \"\"}\n",
            &limits(),
        )
        .unwrap();
        assert_eq!(
            s.eval(json(serde_json::json!({}))).unwrap().violations,
            vec!["m0", "m1"]
        );
    }

    #[test]
    fn v0_policies_compile_too() {
        let s = Script::compile(
            "p.rego",
            "package p\nviolations[msg] {\n  input.n > 1\n  msg := \"big\"\n}\n",
            &limits(),
        )
        .unwrap();
        assert_eq!(
            s.eval(json(serde_json::json!({"n": 3}))).unwrap().violations,
            vec!["big"]
        );
    }

    #[test]
    fn hostile_policies_fail_clearly() {
        let e = Script::compile(
            "h.rego",
            "package h\nimport rego.v1\nviolations contains x if {\n  r := http.send({\"method\": \"get\", \"url\": \"http://example.com\"})\n  x := r.body\n}\n",
            &limits(),
        )
        .unwrap_err();
        assert!(e.contains("h.rego:4:") && e.contains("http.send"), "{e}");
        let e = Script::compile(
            "b.rego",
            "package b\nimport rego.v1\nviolations contains x if {\n",
            &limits(),
        )
        .unwrap_err();
        assert!(e.contains("b.rego"), "{e}");
        // A string or a comment naming a forbidden builtin is no call.
        Script::compile(
            "ok.rego",
            "package ok\nimport rego.v1\n# http.send(x) is not used\nviolations contains \"no http.send(here)\" if input.x\n",
            &limits(),
        )
        .unwrap();
        let huge = Script::compile(
            "huge.rego",
            "package huge\nimport rego.v1\nviolations contains m if {\n  xs := [x | some x in numbers.range(1, 100000); some y in numbers.range(1, 100000)]\n  m := sprintf(\"%d\", [count(xs)])\n}\n",
            &Limits {
                time: Duration::from_millis(200),
                memory: 8 << 30,
            },
        )
        .unwrap();
        let t = std::time::Instant::now();
        let e = huge.eval(json(serde_json::json!({}))).unwrap_err();
        assert!(e.contains("budget"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    }

    /// Compiles `rego` on a thread with the 2 MiB stack of the server's
    /// worker threads (where a stack overflow kills the whole process).
    fn compile_on_small_stack(rego: String) -> Result<(), String> {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || Script::compile("u.rego", &rego, &limits()).map(drop))
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn long_unary_minus_chains_are_refused_before_they_overflow_the_stack() {
        // The shape the policy fuzz target found (a SIGSEGV at ~7.7 M
        // inputs): unary minus runs continued across lines by a trailing
        // `*`; each line is short of regorus' 1,024-column limit.
        let line = format!("ff*\n {}", "-".repeat(60));
        let chain = format!("package t\nx := {{\n{}ff\n}}\n", line.repeat(40));
        let e = compile_on_small_stack(chain).unwrap_err();
        assert!(e.contains("u.rego:4:") && e.contains("unary minus"), "{e}");
        // Spread over operands and brackets, the chain still adds up.
        let spread = format!("package t\nx := {}1\n", "-a * (".repeat(20));
        let e = compile_on_small_stack(spread).unwrap_err();
        assert!(e.contains("unary minus"), "{e}");
        // After a keyword a minus is unary too.
        let keyword = format!("package t\nx := [1 {}]\n", "in -\n".repeat(30));
        let e = compile_on_small_stack(keyword).unwrap_err();
        assert!(e.contains("unary minus"), "{e}");
        // What real policies write compiles: many negative numbers, each in
        // its own expression, element or line; binary minus of any length.
        let many: String = (0..200).map(|i| format!("  a{i} := -{i} * -2 - 1\n")).collect();
        let fine = format!(
            "package t\nimport rego.v1\nx := [{}]\ny := {}\nz if {{\n{many}}}\nw if 1 in -1\nv := 1e-5 - -1\n",
            vec!["-1"; 300].join(",\n"),
            vec!["input.n"; 100].join(" -\n"),
        );
        compile_on_small_stack(fine).unwrap();
    }
}
