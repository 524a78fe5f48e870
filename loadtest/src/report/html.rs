//! The HTML report: one self-contained page (no scripts, no external files)
//! with inline SVG charts drawn by plotters' SVG backend, which writes text
//! as SVG `<text>` and needs no font library.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::{Report, text};

const W: u32 = 900;
const H: u32 = 320;

/// Renders `r` as a self-contained HTML page.
pub fn html(r: &Report) -> String {
    let mut page = String::new();
    let verdict = if r.slo.pass { "PASS" } else { "FAIL" };
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>switchyard load: {name}</title>\
         <style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}\
         pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}\
         .pass{{color:#070}}.fail{{color:#a00}}</style></head><body>\n\
         <h1>switchyard load: {name} <span class=\"{cls}\">{verdict}</span></h1>\n",
        name = escape(&r.scenario),
        cls = verdict.to_lowercase(),
    );
    let _ = writeln!(page, "<h2>Throughput</h2>\n{}", throughput_svg(r));
    let _ = writeln!(
        page,
        "<h2>Latency over time (1-second windows)</h2>\n{}",
        latency_svg(r)
    );
    let _ = writeln!(page, "<h2>Latency percentiles</h2>\n{}", curve_svg(r));
    let _ = writeln!(page, "<h2>Summary</h2>\n<pre>{}</pre>", escape(&text(r)));
    page.push_str("</body></html>\n");
    page
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Draws with `f` into an SVG string; a drawing error becomes a note.
fn svg(
    f: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> String {
    let mut out = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        let r = root
            .fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| f(&root));
        r.and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match result {
        Ok(()) => out,
        Err(e) => format!("<p>(chart not drawn: {})</p>", escape(&e)),
    }
}

fn x_end(r: &Report) -> f64 {
    r.timeline.last().map_or(1.0, |p| p.t_s).max(1.0)
}

fn throughput_svg(r: &Report) -> String {
    svg(|root| {
        let ymax = r.timeline.iter().map(|p| p.throughput).fold(1.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_end(r), 0.0..ymax)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("msg/s")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                r.timeline.iter().map(|p| (p.t_s, p.throughput)),
                &BLUE,
            ))
            .map_err(|e| e.to_string())?
            .label("throughput")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())
    })
}

fn latency_svg(r: &Report) -> String {
    svg(|root| {
        let ymax = r
            .timeline
            .iter()
            .map(|p| p.p99_us as f64 / 1e3)
            .fold(0.001, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_end(r), 0.0..ymax)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("ms")
            .draw()
            .map_err(|e| e.to_string())?;
        for (label, color, pick) in [
            (
                "p50",
                GREEN,
                (|p: &crate::sampler::Point| p.p50_us) as fn(&_) -> u64,
            ),
            ("p99", RED, |p: &crate::sampler::Point| p.p99_us),
        ] {
            chart
                .draw_series(LineSeries::new(
                    r.timeline.iter().map(|p| (p.t_s, pick(p) as f64 / 1e3)),
                    &color,
                ))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())
    })
}

/// The percentile curve on a "nines" axis: x = log10(1 / (1 - q)).
fn curve_svg(r: &Report) -> String {
    svg(|root| {
        let points: Vec<(f64, f64)> = r
            .percentile_curve
            .iter()
            .filter(|(pct, _)| *pct < 100.0)
            .map(|(pct, us)| ((1.0 / (1.0 - pct / 100.0)).log10(), *us as f64 / 1e3))
            .collect();
        let xmax = points.iter().map(|p| p.0).fold(1.0, f64::max);
        let ymax = points.iter().map(|p| p.1).fold(0.001, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("ms")
            .x_label_formatter(&|x| format!("{}%", 100.0 - 100.0 / 10f64.powf(*x)))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(points, &BLUE))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}
