//! The compliance matrix: target (backend, or proxy -> backend) x interface, with
//! pass/fail/skip counts, provider, durations and every skip reason; what a reader needs
//! to trust a row (the harness's version and commit, the date, each server's own version
//! string, an endpoint's own description); and the same outcomes as JUnit XML.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// What happened to one case.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed(String),
    Skipped(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// `memstore` or `proxy -> memstore`.
    pub target: String,
    pub interface: String,
    pub case: String,
    pub provider: String,
    #[serde(flatten)]
    pub status: Status,
    pub duration_ms: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Cell {
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    pub duration_ms: u64,
    pub provider: String,
    pub skip_reasons: Vec<String>,
    pub failures: Vec<String>,
}

/// Where a target's rows come from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetInfo {
    pub provider: String,
    /// Where it was reached, for servers the run did not start itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The server's own version string (Redis `INFO server`, PostgreSQL `SELECT
    /// version()`, NATS's `INFO`, ClickHouse `version()`), or why it is not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// An out-of-tree endpoint's own `DescribeNamespace` answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub described: Option<serde_json::Value>,
}

/// The run as a whole: what produced the matrix, when, and from what.
#[derive(Debug, Clone, Serialize)]
pub struct RunMeta {
    /// The acceptance crate's version: the suites' version.
    pub suite_version: String,
    /// The harness's git commit at build time (`unknown` outside a checkout).
    pub harness_commit: String,
    /// When the run started (RFC 3339, UTC).
    pub date: String,
    pub filter: Option<String>,
    pub strict: bool,
    /// backend name -> where its rows come from
    pub targets: BTreeMap<String, TargetInfo>,
}

impl RunMeta {
    /// This harness build, now, with no targets yet.
    pub fn now(filter: Option<String>, strict: bool) -> RunMeta {
        RunMeta {
            suite_version: env!("CARGO_PKG_VERSION").to_string(),
            harness_commit: option_env!("PRISM_ACCEPT_GIT_COMMIT").unwrap_or("unknown").to_string(),
            date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            filter,
            strict,
            targets: BTreeMap::new(),
        }
    }
}

/// One operation's latency on one target, one call at a time (recorded, not asserted).
#[derive(Debug, Clone, Serialize)]
pub struct OperationLatency {
    /// `redis` or `proxy -> redis`.
    pub target: String,
    /// `keyvalue.get`, ...
    pub operation: String,
    /// Calls timed (the failed ones are not).
    pub calls: u64,
    pub failed: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub meta: RunMeta,
    /// target -> interface -> cell
    pub matrix: BTreeMap<String, BTreeMap<String, Cell>>,
    pub outcomes: Vec<Outcome>,
    /// Per target and operation, when the run measured it.
    pub latency: Vec<OperationLatency>,
}

/// Rows of the provisioning self-tests, which are not part of the matrix.
const SELF_TEST: &str = "provisioning";

/// Whether a cell is one of the matrix's (an interface's cases), not a self-test (the
/// provisioning checks, an endpoint describing itself).
fn in_matrix(interface: &str) -> bool {
    prism_proxy::Interface::parse(interface).is_some()
}

impl Report {
    pub fn new(outcomes: Vec<Outcome>, meta: RunMeta) -> Report {
        let mut matrix: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
        for o in &outcomes {
            let cell = matrix
                .entry(o.target.clone())
                .or_default()
                .entry(o.interface.clone())
                .or_default();
            cell.provider.clone_from(&o.provider);
            cell.duration_ms += o.duration_ms;
            match &o.status {
                Status::Passed => cell.passed += 1,
                Status::Failed(why) => {
                    cell.failed += 1;
                    cell.failures.push(format!("{}: {}", o.case, first_line(why)));
                }
                Status::Skipped(why) => {
                    cell.skipped += 1;
                    cell.skip_reasons.push(format!("{}: {why}", o.case));
                }
            }
        }
        Report {
            meta,
            matrix,
            outcomes,
            latency: Vec::new(),
        }
    }

    /// Passed, failed and skipped cases of the matrix (self-tests not counted).
    pub fn totals(&self) -> (u32, u32, u32) {
        self.count(in_matrix)
    }

    /// The same for the self-tests (provisioning, an endpoint describing itself).
    pub fn self_test_totals(&self) -> (u32, u32, u32) {
        self.count(|interface| !in_matrix(interface))
    }

    fn count(&self, cells: impl Fn(&str) -> bool) -> (u32, u32, u32) {
        self.matrix
            .values()
            .flat_map(|row| row.iter().filter(|(interface, _)| cells(interface)).map(|(_, c)| c))
            .fold((0, 0, 0), |(p, f, s), c| (p + c.passed, f + c.failed, s + c.skipped))
    }

    /// The terminal summary table.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\ncompliance matrix (pass/fail/skip)");
        let _ = writeln!(
            out,
            "{:<28} {:<18} {:<12} {:>14} {:>9}",
            "target", "interface", "provider", "p/f/s", "time"
        );
        for (target, row) in &self.matrix {
            for (interface, c) in row {
                let _ = writeln!(
                    out,
                    "{target:<28} {interface:<18} {:<12} {:>14} {:>9}",
                    c.provider,
                    format!("{}/{}/{}", c.passed, c.failed, c.skipped),
                    format!("{:.1}s", Duration::from_millis(c.duration_ms).as_secs_f64())
                );
            }
        }
        let (p, f, s) = self.totals();
        let _ = writeln!(out, "matrix: {p} passed, {f} failed, {s} skipped");
        let (p, f, s) = self.self_test_totals();
        if p + f + s > 0 {
            let _ = writeln!(
                out,
                "self-tests (not in the matrix): {p} passed, {f} failed, {s} skipped"
            );
        }
        out
    }

    pub fn markdown(&self) -> String {
        let interfaces: Vec<String> = prism_proxy::Interface::ALL.iter().map(|i| i.to_string()).collect();
        let mut out = String::from("# Compliance matrix\n\n");
        let _ = writeln!(
            out,
            "Written by the acceptance harness {} (commit {}) on {}{}{}. Each cell: passed / failed / skipped cases. \
             `-` means the target does not declare the interface.\n",
            self.meta.suite_version,
            self.meta.harness_commit,
            self.meta.date,
            if self.meta.strict { " in strict mode" } else { "" },
            self.meta
                .filter
                .as_ref()
                .map(|f| format!(" with filter `{f}`"))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "| target | provider | {} |", interfaces.join(" | "));
        let _ = writeln!(out, "|---|---|{}", "---|".repeat(interfaces.len()));
        for (target, row) in self.matrix.iter().filter(|(t, _)| !t.starts_with(SELF_TEST)) {
            let provider = row.values().next().map(|c| c.provider.clone()).unwrap_or_default();
            let cells: Vec<String> = interfaces
                .iter()
                .map(|i| match row.get(i) {
                    None => "-".to_string(),
                    Some(c) if c.failed > 0 => format!("**{} / {} / {}** ❌", c.passed, c.failed, c.skipped),
                    Some(c) => format!("{} / {} / {}", c.passed, c.failed, c.skipped),
                })
                .collect();
            let _ = writeln!(out, "| {target} | {provider} | {} |", cells.join(" | "));
        }
        let (p, f, s) = self.totals();
        let _ = writeln!(
            out,
            "\nTotal: {p} passed, {f} failed, {s} skipped (the cases above; the self-tests below are not counted).\n"
        );
        if !self.meta.targets.is_empty() {
            let _ = writeln!(
                out,
                "## Servers\n\n| backend | provider | server version | reached at |\n|---|---|---|---|"
            );
            for (name, info) in &self.meta.targets {
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {} |",
                    info.provider,
                    info.server_version.as_deref().unwrap_or("-"),
                    info.url.as_deref().unwrap_or("-")
                );
            }
            for (name, info) in &self.meta.targets {
                if let Some(described) = &info.described {
                    let _ = writeln!(out, "\n`{name}` describes itself as: `{described}`");
                }
            }
            out.push('\n');
        }
        let mut durations = String::new();
        let mut skips = String::new();
        let mut failures = String::new();
        for (target, row) in &self.matrix {
            for (interface, c) in row {
                let _ = writeln!(
                    durations,
                    "| {target} | {interface} | {:.2} s |",
                    c.duration_ms as f64 / 1000.0
                );
                for r in &c.skip_reasons {
                    let _ = writeln!(skips, "- `{target}` / `{interface}` / {r}");
                }
                for r in &c.failures {
                    let _ = writeln!(failures, "- `{target}` / `{interface}` / {r}");
                }
            }
        }
        let provisioning: Vec<&Outcome> = self.outcomes.iter().filter(|o| o.interface == SELF_TEST).collect();
        if !provisioning.is_empty() {
            let _ = writeln!(
                out,
                "## Provisioning self-test\n\n| server | provider | result |\n|---|---|---|"
            );
            for o in provisioning {
                let result = match &o.status {
                    Status::Passed => format!("started, answered, torn down ({} ms)", o.duration_ms),
                    Status::Failed(why) => format!("**failed**: {}", first_line(why)),
                    Status::Skipped(why) => format!("skipped: {why}"),
                };
                let server = o
                    .target
                    .trim_start_matches("provisioning -> ")
                    .split(' ')
                    .next()
                    .unwrap_or_default();
                let _ = writeln!(out, "| {server} | {} | {result} |", o.case);
            }
            out.push('\n');
        }
        if !failures.is_empty() {
            let _ = writeln!(out, "## Failures\n\n{failures}");
        }
        if !self.latency.is_empty() {
            out.push_str(&self.latency_markdown());
        }
        let _ = writeln!(out, "## Skips and their reasons\n");
        out.push_str(if skips.is_empty() { "None.\n" } else { &skips });
        let _ = writeln!(
            out,
            "\n## Durations\n\n| target | interface | time |\n|---|---|---|\n{durations}"
        );
        out
    }

    /// Each backend's operations, directly and through the proxy side by side.
    fn latency_markdown(&self) -> String {
        let mut rows: BTreeMap<(String, String), [Option<&OperationLatency>; 2]> = BTreeMap::new();
        for l in &self.latency {
            let (backend, via_proxy) = match l.target.strip_prefix("proxy -> ") {
                Some(backend) => (backend.to_string(), 1),
                None => (l.target.clone(), 0),
            };
            rows.entry((backend, l.operation.clone())).or_default()[via_proxy] = Some(l);
        }
        let build = if cfg!(debug_assertions) { "debug" } else { "release" };
        let mut out = format!(
            "## Latency per operation\n\nRecorded, not asserted: one call at a time, on a machine other work shares, \
             by a {} build of the harness and proxy. \
             p50 / p99 in microseconds; `direct` is the driver in the harness's process, `proxy` the same driver \
             behind the in-process proxy over gRPC.\n\n| backend | operation | direct p50 / p99 | proxy p50 / p99 | calls |\n|---|---|---|---|---|\n",
            build
        );
        let cell = |l: Option<&OperationLatency>| match l {
            Some(l) if l.calls > 0 => format!("{} / {}", l.p50_us, l.p99_us),
            Some(l) => format!("{} failed", l.failed),
            None => "-".into(),
        };
        for ((backend, operation), [direct, proxy]) in &rows {
            let calls = direct.or(*proxy).map_or(0, |l| l.calls + l.failed);
            let _ = writeln!(
                out,
                "| {backend} | {operation} | {} | {} | {calls} |",
                cell(*direct),
                cell(*proxy)
            );
        }
        out.push('\n');
        out
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("compliance.md"), self.markdown())?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("compliance.json"), json)
    }

    /// JUnit XML: a suite per target, a case per trial (`interface::case`), skips as
    /// skipped with their reason, failures with their message.
    pub fn junit(&self) -> Result<String, quick_junit::SerializeError> {
        use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
        let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
        for o in &self.outcomes {
            let status = match &o.status {
                Status::Passed => TestCaseStatus::success(),
                Status::Failed(why) => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(first_line(why)).set_description(why.as_str());
                    status
                }
                Status::Skipped(why) => {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message(why.as_str());
                    status
                }
            };
            let mut case = TestCase::new(format!("{}::{}", o.interface, o.case), status);
            case.set_classname(o.target.as_str())
                .set_time(Duration::from_millis(o.duration_ms));
            suites
                .entry(o.target.as_str())
                .or_insert_with(|| TestSuite::new(o.target.as_str()))
                .add_test_case(case);
        }
        let mut report = quick_junit::Report::new("prism-conformance");
        report.add_test_suites(suites.into_values());
        report.to_string()
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}
