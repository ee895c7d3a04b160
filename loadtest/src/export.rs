//! A run's results for other tools, written beside `run.json`: `summary.csv` (one row
//! per operation and the total), `series.csv` (one row per measured second) for
//! spreadsheets and plotting, and `thresholds.xml`, JUnit XML with one test case per
//! threshold and one for the run itself, for CI systems that show test reports.

use std::path::Path;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::report::{OpReport, RunReport};

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing {file}: {source}")]
    Csv { file: String, source: csv::Error },
    #[error("writing {file}: {source}")]
    Junit {
        file: String,
        source: quick_junit::SerializeError,
    },
    #[error("writing {file}: {source}")]
    Io { file: String, source: std::io::Error },
}

/// Writes `summary.csv`, `series.csv` and `thresholds.xml` into `dir`.
pub fn write(report: &RunReport, dir: &Path) -> Result<(), ExportError> {
    write_csv(&dir.join("summary.csv"), summary_rows(report))?;
    write_csv(&dir.join("series.csv"), series_rows(report))?;
    let file = dir.join("thresholds.xml");
    let xml = junit(report).to_string().map_err(|source| ExportError::Junit {
        file: file.display().to_string(),
        source,
    })?;
    std::fs::write(&file, xml).map_err(|source| ExportError::Io {
        file: file.display().to_string(),
        source,
    })
}

fn write_csv(file: &Path, rows: Vec<Vec<String>>) -> Result<(), ExportError> {
    let error = |source| ExportError::Csv {
        file: file.display().to_string(),
        source,
    };
    let mut writer = csv::Writer::from_path(file).map_err(error)?;
    for row in rows {
        writer.write_record(row).map_err(error)?;
    }
    writer.flush().map_err(|e| error(e.into()))
}

/// The header, then each operation, each scenario's total (`<scenario>/all`), then `all`. Latencies in microseconds; `codes` is
/// `CODE=count` pairs joined by `;`.
fn summary_rows(report: &RunReport) -> Vec<Vec<String>> {
    let header = [
        "operation",
        "count",
        "errors",
        "rate_per_s",
        "p50_us",
        "p90_us",
        "p99_us",
        "p99_9_us",
        "max_us",
        "service_p50_us",
        "service_p99_us",
        "codes",
    ];
    let row = |op: &OpReport| {
        let (l, s) = (&op.latency, &op.service_time);
        vec![
            op.operation.clone(),
            op.count.to_string(),
            op.errors.to_string(),
            format!("{:.3}", op.rate_per_s),
            l.p50_us.to_string(),
            l.p90_us.to_string(),
            l.p99_us.to_string(),
            l.p99_9_us.to_string(),
            l.max_us.to_string(),
            s.p50_us.to_string(),
            s.p99_us.to_string(),
            codes(&op.codes),
        ]
    };
    std::iter::once(header.map(String::from).to_vec())
        .chain(report.rows().map(row))
        .collect()
}

/// The header, then one row per measured second, with each operation's p99 in a column
/// of its own (`p99_us:<operation>`), and with several scenarios each one's responses
/// and failures (`completed:<scenario>`, `errors:<scenario>`).
fn series_rows(report: &RunReport) -> Vec<Vec<String>> {
    let mut header: Vec<String> = [
        "second",
        "scheduled",
        "completed",
        "errors",
        "dropped",
        "p50_us",
        "p99_us",
        "max_us",
    ]
    .map(String::from)
    .to_vec();
    header.extend(report.operations.iter().map(|o| format!("p99_us:{}", o.operation)));
    for sc in &report.scenarios {
        header.extend(["completed", "errors"].map(|c| format!("{c}:{}", sc.name)));
    }
    header.push("error_codes".into());
    let rows = report.time_series.iter().map(|s| {
        let mut row = vec![
            s.second.to_string(),
            s.target.to_string(),
            s.completed.to_string(),
            s.errors.to_string(),
            s.dropped.to_string(),
            s.p50_us.to_string(),
            s.p99_us.to_string(),
            s.max_us.to_string(),
        ];
        row.extend((0..report.operations.len()).map(|i| s.op_p99_us.get(i).copied().unwrap_or(0).to_string()));
        for i in 0..report.scenarios.len() {
            let share = s.scenarios.get(i).cloned().unwrap_or_default();
            row.extend([share.completed.to_string(), share.errors.to_string()]);
        }
        row.push(codes(&s.error_codes));
        row
    });
    std::iter::once(header).chain(rows).collect()
}

/// Status counts as `CODE=n` pairs joined by `;`.
fn codes(counts: &std::collections::BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(code, n)| format!("{code}={n}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// One suite named after the scenario: a case per threshold, and `run` for the verdicts
/// that need no threshold (a run that measured nothing, or whose requests all failed).
fn junit(report: &RunReport) -> Report {
    let name = format!("loadtest {}", report.scenario.name);
    let mut suite = TestSuite::new(name.clone());
    let failed = |message: String| {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status.set_message(message);
        status
    };
    let mut run = TestCase::new(
        "run",
        if report.failures.is_empty() {
            TestCaseStatus::success()
        } else {
            failed(report.failures.join("; "))
        },
    );
    run.set_classname(name.clone());
    suite.add_test_case(run);
    for verdict in &report.thresholds {
        let status = if verdict.passed {
            TestCaseStatus::success()
        } else {
            failed(format!("{}: actual {}", verdict.threshold, verdict.actual_text()))
        };
        let mut case = TestCase::new(verdict.threshold.clone(), status);
        case.set_classname(name.clone());
        case.set_system_out(format!("actual {}", verdict.actual_text()));
        suite.add_test_case(case);
    }
    suite.set_time(std::time::Duration::from_secs_f64(report.measured_s.max(0.0)));
    let mut junit = Report::new("loadtest");
    junit.add_test_suite(suite);
    junit
}
