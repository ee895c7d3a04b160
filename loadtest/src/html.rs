//! `report.html`: one self-contained page (inline SVG, no scripts, nothing fetched) with
//! latency over time, the percentile distribution on a log scale, achieved vs target
//! throughput, and errors.

use std::fmt::Write as _;

use crate::report::{RunReport, fmt_us};

const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#ad494a",
];
/// Legend entries per row under a chart.
const LEGEND_COLUMNS: usize = 4;
const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    /// Index into COLORS (series drawn as a pair share one).
    color: usize,
    dashed: bool,
}

impl Series {
    fn new(name: impl Into<String>, color: usize, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            color,
            dashed: false,
        }
    }

    fn dashed(mut self) -> Series {
        self.dashed = true;
        self
    }
}

/// What a chart's y values are, for its tick labels.
#[derive(Clone, Copy, PartialEq)]
enum Unit {
    /// Microseconds, shown as us, ms or s.
    Micros,
    /// Whole counts: ticks at whole numbers, from 0.
    Count,
}

/// A step of 1, 2 or 5 times a power of ten, at least `raw` (and at least 1 for counts).
fn nice_step(raw: f64, unit: Unit) -> f64 {
    let raw = if unit == Unit::Count {
        raw.max(1.0)
    } else {
        raw.max(f64::MIN_POSITIVE)
    };
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power)
}

/// An SVG line chart. `x_ticks` label the x axis (value, label).
fn line_chart(
    id: &str,
    title: &str,
    y_label: &str,
    unit: Unit,
    series: &[Series],
    x_ticks: &[(f64, String)],
    log_y: bool,
) -> String {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    let (y_min, y_max) = ys.fold((f64::INFINITY, 0.0f64), |(lo, hi), y| {
        (if y > 0.0 { lo.min(y) } else { lo }, hi.max(y))
    });
    // Linear axes: four whole steps from 0, so counts get whole-number ticks.
    let step = nice_step(y_max.max(1.0) * 1.05 / 4.0, unit);
    let y_max = if log_y { y_max.max(1.0) } else { step * 4.0 };
    // Log scale: from the decade below the smallest value, not from 1.
    let decade_lo = if y_min.is_finite() {
        y_min.log10().floor().max(0.0)
    } else {
        0.0
    };
    let legend_rows = series.len().div_ceil(LEGEND_COLUMNS).max(1);
    let height = H + 14.0 * (legend_rows as f64 - 1.0);
    let (x0, x1) = if x0.is_finite() && x1 > x0 {
        (x0, x1)
    } else {
        (0.0, 1.0)
    };
    // Log scale spans whole decades around the data.
    let decade_hi = y_max.max(10.0).log10().ceil().max(decade_lo + 1.0);
    let ty = |y: f64| -> f64 {
        let f = if log_y {
            (y.max(1.0).log10() - decade_lo) / (decade_hi - decade_lo)
        } else {
            y / y_max
        };
        TOP + (H - TOP - BOTTOM) * (1.0 - f.clamp(0.0, 1.0))
    };
    let tx = |x: f64| LEFT + (W - LEFT - RIGHT) * (x - x0) / (x1 - x0);
    let mut svg = format!(
        r#"<svg id="{id}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" aria-label="{t}">
<text x="{LEFT}" y="18" class="title">{t}</text>
<line x1="{LEFT}" y1="{b}" x2="{r}" y2="{b}" class="axis"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b}" class="axis"/>
<text x="14" y="{mid}" class="label" transform="rotate(-90 14 {mid})">{yl}</text>
"#,
        t = esc(title),
        b = H - BOTTOM,
        r = W - RIGHT,
        mid = (H - BOTTOM + TOP) / 2.0,
        yl = esc(y_label),
    );
    // y grid: 0 and four steps (linear) or decades (log).
    let grid: Vec<f64> = if log_y {
        (decade_lo as i32..=decade_hi as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        (0..=4).map(|i| step * i as f64).collect()
    };
    for v in grid {
        let y = ty(v);
        let label = match unit {
            Unit::Micros => fmt_us(v),
            Unit::Count if step < 1.0 => format!("{v:.1}"),
            Unit::Count => format!("{v:.0}"),
        };
        let _ = writeln!(
            svg,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{label}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    for (x, label) in x_ticks {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            tx(*x),
            H - BOTTOM + 16.0,
            esc(label)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[s.color % COLORS.len()];
        let dash = if s.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let path: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", tx(*x), ty(*y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline class="series" data-series="{}" fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
            esc(&s.name),
            path.join(" ")
        );
        let (column, row) = ((i % LEGEND_COLUMNS) as f64, (i / LEGEND_COLUMNS) as f64);
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="3"{dash}/><text x="{:.1}" y="{:.1}" class="legend">{}</text>"#,
            LEFT + 10.0 + 170.0 * column,
            H - 10.0 + 14.0 * row,
            LEFT + 22.0 + 170.0 * column,
            H - 10.0 + 14.0 * row,
            LEFT + 26.0 + 170.0 * column,
            H - 7.0 + 14.0 * row,
            esc(&s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn second_ticks(n: usize) -> Vec<(f64, String)> {
    let step = (n / 10).max(1);
    (0..n).step_by(step).map(|s| (s as f64, format!("{s}s"))).collect()
}

pub fn render(r: &RunReport) -> String {
    let ts = &r.time_series;
    let ticks = second_ticks(ts.len());
    // p99 per operation (seconds where it had no response are left out), then the
    // overall median for reference.
    let mut over_time: Vec<Series> = r
        .operations
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let points = ts
                .iter()
                .filter_map(|s| {
                    s.op_p99_us
                        .get(i)
                        .filter(|v| **v > 0)
                        .map(|v| (s.second as f64, *v as f64))
                })
                .collect();
            Series::new(o.operation.clone(), i, points)
        })
        .collect();
    over_time.push(
        Series::new(
            "all: p50",
            r.operations.len(),
            ts.iter().map(|s| (s.second as f64, s.p50_us as f64)).collect(),
        )
        .dashed(),
    );
    let latency = line_chart(
        "latency-over-time",
        "Latency over time: p99 per operation, p50 of all (corrected)",
        "latency",
        Unit::Micros,
        &over_time,
        &ticks,
        true,
    );
    // x = -log10(1 - q): 90% -> 1, 99% -> 2, 99.9% -> 3; 100% is drawn at 5.
    let nines = |p: f64| if p >= 100.0 { 5.0 } else { -(1.0 - p / 100.0).log10() };
    // Drawn from the histograms (every point the run recorded), corrected solid and
    // uncorrected (service time) dashed in the same colour.
    let curve = |points: &[(f64, u64)]| points.iter().map(|(p, v)| (nines(*p), *v as f64)).collect();
    let dist_series: Vec<Series> = r
        .operations
        .iter()
        .enumerate()
        .flat_map(|(i, o)| {
            [
                Series::new(o.operation.clone(), i, curve(&o.distribution)),
                Series::new(
                    format!("{} (uncorrected)", o.operation),
                    i,
                    curve(&o.service_distribution),
                )
                .dashed(),
            ]
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let dist_ticks: Vec<(f64, String)> = [50.0, 90.0, 99.0, 99.9, 99.99, 100.0]
        .iter()
        .map(|p| (nines(*p), if *p >= 100.0 { "max".into() } else { format!("{p}%") }))
        .collect();
    let distribution = line_chart(
        "percentiles",
        "Percentile distribution (log scale): corrected, and uncorrected dashed",
        "latency",
        Unit::Micros,
        &dist_series,
        &dist_ticks,
        true,
    );
    let per_second = |name: &str, color: usize, value: fn(&crate::stats::Second) -> u64| {
        Series::new(
            name,
            color,
            ts.iter().map(|s| (s.second as f64, value(s) as f64)).collect(),
        )
    };
    let throughput = line_chart(
        "throughput",
        "Throughput: achieved vs target (requests per second)",
        "requests/s",
        Unit::Count,
        // The target is drawn last and dashed, so it shows where achieved lies on it.
        &[
            per_second("achieved", 2, |s| s.completed),
            per_second("target", 7, |s| s.target).dashed(),
        ],
        &ticks,
        false,
    );
    // One line per status code that failed, so a burst of one kind shows when it came.
    let codes: std::collections::BTreeSet<&String> = ts.iter().flat_map(|s| s.error_codes.keys()).collect();
    let mut error_series: Vec<Series> = if codes.is_empty() {
        vec![per_second("errors", 1, |s| s.errors)]
    } else {
        codes
            .iter()
            .enumerate()
            .map(|(i, code)| {
                let points = ts
                    .iter()
                    .map(|s| (s.second as f64, s.error_codes.get(*code).copied().unwrap_or(0) as f64))
                    .collect();
                Series::new(format!("errors: {code}"), [1, 4, 5, 6, 8, 9][i % 6], points)
            })
            .collect()
    };
    error_series.push(per_second("dropped", 3, |s| s.dropped).dashed());
    let errors = line_chart(
        "errors",
        "Errors by status code, and drops, per second",
        "count",
        Unit::Count,
        &error_series,
        &ticks,
        false,
    );
    let mut rows = String::new();
    for o in r.rows() {
        let cells: Vec<String> = o.cells().iter().map(|c| format!("<td>{}</td>", esc(c))).collect();
        let _ = writeln!(rows, "<tr>{}</tr>", cells.concat());
    }
    let mut verdicts = String::new();
    for v in &r.thresholds {
        let _ = writeln!(
            verdicts,
            r#"<li class="{}">{} &mdash; {} (actual {}{})</li>"#,
            if v.passed { "pass" } else { "fail" },
            esc(&v.threshold),
            v.verdict(),
            v.actual_text(),
            esc(&v.window_text())
        );
    }
    let mut stages = String::new();
    // Several scenarios: each one's stages, named `<scenario> <stage>`.
    let each = r
        .scenarios
        .iter()
        .flat_map(|sc| sc.stages.iter().map(move |st| (Some(&sc.name), st)));
    for (scenario, st) in r.stages.iter().map(|st| (None, st)).chain(each) {
        let _ = writeln!(
            stages,
            "<tr><td>{}{}</td><td>{}</td><td>{:.1} s</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            scenario.map(|n| format!("{} ", esc(n))).unwrap_or_default(),
            st.stage,
            esc(&st.offered),
            st.measured_s,
            st.scheduled,
            st.completed,
            st.rate_per_s,
            st.errors,
            st.dropped,
            fmt_us(st.worst_p99_us as f64)
        );
    }
    let started = std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.started_unix_ms);
    let about = format!(
        "Run {} UTC with loadtest {} on {} cores ({}/{}){}.",
        humantime::format_rfc3339_seconds(started)
            .to_string()
            .trim_end_matches('Z')
            .replace('T', " "),
        esc(&r.machine.loadtest_version),
        r.machine.cores,
        esc(&r.machine.os),
        esc(&r.machine.arch),
        r.scenario_file
            .as_deref()
            .map(|f| format!(", scenario file {}", esc(f)))
            .unwrap_or_default()
    );
    for f in &r.failures {
        let _ = writeln!(verdicts, r#"<li class="fail">{} &mdash; FAIL</li>"#, esc(f));
    }
    let warnings: String = r
        .warnings
        .iter()
        .map(|w| format!("<p class=\"warn\">warning: {}</p>\n", esc(w)))
        .chain(r.operations.iter().filter(|o| o.errors > 0).map(|o| {
            format!(
                "<p class=\"warn\">errors of {}: {}</p>\n",
                esc(&o.operation),
                esc(&o.error_codes())
            )
        }))
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loadtest: {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 980px; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 3px 10px; text-align: right; border-bottom: 1px solid #ddd; }}
td:first-child, th:first-child {{ text-align: left; }}
.chart {{ display: block; margin: 18px 0; }} .title {{ font-weight: 600; font-size: 14px; }}
.axis {{ stroke: #333; }} .grid {{ stroke: #e5e5e5; }} .tick, .legend, .label {{ font-size: 11px; fill: #444; }}
.pass {{ color: #1a7f37; }} .fail {{ color: #cf222e; font-weight: 600; }} .warn {{ color: #9a6700; }}
</style></head><body>
<h1>{name}: {verdict}</h1>
<p>{about}</p>
<p>Target: {target}. Measured {measured:.1} s after warm-up; {scheduled} arrivals scheduled, {dropped} dropped, achieved {achieved}.
Generator send lag p50 {lag50}, p99 {lag99}. Latency is corrected for coordinated omission (from each request's intended send time).</p>
{warnings}<ul>{verdicts}</ul>
<table><tr><th>operation</th><th>count</th><th>rate/s</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th></tr>
{rows}</table>
<h2>Stages</h2>
<table><tr><th>stage</th><th>offered</th><th>measured</th><th>scheduled</th><th>completed</th><th>rate/s</th><th>errors</th><th>dropped</th><th>worst 1-s p99</th></tr>
{stages}</table>
{latency}{distribution}{throughput}{errors}
</body></html>
"#,
        name = esc(&r.scenario.name),
        verdict = if r.passed { "PASSED" } else { "FAILED" },
        target = esc(&r.target),
        measured = r.measured_s,
        scheduled = r.scheduled,
        dropped = r.dropped,
        achieved = r
            .achieved_rate
            .map_or_else(|| "n/a (closed model)".to_string(), |a| format!("{:.1}%", a * 100.0)),
        lag50 = fmt_us(r.send_lag.p50_us as f64),
        lag99 = fmt_us(r.send_lag.p99_us as f64),
    )
}
