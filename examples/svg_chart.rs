//! A small hand-written SVG writer: a stacked bar chart of values by day and series.

use std::fmt::Write as _;

const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A stacked bar chart: one bar per day (`values[series][day]`, non-negative integers), one
/// colour per series, a y axis labelled with `label(value)`.
pub(crate) fn stacked_bars(
    title: &str,
    series: &[&str],
    values: &[Vec<i64>],
    label: impl Fn(i64) -> String,
) -> String {
    let days = values.first().map_or(0, Vec::len);
    let (width, height, left, top, bottom) = (900_i64, 420_i64, 90_i64, 40_i64, 60_i64);
    let plot_w = width - left - 160;
    let plot_h = height - top - bottom;
    let totals: Vec<i64> = (0..days)
        .map(|d| values.iter().map(|s| s[d].max(0)).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let day_count = i64::try_from(days.max(1)).unwrap_or(1);
    let slot = plot_w / day_count;
    let bar = (slot * 3 / 4).max(1);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="24" font-size="16">{}</text>"#,
        escape(title)
    );
    for tick in 0..=4_i64 {
        let v = max * tick / 4;
        let y = top + plot_h - plot_h * tick / 4;
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            left + plot_w,
            left - 6,
            y + 4,
            escape(&label(v))
        );
    }
    for d in 0..days {
        let x = left + slot * i64::try_from(d).unwrap_or(0) + (slot - bar) / 2;
        let mut y = top + plot_h;
        for (s, row) in values.iter().enumerate() {
            let h = plot_h * row[d].max(0) / max;
            y -= h;
            let _ = writeln!(
                svg,
                r#"<rect x="{x}" y="{y}" width="{bar}" height="{h}" fill="{}"><title>{} day {}: {}</title></rect>"#,
                PALETTE[s % PALETTE.len()],
                escape(series[s]),
                d + 1,
                escape(&label(row[d]))
            );
        }
        if d % 5 == 0 {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                x + bar / 2,
                top + plot_h + 16,
                d + 1
            );
        }
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">day of month</text>"#,
        left + plot_w / 2,
        top + plot_h + 36
    );
    for (s, name) in series.iter().enumerate() {
        let y = top + 20 * i64::try_from(s).unwrap_or(0);
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            left + plot_w + 20,
            y,
            PALETTE[s % PALETTE.len()],
            left + plot_w + 38,
            y + 11,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}
