//! The tuning report: `plan.toml` is written by the caller; this writes
//! `pareto.csv` (every plan measured end to end), `layers.csv` (every
//! (layer, variant) measured alone: its sensitivity, reconstruction error
//! and micro-benchmark), `pareto.svg` (latency against the metric with the
//! Pareto front and the chosen plan marked, drawn with `plotters`) and
//! `report.md`.

use std::fmt::Write as _;
use std::path::Path;

use crate::options::{Metric, Outcome};
use crate::TuneError;

/// Writes the report files into `dir` (created if needed).
pub fn write_report(dir: &Path, o: &Outcome) -> Result<(), TuneError> {
    std::fs::create_dir_all(dir).map_err(|e| TuneError::Config(format!("--report {}: {e}", dir.display())))?;
    let m = o.metric.name();
    let mut csv = format!("plan,{m},latency_ms,weight_bytes,macs,chosen\n");
    for (i, e) in o.evaluated.iter().enumerate() {
        let _ = writeln!(
            csv,
            "\"{}\",{:.6},{:.6},{},{},{}",
            e.label,
            e.metric,
            e.latency_ms,
            e.weight_bytes,
            e.macs,
            i == o.chosen
        );
    }
    write(&dir.join("pareto.csv"), csv)?;
    let mut csv = format!("layer,variant,{m},sensitivity,error,layer_us,latency_ms,weight_bytes,chosen\n");
    let opt = |v: Option<f64>, scale: f64| v.map(|x| format!("{:.6}", x * scale)).unwrap_or_default();
    for l in &o.layers {
        let _ = writeln!(
            csv,
            "\"{}\",{},{:.6},{:.6},{},{},{:.6},{},{}",
            l.layer,
            l.variant,
            l.metric,
            o.baseline.metric - l.metric,
            opt(l.error, 1.0),
            opt(l.delta_ms, 1000.0),
            l.latency_ms,
            l.weight_bytes,
            l.chosen
        );
    }
    write(&dir.join("layers.csv"), csv)?;
    write(&dir.join("pareto.svg"), svg(o)?)?;
    write(&dir.join("report.md"), markdown(o))?;
    Ok(())
}

/// Writes one of the report's files; a failure names it.
fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), TuneError> {
    std::fs::write(path, contents).map_err(|e| TuneError::Config(format!("--report: writing {}: {e}", path.display())))
}

fn markdown(o: &Outcome) -> String {
    let c = o.chosen();
    let b = o.fp32();
    let base = &o.baseline;
    let mut s = String::from("# kerf tune report\n\n");
    let budget = match &o.metric {
        Metric::Top1 { max_drop } => format!("top-1 at most {:.2} points below FP32", max_drop * 100.0),
        Metric::Snr { min_db } => format!("output SNR at least {min_db} dB against FP32"),
        Metric::Command { cmd, max_drop } => format!("`{cmd}` at most {max_drop} below FP32's score"),
    };
    let _ = writeln!(s, "Latency measured on: {}.\n", o.latency_source);
    let _ = writeln!(
        s,
        "Budget: {budget}. {}\n",
        if o.met { "Met." } else { "**Not met**: the best plan found is written anyway." }
    );
    let _ =
        writeln!(s, "| plan | metric | latency ms | speed-up | weight bytes | MACs |\n|---|---:|---:|---:|---:|---:|");
    for (i, e) in o.evaluated.iter().enumerate() {
        let mark = if i == o.chosen { " **(chosen)**" } else { "" };
        let _ = writeln!(
            s,
            "| {}{mark} | {:.4} | {:.4} | {:.2}x | {} | {} |",
            e.label,
            e.metric,
            e.latency_ms,
            b.latency_ms / e.latency_ms,
            e.weight_bytes,
            e.macs
        );
    }
    let _ = writeln!(
        s,
        "\nPer layer (each variant alone: the whole model's metric and its drop from FP32 (sensitivity), the \
         layer's relative output error on the calibration data, its micro-benchmark's time change in µs, \
         the model latency that implies; chosen marked):\n"
    );
    let _ = writeln!(
        s,
        "| layer | variant | metric | sensitivity | error | layer Δ µs | latency ms | weight bytes | chosen |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---|"
    );
    for l in &o.layers {
        let _ = writeln!(
            s,
            "| {} | {} | {:.4} | {:.4} | {} | {} | {:.4} | {} | {} |",
            l.layer,
            l.variant,
            l.metric,
            base.metric - l.metric,
            l.error.map(|e| format!("{e:.2e}")).unwrap_or_default(),
            l.delta_ms.map(|d| format!("{:+.1}", d * 1000.0)).unwrap_or_default(),
            l.latency_ms,
            l.weight_bytes,
            if l.chosen { "yes" } else { "" }
        );
    }
    let _ = writeln!(
        s,
        "\nChosen: metric {:.4} (FP32 {:.4}), {:.4} ms (FP32 {:.4} ms, {:.2}x), weights {} bytes (FP32 {}).",
        c.metric,
        b.metric,
        c.latency_ms,
        b.latency_ms,
        b.latency_ms / c.latency_ms,
        c.weight_bytes,
        b.weight_bytes
    );
    s
}

/// The plans no other plan beats on both latency and metric, by latency.
/// A corner of the plot for the legend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Corner {
    LowerRight,
    UpperRight,
    UpperLeft,
    LowerLeft,
}

/// The corner whose legend box (about 55% of the plot's width and 20% of
/// its height: four lines of labels) covers the fewest points, so the
/// legend hides no plan; ties go to the earlier corner in [`Corner`]'s
/// order (lower right first).
fn legend_corner(points: &[(f64, f64)], x: (f64, f64), y: (f64, f64)) -> Corner {
    let norm = |v: f64, (lo, hi): (f64, f64)| (v - lo) / (hi - lo).max(1e-12);
    let covered = |c: Corner| {
        let (right, upper) = match c {
            Corner::LowerRight => (true, false),
            Corner::UpperRight => (true, true),
            Corner::UpperLeft => (false, true),
            Corner::LowerLeft => (false, false),
        };
        points
            .iter()
            .filter(|p| {
                let (u, v) = (norm(p.0, x), norm(p.1, y));
                (if right { u >= 0.45 } else { u <= 0.55 }) && (if upper { v >= 0.8 } else { v <= 0.2 })
            })
            .count()
    };
    let all = [Corner::LowerRight, Corner::UpperRight, Corner::UpperLeft, Corner::LowerLeft];
    all.into_iter().min_by_key(|&c| covered(c)).unwrap_or(Corner::LowerRight)
}

fn front(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut f: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|&(x, y)| !points.iter().any(|&(x2, y2)| x2 <= x && y2 >= y && (x2 < x || y2 > y)))
        .collect();
    f.sort_by(|a, b| a.0.total_cmp(&b.0));
    f.dedup();
    f
}

/// Latency (x) against the metric (y), drawn with `plotters`: every
/// (layer, variant) as a small grey dot (the whole model's metric with
/// that layer compressed, at its estimated latency), every plan measured
/// end to end as a labelled blue dot, the Pareto front of all of them as a
/// line, the chosen plan in red.
fn svg(o: &Outcome) -> Result<String, TuneError> {
    use plotters::prelude::*;
    let plans: Vec<(f64, f64)> = o.evaluated.iter().map(|e| (e.latency_ms, e.metric)).collect();
    let layers: Vec<(f64, f64)> =
        o.layers.iter().map(|l| (l.latency_ms, l.metric)).filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
    let all: Vec<(f64, f64)> =
        plans.iter().chain(&layers).copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
    // room on the right for the labels
    let span = |v: &mut dyn Iterator<Item = f64>, right: f64| {
        let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        let d = (hi - lo).max(hi.abs() * 1e-3).max(1e-9);
        (lo - 0.08 * d)..(hi + right * d)
    };
    let xr = span(&mut all.iter().map(|p| p.0), 0.3);
    let yr = span(&mut all.iter().map(|p| p.1), 0.08);
    let corner = legend_corner(&all, (xr.start, xr.end), (yr.start, yr.end));
    let err = |e: &dyn std::fmt::Display| TuneError::Io(std::io::Error::other(format!("drawing pareto.svg: {e}")));
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (800, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("kerf tune: latency against {}", o.metric.name()), ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(xr, yr)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(format!("latency, ms (median; {})", o.latency_source.replace('`', "")))
            .y_desc(o.metric.name())
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()
            .map_err(|e| err(&e))?;
        let grey = RGBColor(160, 160, 160);
        chart
            .draw_series(layers.iter().map(|&p| Circle::new(p, 3, grey.filled())))
            .map_err(|e| err(&e))?
            .label("one layer compressed (latency from its micro-benchmark)")
            .legend(move |(x, y)| Circle::new((x + 10, y), 3, grey.filled()));
        let front = front(&all);
        chart
            .draw_series(LineSeries::new(front, RGBColor(90, 160, 90).stroke_width(2)))
            .map_err(|e| err(&e))?
            .label("Pareto front")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(90, 160, 90).stroke_width(2)));
        chart
            .draw_series(o.evaluated.iter().enumerate().filter(|(i, _)| *i != o.chosen).enumerate().map(
                |(k, (_, e))| {
                    // staggered, so plans at the same metric keep readable labels
                    let dy = -14 - 13 * (k % 3) as i32;
                    EmptyElement::at((e.latency_ms, e.metric))
                        + Circle::new((0, 0), 5, BLUE.filled())
                        + PathElement::new(vec![(0, 0), (6, dy + 8)], BLUE.mix(0.4))
                        + Text::new(e.label.clone(), (8, dy), ("sans-serif", 12))
                },
            ))
            .map_err(|e| err(&e))?
            .label("plan measured end to end")
            .legend(|(x, y)| Circle::new((x + 10, y), 5, BLUE.filled()));
        let c = o.chosen();
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((c.latency_ms, c.metric))
                    + Circle::new((0, 0), 8, RED.filled())
                    + Text::new(c.label.clone(), (10, 6), ("sans-serif", 13)),
            ))
            .map_err(|e| err(&e))?
            .label("chosen plan")
            .legend(|(x, y)| Circle::new((x + 10, y), 7, RED.filled()));
        chart
            .configure_series_labels()
            .position(match corner {
                Corner::LowerRight => SeriesLabelPosition::LowerRight,
                Corner::UpperRight => SeriesLabelPosition::UpperRight,
                Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
                Corner::LowerLeft => SeriesLabelPosition::LowerLeft,
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{legend_corner, Corner};

    /// The legend goes where no point is: plans in the lower right (the
    /// resnet18 sweep's patterns-everywhere plan sat under it) move it.
    #[test]
    fn the_legend_avoids_the_points() {
        let (x, y) = ((0.0, 10.0), (0.0, 10.0));
        assert_eq!(legend_corner(&[(1.0, 5.0)], x, y), Corner::LowerRight);
        let lower_right = [(9.0, 1.0), (8.0, 0.5), (1.0, 9.5)];
        assert_eq!(legend_corner(&lower_right, x, y), Corner::UpperRight);
        let right = [(9.0, 1.0), (8.0, 9.5), (1.0, 9.5)];
        assert_eq!(legend_corner(&right, x, y), Corner::LowerLeft);
    }
}
