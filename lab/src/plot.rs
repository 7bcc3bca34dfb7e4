//! SVG plots of latency percentile distributions, HdrHistogram style: one line per
//! variant, x = percentile on a logarithmic `1/(1-p)` axis (0%, 90%, 99%, 99.9%, …),
//! y = latency on a logarithmic axis (tails span orders of magnitude).
//!
//! Drawn with plotters' SVG backend, without a font library: the backend writes text as
//! plain `<text>` elements that the browser renders, and plotters' built-in font metrics
//! (a rough estimate, enough to lay out the labels) need no system fonts.
//!
//! Pure: histograms in, SVG text out.

use anyhow::{anyhow, Result};
use common::units::fmt_ns;
use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Width and height of a plot, pixels.
pub const SIZE: (u32, u32) = (1100, 650);
/// Quantile iteration steps per halving of the distance to 100% (as HdrHistogram's
/// percentile distribution output uses).
const TICKS_PER_HALF: u32 = 5;
/// The axis reaches at least 99.999% (x = 5) and at most 99.99999% (x = 7), else as
/// far as the largest series resolves.
const X_MIN_EXTENT: f64 = 5.0;
const X_MAX_EXTENT: f64 = 7.0;

/// Line colours (Tableau 20), cycled.
const PALETTE: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
    RGBColor(247, 182, 210),
    RGBColor(199, 199, 199),
    RGBColor(219, 219, 141),
    RGBColor(158, 218, 229),
];

/// One line of a plot.
pub struct Series<'a> {
    /// Legend text.
    pub label: String,
    /// Latencies in nanoseconds.
    pub hist: &'a Histogram<u64>,
}

/// `1/(1-q)` on a log10 scale: 0 at 0%, 1 at 90%, 2 at 99%, … capped at the finest
/// percentile `count` samples resolve (`1 - 1/count`).
fn x_of(q: f64, count: u64) -> f64 {
    let cap = (count.max(1) as f64).log10();
    if q >= 1.0 {
        return cap;
    }
    (-(1.0 - q).log10()).clamp(0.0, cap)
}

/// The percentile at axis position `k` (an integer): `0%`, `90%`, `99%`, `99.9%`, …
pub fn percentile_label(k: u32) -> String {
    match k {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        _ => format!("99.{}%", "9".repeat(k as usize - 2)),
    }
}

/// Latency labels at 1, 2 and 5 times each power of ten within `lo..=hi` (a log axis
/// labelled only at powers of ten says little over two decades).
fn one_two_five(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powi(lo.log10().floor() as i32);
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if (lo..=hi).contains(&v) {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// The points of one series: (axis x, latency ns).
fn points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let n = h.len();
    let mut pts: Vec<(f64, f64)> = Vec::new();
    if n == 0 {
        return pts;
    }
    pts.push((0.0, h.min().max(1) as f64));
    for v in h.iter_quantiles(TICKS_PER_HALF) {
        let x = x_of(v.quantile_iterated_to(), n);
        let y = h.highest_equivalent(v.value_iterated_to()).max(1) as f64;
        match pts.last_mut() {
            Some(last) if (last.0 - x).abs() < 1e-12 => last.1 = last.1.max(y),
            _ => pts.push((x, y)),
        }
    }
    let last = (x_of(1.0, n), h.max().max(1) as f64);
    if pts.last().is_none_or(|p| p.0 < last.0) {
        pts.push(last);
    }
    pts
}

/// An SVG with one line per series, titled `title`. Series without samples are left
/// out (and so are not in the legend).
pub fn percentile_svg(title: &str, series: &[Series]) -> Result<String> {
    let lines: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .filter(|s| !s.hist.is_empty())
        .map(|s| (s.label.as_str(), points(s.hist)))
        .collect();
    let x_end = lines
        .iter()
        .flat_map(|(_, p)| p.last().map(|p| p.0))
        .fold(X_MIN_EXTENT, f64::max)
        .min(X_MAX_EXTENT);
    let (mut y_lo, mut y_hi) = (f64::MAX, 1.0f64);
    for (_, pts) in &lines {
        for (_, y) in pts {
            y_lo = y_lo.min(*y);
            y_hi = y_hi.max(*y);
        }
    }
    if lines.is_empty() {
        (y_lo, y_hi) = (10.0, 1e6);
    }
    let (y_lo, y_hi) = ((y_lo * 0.8).max(1.0), y_hi * 1.25);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let err = |e: DrawingAreaErrorKind<_>| anyhow!("cannot draw {title}: {e}");
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .margin_right(48)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(
                0.0..x_end,
                (y_lo..y_hi)
                    .log_scale()
                    .with_key_points(one_two_five(y_lo, y_hi)),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(x_end.floor() as usize + 1)
            .x_label_formatter(&|x| {
                let k = x.round();
                if (x - k).abs() < 1e-9 && k >= 0.0 {
                    percentile_label(k as u32)
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| fmt_ns(y.round() as u64))
            .x_desc("percentile (log scale of 1/(1-p))")
            .y_desc("latency (log scale)")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        for (i, (label, pts)) in lines.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(err)?
                .label(*label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        if !lines.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::latency::{fixed_histogram, HIGHEST_NS};

    const SERIES_LINE: &str = "stroke-width=\"2\" points=";

    /// The contents of every `<text>` element, trimmed.
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim())
            })
            .collect()
    }

    fn hist(base: u64, n: u64) -> Histogram<u64> {
        let mut h = fixed_histogram(HIGHEST_NS);
        for i in 0..n {
            h.record(base + i % 1000).unwrap();
        }
        h.record(base * 50).unwrap();
        h
    }

    #[test]
    fn latency_labels_one_two_five() {
        assert_eq!(one_two_five(150.0, 2500.0), [200.0, 500.0, 1000.0, 2000.0]);
    }

    #[test]
    fn labels_on_the_percentile_axis() {
        let l: Vec<String> = (0..6).map(percentile_label).collect();
        assert_eq!(l, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        assert_eq!(x_of(0.0, 100), 0.0);
        assert!((x_of(0.99, 1_000_000) - 2.0).abs() < 1e-9);
        assert_eq!(x_of(1.0, 1000), 3.0);
        assert_eq!(
            x_of(0.99999, 1000),
            3.0,
            "capped at what 1000 samples resolve"
        );
    }

    #[test]
    fn one_series_per_variant() {
        let (a, b, c, empty) = (
            hist(100, 5000),
            hist(300, 5000),
            hist(900, 20_000),
            fixed_histogram(HIGHEST_NS),
        );
        let series = [
            Series {
                label: "engine system + heap, feed system".into(),
                hist: &a,
            },
            Series {
                label: "engine mimalloc + arena, feed jemalloc".into(),
                hist: &b,
            },
            Series {
                label: "engine tcmalloc + pool, feed jemalloc".into(),
                hist: &c,
            },
            Series {
                label: "no data".into(),
                hist: &empty,
            },
        ];
        let svg = percentile_svg("e2e", &series).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.trim_end().ends_with("</svg>"));
        // Each series is one 2-pixel polyline, and one more in its legend entry (the
        // axes and ticks are 1-pixel lines).
        assert_eq!(svg.matches(SERIES_LINE).count(), 2 * 3, "{svg}");
        let texts = texts(&svg);
        for s in &series[..3] {
            let n = texts.iter().filter(|t| **t == s.label).count();
            assert_eq!(n, 1, "{}: {texts:?}", s.label);
        }
        assert!(!svg.contains("no data"));
        for label in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "e2e"] {
            assert!(texts.contains(&label), "{label}: {texts:?}");
        }
        // Text is plain SVG text, rendered by the viewer: no font needed here.
        assert!(svg.contains("<text"));
    }

    #[test]
    fn no_data_still_draws_axes() {
        let empty = fixed_histogram(HIGHEST_NS);
        let svg = percentile_svg(
            "hop",
            &[Series {
                label: "x".into(),
                hist: &empty,
            }],
        )
        .unwrap();
        assert_eq!(svg.matches(SERIES_LINE).count(), 0);
        assert!(svg.contains("<polyline"), "axes are drawn");
        assert!(texts(&svg).contains(&"hop"));
    }
}
