//! Latency-by-percentile charts as hand-written SVG.
//!
//! The x axis is the percentile on a "nines" scale (-log10(1 - p): 90 %, 99 %, 99.9 % ... are
//! evenly spaced), so the tail gets as much room as the median; the y axis is the latency in
//! milliseconds, linear, or logarithmic when the curves span more than a factor of 20. Past the
//! last percentile its sample size resolves, a curve steps up to its maximum and runs flat to
//! the right edge.

use crate::metrics::CurvePoint;
use std::fmt::Write;

const PLOT_WIDTH_PX: f64 = 620.0;
const HEIGHT_PX: f64 = 560.0;
const MARGIN_LEFT_PX: f64 = 80.0;
/// Room right of the plot before the legend's text, and after it.
const LEGEND_PADDING_PX: f64 = 45.0;
/// Width of one legend character at 12 px sans-serif, generously rounded up.
const LEGEND_CHAR_PX: f64 = 7.0;
const MARGIN_TOP_PX: f64 = 50.0;
const MARGIN_BOTTOM_PX: f64 = 70.0;
const LEGEND_ROW_PX: f64 = 20.0;
/// Spans of latency (max / smallest positive) beyond which the y axis turns logarithmic.
const LOG_SCALE_SPAN_MIN: f64 = 20.0;
/// Up to this many decades, log ticks are 1, 2, 5 x 10^k; beyond, powers of ten only.
const LOG_MINOR_TICK_DECADES_MAX: i32 = 4;
/// The x axis ends at most at this many nines (99.99999 %).
const NINES_AXIS_MAX: f64 = 7.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// One curve of the chart.
#[derive(Debug, Clone)]
pub struct PlotCurve {
    pub label: String,
    pub points: Vec<CurvePoint>,
}

fn nines(percentile: f64) -> f64 {
    if percentile >= 100.0 {
        f64::INFINITY
    } else {
        -(1.0 - percentile / 100.0).log10()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round number for tick labels: no trailing zeros.
fn number_text(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// The label of the tick at `k` nines: 0 %, 90 %, 99 %, 99.9 % ...
fn percentile_label(k: u32) -> String {
    let percentile = 100.0 * (1.0 - 10f64.powi(-(k as i32)));
    format!("{}%", number_text(percentile))
}

enum YScale {
    Linear {
        top: f64,
        step: f64,
    },
    /// Bounds are 1-2-5 ticks around the data.
    Log {
        bottom: f64,
        top: f64,
    },
}

/// The 1, 2, 5 x 10^k sequence around `value`: the largest at or below it, the smallest at or
/// above it.
fn one_two_five_bounds(value: f64) -> (f64, f64) {
    let decade = 10f64.powf(value.log10().floor());
    let steps = [1.0, 2.0, 5.0, 10.0].map(|factor| factor * decade);
    let below = steps
        .iter()
        .copied()
        .filter(|step| *step <= value * (1.0 + 1e-9))
        .fold(decade, f64::max);
    let above = steps
        .iter()
        .copied()
        .find(|step| *step >= value * (1.0 - 1e-9))
        .unwrap_or(10.0 * decade);
    (below, above)
}

impl YScale {
    fn choose(values: &[f64]) -> YScale {
        let max = values.iter().copied().fold(0.0_f64, f64::max);
        let min_positive = values
            .iter()
            .copied()
            .filter(|value| *value > 0.0)
            .fold(f64::INFINITY, f64::min);
        if max > 0.0 && min_positive.is_finite() && max / min_positive > LOG_SCALE_SPAN_MIN {
            return YScale::Log {
                bottom: one_two_five_bounds(min_positive).0,
                top: one_two_five_bounds(max).1,
            };
        }
        let max = if max > 0.0 { max } else { 1.0 };
        let raw_step = max / 5.0;
        let magnitude = 10f64.powf(raw_step.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|factor| factor * magnitude)
            .find(|step| *step >= raw_step)
            .unwrap_or(10.0 * magnitude);
        YScale::Linear {
            top: (max / step).ceil() * step,
            step,
        }
    }

    /// Position in 0..=1 from the bottom of the plot.
    fn fraction(&self, value: f64) -> f64 {
        match self {
            YScale::Linear { top, .. } => (value / top).clamp(0.0, 1.0),
            YScale::Log { bottom, top } => {
                let (low, high) = (bottom.log10(), top.log10());
                let logged = if value > 0.0 { value.log10() } else { low };
                ((logged - low) / (high - low).max(f64::EPSILON)).clamp(0.0, 1.0)
            }
        }
    }

    fn ticks(&self) -> Vec<f64> {
        match self {
            YScale::Linear { top, step } => {
                let count = (top / step).round() as usize;
                (0..=count).map(|index| index as f64 * step).collect()
            }
            YScale::Log { bottom, top } => {
                let low_decade = bottom.log10().floor() as i32;
                let high_decade = top.log10().ceil() as i32;
                let factors: &[f64] = if high_decade - low_decade <= LOG_MINOR_TICK_DECADES_MAX {
                    &[1.0, 2.0, 5.0]
                } else {
                    &[1.0]
                };
                (low_decade..=high_decade)
                    .flat_map(|decade| factors.iter().map(move |f| f * 10f64.powi(decade)))
                    .filter(|tick| *tick >= bottom * (1.0 - 1e-9) && *tick <= top * (1.0 + 1e-9))
                    .collect()
            }
        }
    }

    fn axis_title(&self) -> &'static str {
        match self {
            YScale::Linear { .. } => "latency (ms)",
            YScale::Log { .. } => "latency (ms, log scale)",
        }
    }
}

/// Renders the chart of `curves` under `title`.
pub fn render_svg(title: &str, curves: &[PlotCurve]) -> String {
    let plot_width = PLOT_WIDTH_PX;
    let longest_label = curves
        .iter()
        .map(|curve| curve.label.chars().count())
        .max()
        .unwrap_or(0);
    let legend_width = LEGEND_PADDING_PX * 2.0 + longest_label as f64 * LEGEND_CHAR_PX;
    let width = MARGIN_LEFT_PX + plot_width + legend_width;
    let plot_height = HEIGHT_PX - MARGIN_TOP_PX - MARGIN_BOTTOM_PX;
    let finite_nines = curves
        .iter()
        .flat_map(|curve| curve.points.iter())
        .map(|point| nines(point.percentile))
        .filter(|value| value.is_finite())
        .fold(1.0_f64, f64::max);
    let nines_max = finite_nines.ceil().clamp(1.0, NINES_AXIS_MAX);
    let values: Vec<f64> = curves
        .iter()
        .flat_map(|curve| curve.points.iter().map(|point| point.latency_ms))
        .collect();
    let y_scale = YScale::choose(&values);
    let x_of = |percentile: f64| {
        MARGIN_LEFT_PX + plot_width * (nines(percentile).min(nines_max) / nines_max)
    };
    let y_of = |latency: f64| MARGIN_TOP_PX + plot_height * (1.0 - y_scale.fraction(latency));

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT_PX}" viewBox="0 0 {width} {HEIGHT_PX}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="28" font-size="16" font-weight="bold" text-anchor="middle">{}</text>"#,
        MARGIN_LEFT_PX + plot_width / 2.0,
        escape(title)
    );

    // Grid and tick labels.
    let bottom = MARGIN_TOP_PX + plot_height;
    let right = MARGIN_LEFT_PX + plot_width;
    for k in 0..=(nines_max as u32) {
        let x = MARGIN_LEFT_PX + plot_width * (k as f64 / nines_max);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{MARGIN_TOP_PX}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#e0e0e0\"/>"
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            bottom + 18.0,
            percentile_label(k)
        );
    }
    for tick in y_scale.ticks() {
        let y = y_of(tick);
        let _ = writeln!(
            svg,
            "<line x1=\"{MARGIN_LEFT_PX}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#e0e0e0\"/>"
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            MARGIN_LEFT_PX - 8.0,
            y + 4.0,
            number_text(tick)
        );
    }

    // Axes and their titles.
    let _ = writeln!(
        svg,
        r#"<line x1="{MARGIN_LEFT_PX}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<line x1="{MARGIN_LEFT_PX}" y1="{MARGIN_TOP_PX}" x2="{MARGIN_LEFT_PX}" y2="{bottom}" stroke="black"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">percentile (nines scale; each curve ends flat at its max)</text>"#,
        MARGIN_LEFT_PX + plot_width / 2.0,
        HEIGHT_PX - 22.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="20" y="{:.1}" text-anchor="middle" transform="rotate(-90 20 {:.1})">{}</text>"#,
        MARGIN_TOP_PX + plot_height / 2.0,
        MARGIN_TOP_PX + plot_height / 2.0,
        y_scale.axis_title()
    );

    // Curves.
    for (index, curve) in curves.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let mut path: Vec<String> = Vec::with_capacity(curve.points.len() + 1);
        let mut previous_x = None;
        for point in &curve.points {
            let (x, y) = (x_of(point.percentile), y_of(point.latency_ms));
            // Past the last percentile the sample resolves, every value is the maximum: step
            // up to it there, then run flat to the right edge.
            if let (true, Some(previous_x)) = (point.percentile >= 100.0, previous_x) {
                path.push(format!("{previous_x:.1},{y:.1}"));
            }
            path.push(format!("{x:.1},{y:.1}"));
            previous_x = Some(x);
        }
        if !path.is_empty() {
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
        }
    }

    // Legend.
    let legend_x = right + 20.0;
    let _ = writeln!(
        svg,
        r#"<text x="{legend_x}" y="{}" font-weight="bold">legend</text>"#,
        MARGIN_TOP_PX + 4.0
    );
    for (index, curve) in curves.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let y = MARGIN_TOP_PX + 24.0 + index as f64 * LEGEND_ROW_PX;
        let _ = writeln!(
            svg,
            r#"<line x1="{legend_x}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="3"/>"#,
            legend_x + 24.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            legend_x + 30.0,
            y + 4.0,
            escape(&curve.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(label: &str, max_ms: f64) -> PlotCurve {
        PlotCurve {
            label: label.to_string(),
            points: vec![
                CurvePoint {
                    percentile: 0.0,
                    latency_ms: 0.5,
                },
                CurvePoint {
                    percentile: 99.0,
                    latency_ms: 1.0,
                },
                CurvePoint {
                    percentile: 99.9,
                    latency_ms: 2.0,
                },
                CurvePoint {
                    percentile: 100.0,
                    latency_ms: max_ms,
                },
            ],
        }
    }

    #[test]
    fn the_chart_has_axes_labels_and_a_legend() {
        let svg = render_svg(
            "put <A & B>",
            &[curve("capstan put", 3.0), curve("etcd put", 4.0)],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("put &lt;A &amp; B&gt;"));
        assert!(svg.contains("latency (ms)"));
        assert!(svg.contains("percentile (nines scale"));
        assert!(svg.contains(">99.9%<"));
        assert!(svg.contains("capstan put") && svg.contains("etcd put"));
        assert_eq!(svg.matches("<polyline").count(), 2);
    }

    #[test]
    fn wide_spans_use_a_log_axis() {
        let svg = render_svg("stall", &[curve("open loop", 1000.0)]);
        assert!(svg.contains("log scale"));
    }

    #[test]
    fn log_bounds_are_one_two_five_ticks() {
        assert_eq!(one_two_five_bounds(24.9), (20.0, 50.0));
        assert_eq!(one_two_five_bounds(0.3), (0.2, 0.5));
        assert_eq!(one_two_five_bounds(100.0), (100.0, 100.0));
    }

    #[test]
    fn percentile_ticks_read_as_nines() {
        assert_eq!(percentile_label(0), "0%");
        assert_eq!(percentile_label(2), "99%");
        assert_eq!(percentile_label(4), "99.99%");
    }
}
