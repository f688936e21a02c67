//! Inline SVG charts for the HTML report, drawn in Rust (no script, no external file): a bar
//! chart over time buckets and a horizontal top-N bar chart. Every chart is
//! `<svg class="chart" data-series=NAME data-points=N>` with one `class="point"` element per
//! data point carrying `data-value` and a `<title>` tooltip, so a browser test can find them.
//! All text that reaches the SVG is escaped with [`esc`]. Called by `report::html`.

use std::fmt::Write as _;

/// Escapes text for HTML/SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

const W: f64 = 720.0;
const H: f64 = 180.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;

/// A bar per time bucket. `labels[i]` names bucket `i` (its start time).
pub fn time_bars(series: &str, values: &[u32], labels: &[String], color: &str) -> String {
    let n = values.len();
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="chart" data-series="{}" data-points="{n}" viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{} over time">"#,
        esc(series),
        esc(series)
    );
    let plot_w = W - LEFT - 4.0;
    let plot_h = H - BOTTOM - 8.0;
    // Axis and the max gridline.
    let _ = write!(
        o,
        r##"<line x1="{LEFT}" y1="8" x2="{LEFT}" y2="{y0}" stroke="#888"/><line x1="{LEFT}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#888"/><text x="{tx}" y="14" font-size="10" text-anchor="end">{max}</text><text x="{tx}" y="{y0}" font-size="10" text-anchor="end">0</text>"##,
        y0 = 8.0 + plot_h,
        x1 = LEFT + plot_w,
        tx = LEFT - 4.0,
    );
    let bw = if n > 0 { plot_w / n as f64 } else { plot_w };
    for (i, v) in values.iter().enumerate() {
        let h = f64::from(*v) / f64::from(max) * plot_h;
        let x = LEFT + i as f64 * bw;
        let label = labels.get(i).map_or("", String::as_str);
        let _ = write!(
            o,
            r#"<rect class="point" data-value="{v}" x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="{color}"><title>{} : {v}</title></rect>"#,
            esc(label),
            y = 8.0 + plot_h - h,
            w = (bw - 0.5).max(0.5),
        );
    }
    if let (Some(first), Some(last)) = (labels.first(), labels.last()) {
        let _ = write!(
            o,
            r#"<text x="{LEFT}" y="{H}" font-size="10">{}</text><text x="{x}" y="{H}" font-size="10" text-anchor="end">{}</text>"#,
            esc(first),
            esc(last),
            x = W - 4.0
        );
    }
    o.push_str("</svg>");
    o
}

/// Horizontal bars, largest first: `(name, value)`.
pub fn top_bars(series: &str, items: &[(String, u64)], color: &str) -> String {
    let n = items.len();
    let row = 18.0;
    let h = (n.max(1) as f64) * row + 4.0;
    let label_w = 230.0;
    let max = items.iter().map(|i| i.1).max().unwrap_or(0).max(1);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="chart" data-series="{}" data-points="{n}" viewBox="0 0 {W} {h}" width="100%" role="img" aria-label="{}">"#,
        esc(series),
        esc(series)
    );
    for (i, (name, v)) in items.iter().enumerate() {
        let y = 2.0 + i as f64 * row;
        let w = (*v as f64 / max as f64) * (W - label_w - 60.0);
        let _ = write!(
            o,
            r#"<text x="{tx}" y="{ty:.1}" font-size="11" text-anchor="end">{name}</text><rect class="point" data-value="{v}" x="{label_w}" y="{y:.1}" width="{w:.2}" height="{bh}" fill="{color}"><title>{name}: {v}</title></rect><text x="{vx:.2}" y="{ty:.1}" font-size="11">{v}</text>"#,
            tx = label_w - 6.0,
            ty = y + 12.0,
            bh = row - 4.0,
            vx = label_w + w + 4.0,
            name = esc(name),
        );
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_mark_points_and_escape() {
        let s = time_bars(
            "rejects",
            &[1, 0, 3],
            &["a".into(), "b".into(), "c".into()],
            "#c33",
        );
        assert!(s.starts_with(r#"<svg class="chart" data-series="rejects" data-points="3""#));
        assert_eq!(s.matches(r#"class="point""#).count(), 3);
        let t = top_bars("x", &[("<b>&".into(), 2)], "#33c");
        assert!(t.contains("&lt;b&gt;&amp;") && !t.contains("<b>"));
        assert_eq!(esc("\"'\u{1b}"), "&quot;&#39;?");
    }
}
