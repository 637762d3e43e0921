//! The two charts: throughput.svg (one panel per throughput workload, a bar per server with
//! its min–max range) and latency.svg (p50/p99/p99.9 per server of the fixed-rate run, log
//! scale).
//!
//! Owns: drawing with plotters' SVG backend (no fonts needed: SVG text is left to the viewer).
//! Contract: both files are always written; a chart without data says so in its caption.
//! Only ringwork-load results are drawn (wrk's are in the tables). The baseline's bars are
//! orange, the peers' blue; a server without a good run has no bar and "(failed)" in its
//! label.
//! Does not: compute summaries (see `results.rs`).

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::compare::manifest::BASELINE;
use crate::compare::results::{RINGWORK_LOAD, Results, Row, WorkloadResult};
use crate::compare::suite::Load;

const PEER: RGBColor = RGBColor(70, 110, 200);
const BASE: RGBColor = RGBColor(235, 130, 30);
const SHADES: [RGBColor; 3] = [
    RGBColor(120, 170, 230),
    RGBColor(50, 100, 190),
    RGBColor(20, 40, 110),
];

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing a chart: {e}")
}

fn label(row: &Row) -> String {
    if row.ok_runs == 0 {
        format!("{} (failed)", row.server)
    } else {
        row.server.clone()
    }
}

fn generator_rows(w: &WorkloadResult) -> Vec<&Row> {
    w.rows.iter().filter(|r| r.tool == RINGWORK_LOAD).collect()
}

/// Writes throughput.svg.
///
/// # Errors
/// A description when the file cannot be drawn or written.
pub fn throughput(path: &Path, r: &Results) -> Result<(), String> {
    let panels: Vec<&WorkloadResult> = r
        .workloads
        .iter()
        .filter(|w| matches!(w.workload.load, Load::Echo { .. } | Load::Http { .. }))
        .filter(|w| w.skipped.is_none())
        .collect();
    let n = panels.len().max(1);
    let cols = n.min(3);
    let rows = n.div_ceil(cols);
    let root = SVGBackend::new(path, (420 * cols as u32, 300 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    if panels.is_empty() {
        root.titled("no throughput results", ("sans-serif", 20))
            .map_err(err)?;
    }
    for (w, area) in panels.iter().zip(root.split_evenly((rows, cols)).iter()) {
        let bars = generator_rows(w);
        let k = bars.len().max(1);
        let ymax = bars
            .iter()
            .filter_map(|b| b.rps.map(|s| s.max))
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.15;
        let names: Vec<String> = bars.iter().map(|b| label(b)).collect();
        let unit = if matches!(w.workload.load, Load::Echo { .. }) {
            "msg/s"
        } else {
            "req/s"
        };
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{} ({unit})", w.workload.id), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(62)
            .build_cartesian_2d((0..k - 1).into_segmented(), 0f64..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(k + 1)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
            .draw()
            .map_err(err)?;
        for (i, b) in bars.iter().enumerate() {
            let Some(s) = b.rps else { continue };
            let color = if b.server == BASELINE { BASE } else { PEER };
            let mut rect = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), s.median),
                ],
                color.filled(),
            );
            rect.set_margin(0, 0, 10, 10);
            chart.draw_series(std::iter::once(rect)).map_err(err)?;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![
                        (SegmentValue::CenterOf(i), s.min),
                        (SegmentValue::CenterOf(i), s.max),
                    ],
                    BLACK.stroke_width(2),
                )))
                .map_err(err)?;
        }
    }
    root.present().map_err(err)
}

/// Writes latency.svg.
///
/// # Errors
/// A description when the file cannot be drawn or written.
pub fn latency(path: &Path, r: &Results) -> Result<(), String> {
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let Some(w) = r
        .workloads
        .iter()
        .find(|w| matches!(w.workload.load, Load::HttpRate { .. }) && w.skipped.is_none())
    else {
        root.titled("no fixed-rate results", ("sans-serif", 20))
            .map_err(err)?;
        return root.present().map_err(err);
    };
    let bars = generator_rows(w);
    let k = bars.len().max(1);
    let pick = |b: &Row| [b.p50_us, b.p99_us, b.p999_us].map(|s| s.map(|s| s.median));
    let ymax = bars
        .iter()
        .flat_map(|b| pick(b))
        .flatten()
        .fold(10.0, f64::max)
        * 2.0;
    let names: Vec<String> = bars.iter().map(|b| label(b)).collect();
    let rate = w
        .rate
        .map_or_else(String::new, |r| format!(" at {r:.0} req/s"));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{}: corrected latency p50 / p99 / p99.9 (µs, log){rate}",
                w.workload.id
            ),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d((0..4 * k - 2).into_segmented(), (1f64..ymax).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(4 * k + 1)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if i % 4 == 1 => {
                names.get(i / 4).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    for (i, b) in bars.iter().enumerate() {
        for (j, v) in pick(b).into_iter().enumerate() {
            let Some(v) = v else { continue };
            let x = 4 * i + j;
            let mut rect = Rectangle::new(
                [
                    (SegmentValue::Exact(x), 1.0),
                    (SegmentValue::Exact(x + 1), v.max(1.0)),
                ],
                SHADES[j].filled(),
            );
            rect.set_margin(0, 0, 2, 2);
            chart.draw_series(std::iter::once(rect)).map_err(err)?;
        }
    }
    for (j, name) in ["p50", "p99", "p99.9"].iter().enumerate() {
        let color = SHADES[j];
        chart
            .draw_series(std::iter::empty::<Rectangle<(SegmentValue<usize>, f64)>>())
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::fixtures;

    #[test]
    fn both_charts_are_written_with_the_servers_in_them() {
        let dir = std::env::temp_dir().join(format!("compare-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = fixtures::results();
        throughput(&dir.join("t.svg"), &r).unwrap();
        latency(&dir.join("l.svg"), &r).unwrap();
        let t = std::fs::read_to_string(dir.join("t.svg")).unwrap();
        let l = std::fs::read_to_string(dir.join("l.svg")).unwrap();
        assert!(t.starts_with("<svg") && t.contains("http-keepalive") && t.contains("go (failed)"));
        assert!(l.contains("p99.9") && l.contains("nginx"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
