//! The latency plot a run writes (`latency.svg`): latency against percentile, one line per
//! scenario.

use std::path::Path;

use hdrhistogram::Histogram;

/// Draws latency against percentile on the usual log scale of 1/(1-p), one line per scenario,
/// as HdrHistogram's own plotter does.
pub fn percentiles(path: &Path, series: &[(&str, Histogram<u64>)]) -> Result<(), String> {
    use plotters::prelude::*;

    let points: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, h)| {
            let pts = h
                .iter_quantiles(5)
                .filter(|v| v.quantile_iterated_to() < 1.0)
                .map(|v| {
                    let q = v.quantile_iterated_to();
                    (
                        (1.0 / (1.0 - q)).log10(),
                        h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
                    )
                })
                .collect();
            (*name, pts)
        })
        .collect();
    let xmax = points
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(2.0f64, f64::max)
        .ceil();
    let ymax = points
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(0.1f64, f64::max)
        * 1.1;

    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency by Percentile Distribution", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("Percentile")
        .y_desc("Latency (ms)")
        .x_labels(xmax as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, pts)) in points.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
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
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
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
        percentiles(&path, &[("ib_key_push", h)]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("ib_key_push"));
        assert!(svg.contains("99%"));
    }
}
