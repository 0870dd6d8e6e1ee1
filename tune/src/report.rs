//! The tuning report: `plan.toml` is written by the caller; this writes
//! `pareto.csv` (every plan measured end to end), `layers.csv` (every
//! (layer, variant) measured alone), `pareto.svg` (latency against the
//! metric, the chosen plan marked) and `report.md`.

use std::fmt::Write as _;
use std::path::Path;

use crate::search::{Metric, Outcome};
use crate::TuneError;

/// Writes the report files into `dir` (created if needed).
pub fn write_report(dir: &Path, o: &Outcome) -> Result<(), TuneError> {
    std::fs::create_dir_all(dir)?;
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
    std::fs::write(dir.join("pareto.csv"), csv)?;
    let mut csv = format!("layer,variant,{m},latency_ms,weight_bytes,chosen\n");
    for l in &o.layers {
        let _ = writeln!(
            csv,
            "\"{}\",{},{:.6},{:.6},{},{}",
            l.layer, l.variant, l.metric, l.latency_ms, l.weight_bytes, l.chosen
        );
    }
    std::fs::write(dir.join("layers.csv"), csv)?;
    std::fs::write(dir.join("pareto.svg"), svg(o))?;
    std::fs::write(dir.join("report.md"), markdown(o))?;
    Ok(())
}

fn markdown(o: &Outcome) -> String {
    let c = o.chosen();
    let b = &o.baseline;
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
    let _ = writeln!(s, "\nPer layer (each variant measured alone; chosen marked):\n");
    let _ =
        writeln!(s, "| layer | variant | metric | latency ms | weight bytes | chosen |\n|---|---|---:|---:|---:|---|");
    for l in &o.layers {
        let _ = writeln!(
            s,
            "| {} | {} | {:.4} | {:.4} | {} | {} |",
            l.layer,
            l.variant,
            l.metric,
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

/// Latency (x) against the metric (y), one dot per plan, the chosen one
/// marked, labelled.
fn svg(o: &Outcome) -> String {
    let (w, h, pad) = (720.0, 480.0, 70.0);
    let xs: Vec<f64> = o.evaluated.iter().map(|e| e.latency_ms).collect();
    let ys: Vec<f64> = o.evaluated.iter().map(|e| e.metric).collect();
    let span = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let d = (hi - lo).max(hi.abs() * 1e-3).max(1e-9);
        (lo - 0.08 * d, hi + 0.08 * d)
    };
    let ((x0, x1), (y0, y1)) = (span(&xs), span(&ys));
    let px = |x: f64| pad + (x - x0) / (x1 - x0) * (w - 2.0 * pad);
    let py = |y: f64| h - pad - (y - y0) / (y1 - y0) * (h - 2.0 * pad);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">latency (ms, median, {})</text>\n\
         <text x=\"18\" y=\"{}\" transform=\"rotate(-90 18 {})\" text-anchor=\"middle\">{}</text>\n",
        h - pad,
        w - pad,
        h - pad,
        h - pad,
        w / 2.0,
        h - 20.0,
        o.latency_source.replace('&', "&amp;").replace('<', "&lt;").replace('`', ""),
        h / 2.0,
        h / 2.0,
        o.metric.name()
    );
    for k in 0..=4 {
        let (xv, yv) = (x0 + (x1 - x0) * k as f64 / 4.0, y0 + (y1 - y0) * k as f64 / 4.0);
        let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{xv:.4}</text>", px(xv), h - pad + 16.0);
        let _ = writeln!(s, "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{yv:.4}</text>", pad - 6.0, py(yv) + 4.0);
    }
    for (i, e) in o.evaluated.iter().enumerate() {
        let (cx, cy) = (px(e.latency_ms), py(e.metric));
        let (r, fill) = if i == o.chosen { (7.0, "crimson") } else { (4.0, "steelblue") };
        let label = e.label.replace('&', "&amp;").replace('<', "&lt;");
        let _ = writeln!(s, "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{r}\" fill=\"{fill}\"/>");
        let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{:.1}\">{label}</text>", cx + 8.0, cy - 6.0);
    }
    s.push_str("</svg>\n");
    s
}
