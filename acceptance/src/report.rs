//! The compliance matrix: target (backend, or proxy -> backend) x interface, with
//! pass/fail/skip counts, provider, durations and every skip reason.

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

#[derive(Debug, Serialize)]
pub struct Report {
    pub filter: Option<String>,
    pub strict: bool,
    /// target -> interface -> cell
    pub matrix: BTreeMap<String, BTreeMap<String, Cell>>,
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn new(outcomes: Vec<Outcome>, filter: Option<String>, strict: bool) -> Report {
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
            filter,
            strict,
            matrix,
            outcomes,
        }
    }

    pub fn totals(&self) -> (u32, u32, u32) {
        self.matrix
            .values()
            .flat_map(|m| m.values())
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
        let _ = writeln!(out, "total: {p} passed, {f} failed, {s} skipped");
        out
    }

    pub fn markdown(&self) -> String {
        let interfaces: Vec<String> = prism_proxy::Interface::ALL.iter().map(|i| i.to_string()).collect();
        let mut out = String::from("# Compliance matrix\n\n");
        let _ = writeln!(
            out,
            "Written by `cargo test -p acceptance`{}{}. Each cell: passed / failed / skipped cases. \
             `-` means the target does not declare the interface.\n",
            if self.strict { " in strict mode" } else { "" },
            self.filter
                .as_ref()
                .map(|f| format!(" with filter `{f}`"))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "| target | provider | {} |", interfaces.join(" | "));
        let _ = writeln!(out, "|---|---|{}", "---|".repeat(interfaces.len()));
        for (target, row) in self.matrix.iter().filter(|(t, _)| !t.starts_with("provisioning")) {
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
        let _ = writeln!(out, "\nTotal: {p} passed, {f} failed, {s} skipped.\n");
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
        let provisioning: Vec<&Outcome> = self.outcomes.iter().filter(|o| o.interface == "provisioning").collect();
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
        let _ = writeln!(out, "## Skips and their reasons\n");
        out.push_str(if skips.is_empty() { "None.\n" } else { &skips });
        let _ = writeln!(
            out,
            "\n## Durations\n\n| target | interface | time |\n|---|---|---|\n{durations}"
        );
        out
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("compliance.md"), self.markdown())?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("compliance.json"), json)
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}
