//! The latency plot a run writes (`latency.svg`): latency against percentile, one line per
//! scenario, both axes on log scales, titled with what ran.

use std::path::Path;

use hdrhistogram::Histogram;

/// `#rrggbb` as plotters' colour (black when malformed).
fn rgb(hex: &str) -> plotters::style::RGBColor {
    let byte = |i: usize| {
        hex.get(i..i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0)
    };
    plotters::style::RGBColor(byte(1), byte(3), byte(5))
}

/// Draws latency against percentile on the usual log scale of 1/(1-p), one line per scenario,
/// as HdrHistogram's own plotter does, with latency on a log scale too (a p50 of 100 µs and a
/// max of 2 s both readable), in distinct colours ([`crate::html::chart::PALETTE`]), under
/// `title` (what ran).
pub fn percentiles(
    path: &Path,
    title: &str,
    series: &[(&str, Histogram<u64>)],
) -> Result<(), String> {
    use plotters::prelude::*;

    let points: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, h)| {
            let pts = crate::html::distribution(h)
                .into_iter()
                .map(|(x, us)| (x, (us / 1000.0).max(0.001)))
                .collect();
            (*name, pts)
        })
        .collect();
    let xmax = points
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(2.0f64, f64::max)
        .ceil();
    let ys = || points.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y));
    let ymax = ys().fold(0.01f64, f64::max) * 1.5;
    let ymin = (ys().fold(f64::INFINITY, f64::min).min(ymax / 10.0) / 1.5).max(0.001);

    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Latency by percentile: {title}"),
            ("sans-serif", 17),
        )
        .margin(16)
        .margin_right(48)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..xmax, (ymin..ymax).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("Percentile")
        .y_desc("Latency (ms, log scale)")
        .x_labels(xmax as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| crate::html::chart::short(*y))
        .draw()
        .map_err(|e| e.to_string())?;
    let palette = crate::html::chart::PALETTE;
    for (i, (name, pts)) in points.into_iter().enumerate() {
        let color = rgb(palette[i % palette.len()]);
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

pub use crate::html::chart::percentile_label;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_are_exact() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(5.0), "99.999%");
    }

    #[test]
    fn svg_plot_is_written() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for i in 1..=500u64 {
            h.record(100 + i).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let mut g = Histogram::<u64>::new(3).unwrap();
        for i in 1..=500u64 {
            g.record(10_000 + 100 * i).unwrap();
        }
        percentiles(
            &path,
            "closed loop, 2 s",
            &[("ib_key_push", h), ("dsc_plus", g)],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("ib_key_push"));
        assert!(svg.contains("99%"));
        assert!(
            svg.contains("Latency by percentile: closed loop, 2 s"),
            "a title"
        );
        assert!(svg.contains("log scale"), "a log axis");
        // Two distinct colours, from the palette.
        let palette = crate::html::chart::PALETTE;
        for c in &palette[..2] {
            assert!(svg.to_lowercase().contains(&c.to_lowercase()[1..]), "{c}");
        }
    }
}
