//! Line charts as inline SVG, for `report.html`: no script, no font or file fetched, so the page
//! draws the same offline, on a phone (the SVG scales to the width) and on paper.
//!
//! Each chart is a `<figure class="chart" data-chart=KIND [data-scenario=NAME]>`; each line a
//! `<polyline data-series=NAME data-points=N>`: what a reader of the DOM (the report's test)
//! counts.

use std::fmt::Write as _;

use super::esc;

/// Distinct colours, in order (Tableau 10): one per series, told apart in colour and in print.
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Axis {
    /// Linear from 0 (or the least value, if negative).
    Linear,
    /// Log10 of the value (values must be > 0; smaller ones are left out).
    Log,
    /// A percentile axis: x = log10(1 / (1 − q)), labelled 0%, 90%, 99%, 99.9%…
    Percentile,
}

/// One line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its name, in the legend and `data-series`.
    pub name: String,
    /// (x, y) points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Its colour (see [`PALETTE`]).
    pub colour: &'static str,
    /// Drawn dashed (a second measure of the same thing: service time, the other run).
    pub dashed: bool,
}

/// A chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// `data-chart`: what it shows (`throughput`, `latency-over-time`, `distribution`...).
    pub kind: &'static str,
    /// `data-scenario`, when it is one scenario's.
    pub scenario: Option<String>,
    /// Its caption.
    pub title: String,
    /// The x axis's label.
    pub x_label: &'static str,
    /// The y axis's label.
    pub y_label: &'static str,
    /// The x axis.
    pub x: Axis,
    /// The y axis.
    pub y: Axis,
    /// y values are µs: ticks read 100 µs, 1 ms, 2 s.
    pub y_micros: bool,
    /// The lines.
    pub series: Vec<Series>,
}

const W: f64 = 720.0;
const H: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 34.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 44.0;

/// A value in µs as a short label: `850 µs`, `1.2 ms`, `3 s`.
pub fn micros(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", short(us / 1e6))
    } else if us >= 1e3 {
        format!("{} ms", short(us / 1e3))
    } else {
        format!("{} µs", short(us))
    }
}

/// A number with at most 3 significant figures and no trailing zeros.
pub fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// `0%`, `90%`, `99%`, `99.9%`... for x = log10(1/(1-p)) = 0, 1, 2, 3...
pub fn percentile_label(x: f64) -> String {
    let k = x.round() as i32;
    if k <= 0 {
        return "0%".into();
    }
    // 100 * (1 - 10^-k) printed with k-2 decimals: avoids 99.99900000000001%.
    let decimals = (k - 2).max(0) as usize;
    format!("{:.*}%", decimals, 100.0 * (1.0 - 10f64.powi(-k)))
}

/// The axis's transform of a value; `None` when it has no place on the axis.
fn map(axis: Axis, v: f64) -> Option<f64> {
    match axis {
        Axis::Log => (v > 0.0 && v.is_finite()).then(|| v.log10()),
        Axis::Linear | Axis::Percentile => v.is_finite().then_some(v),
    }
}

/// A "nice" step for about `n` ticks over `range`.
fn nice_step(range: f64, n: f64) -> f64 {
    let raw = (range / n).max(1e-12);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// The axis's range (in transformed units) and its ticks (transformed position, label).
fn ticks(axis: Axis, lo: f64, hi: f64, micros_labels: bool) -> ((f64, f64), Vec<(f64, String)>) {
    let label = |v: f64| {
        if micros_labels {
            micros(v)
        } else {
            short(v)
        }
    };
    match axis {
        Axis::Linear => {
            let lo = lo.min(0.0);
            let hi = if hi > lo { hi } else { lo + 1.0 };
            let step = nice_step(hi - lo, 5.0);
            let top = (hi / step).ceil() * step;
            let bottom = (lo / step).floor() * step;
            let mut t = Vec::new();
            let mut v = bottom;
            while v <= top + step / 2.0 && t.len() < 20 {
                t.push((v, label(v)));
                v += step;
            }
            ((bottom, top), t)
        }
        Axis::Log => {
            let (lo, hi) = (lo.floor(), hi.ceil().max(lo.floor() + 1.0));
            let decades = (hi - lo) as i32;
            let mut t = Vec::new();
            for d in 0..=decades {
                let base = 10f64.powf(lo + f64::from(d));
                t.push((lo + f64::from(d), label(base)));
                if decades <= 2 && d < decades {
                    for m in [2.0, 5.0] {
                        t.push(((base * m).log10(), label(base * m)));
                    }
                }
            }
            ((lo, hi), t)
        }
        Axis::Percentile => {
            let hi = hi.ceil().max(2.0);
            let t = (0..=hi as i32)
                .map(|k| (f64::from(k), percentile_label(f64::from(k))))
                .collect();
            ((0.0, hi), t)
        }
    }
}

impl Chart {
    /// Points drawn, over every series.
    pub fn points(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    /// The chart as a `<figure>` of inline SVG with an HTML legend; a line saying so when there
    /// is nothing to draw (a `--raw` run has no interval logs).
    pub fn render(&self) -> String {
        if self.points() == 0 {
            return format!(
                "<figure class=\"chart\" data-chart=\"{}\" data-points=\"0\"><figcaption>{}\
                 </figcaption><p class=\"note\">nothing recorded to draw (no interval logs in \
                 this run)</p></figure>\n",
                self.kind,
                esc(&self.title)
            );
        }
        let mapped: Vec<Vec<(f64, f64)>> = self
            .series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .filter_map(|(x, y)| Some((map(self.x, *x)?, map(self.y, *y)?)))
                    .collect()
            })
            .collect();
        let all = || mapped.iter().flatten();
        let fold = |f: fn(&(f64, f64)) -> f64, min: bool| {
            all().map(f).fold(None, |acc: Option<f64>, v| {
                Some(acc.map_or(v, |a| if min { a.min(v) } else { a.max(v) }))
            })
        };
        let (xlo, xhi) = (
            fold(|p| p.0, true).unwrap_or(0.0),
            fold(|p| p.0, false).unwrap_or(1.0),
        );
        let (ylo, yhi) = (
            fold(|p| p.1, true).unwrap_or(0.0),
            fold(|p| p.1, false).unwrap_or(1.0),
        );
        let ((x0, x1), xt) = ticks(self.x, xlo.min(0.0), xhi, false);
        let ((y0, y1), yt) = ticks(self.y, ylo, yhi, self.y_micros);
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0).max(1e-12) * pw;
        let py = |y: f64| TOP + ph - (y - y0) / (y1 - y0).max(1e-12) * ph;

        let mut out = String::new();
        let scenario = self
            .scenario
            .as_deref()
            .map(|s| format!(" data-scenario=\"{}\"", esc(s)))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<figure class=\"chart\" data-chart=\"{}\"{scenario} data-points=\"{}\">\
             <figcaption>{}</figcaption>\
             <svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" \
             xmlns=\"http://www.w3.org/2000/svg\">",
            self.kind,
            self.points(),
            esc(&self.title),
            esc(&self.title)
        );
        // Grid and ticks.
        out.push_str("<g class=\"grid\">");
        for (v, l) in &yt {
            let y = py(*v);
            let _ = write!(
                out,
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
                 <text class=\"yt\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                esc(l)
            );
        }
        let every = xt.len().div_ceil(10).max(1);
        for (i, (v, l)) in xt.iter().enumerate() {
            let x = px(*v);
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{:.1}\"/>",
                TOP + ph
            );
            if i % every == 0 {
                let _ = write!(
                    out,
                    "<text class=\"xt\" x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                    TOP + ph + 16.0,
                    esc(l)
                );
            }
        }
        out.push_str("</g>");
        let _ = write!(
            out,
            "<rect class=\"frame\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\"/>\
             <text class=\"xl\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\
             <text class=\"yl\" transform=\"translate(14 {:.1}) rotate(-90)\">{}</text>",
            LEFT + pw / 2.0,
            H - 6.0,
            esc(self.x_label),
            TOP + ph / 2.0,
            esc(self.y_label)
        );
        for (s, pts) in self.series.iter().zip(&mapped) {
            let coords: Vec<String> = pts
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
                .collect();
            let dash = if s.dashed {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            let _ = write!(
                out,
                "<polyline data-series=\"{}\" data-points=\"{}\" points=\"{}\" stroke=\"{}\"{dash}>\
                 <title>{}</title></polyline>",
                esc(&s.name),
                pts.len(),
                coords.join(" "),
                s.colour,
                esc(&s.name)
            );
            if pts.len() == 1 {
                let (x, y) = pts[0];
                let _ = write!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>",
                    px(x),
                    py(y),
                    s.colour
                );
            }
        }
        out.push_str("</svg><ul class=\"legend\">");
        for s in &self.series {
            let _ = write!(
                out,
                "<li><span class=\"swatch{}\" style=\"border-color:{}\"></span>{}</li>",
                if s.dashed { " dashed" } else { "" },
                s.colour,
                esc(&s.name)
            );
        }
        out.push_str("</ul></figure>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_as_people_write_them() {
        assert_eq!(micros(850.0), "850 µs");
        assert_eq!(micros(1200.0), "1.2 ms");
        assert_eq!(micros(2_000_000.0), "2 s");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(1234.0), "1234");
    }

    #[test]
    fn a_log_axis_has_its_decades_and_leaves_out_zeros() {
        let ((lo, hi), t) = ticks(Axis::Log, 1.5, 4.2, true);
        assert_eq!((lo, hi), (1.0, 5.0));
        let labels: Vec<&str> = t.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["10 µs", "100 µs", "1 ms", "10 ms", "100 ms"]);
        assert_eq!(map(Axis::Log, 0.0), None);
    }

    #[test]
    fn a_chart_counts_and_marks_its_points() {
        let c = Chart {
            kind: "latency-over-time",
            scenario: Some("dsc_plus".into()),
            title: "dsc_plus <p99>".into(),
            x_label: "s",
            y_label: "latency",
            x: Axis::Linear,
            y: Axis::Log,
            y_micros: true,
            series: vec![Series {
                name: "p99".into(),
                points: vec![(0.5, 120.0), (1.5, 0.0), (2.5, 300.0)],
                colour: PALETTE[0],
                dashed: false,
            }],
        };
        let html = c.render();
        assert!(html.contains("data-scenario=\"dsc_plus\""), "{html}");
        assert!(
            html.contains("data-series=\"p99\" data-points=\"2\""),
            "{html}"
        );
        assert!(html.contains("dsc_plus &lt;p99&gt;"), "{html}");
    }
}
