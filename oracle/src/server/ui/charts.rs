//! Charts as SVG, drawn on the server (no script, no library): line charts over time and
//! horizontal bars, and the regions' tile map. Every drawn number is also in a `data-`
//! attribute, so a test (or a screen reader's user) reads the same numbers the API returns.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::esc;

/// One line: a name, a CSS colour, and points (x, y).
pub struct Series {
    pub name: &'static str,
    pub colour: &'static str,
    pub points: Vec<(f64, f64)>,
}

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
/// Room above the plot for the unit and the legend.
const TOP: f64 = 26.0;

fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Lines over a common x axis (`x_label` formats an x value), y in `unit`.
pub fn lines(id: &str, series: &[Series], unit: &str, x_label: impl Fn(f64) -> String) -> String {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0.0f64, f64::MIN);
    for &(x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return format!(r#"<p class="note" id="{id}">No data yet.</p>"#);
    }
    let single_x = x1 == x0;
    if single_x {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - 12.0);
    let py = |y: f64| TOP + (y1 - y) / (y1 - y0) * (H - BOTTOM - TOP);
    let mut svg = format!(r#"<svg id="{id}" viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#, esc(unit));
    for i in 0..=4 {
        let y = y0 + (y1 - y0) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#e3e7e3"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#5d6a63">{}</text>"##,
            W - 12.0,
            LEFT - 6.0,
            py(y) + 4.0,
            esc(&format!("{:.1}", y)),
            py = py(y),
        );
    }
    let ticks: &[f64] = if single_x { &[x0] } else { &[x0, (x0 + x1) / 2.0, x1] };
    for &x in ticks {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle" fill="#5d6a63">{}</text>"##,
            px(x),
            H - 8.0,
            esc(&x_label(x))
        );
    }
    let _ = write!(svg, r##"<text x="4" y="12" font-size="11" fill="#5d6a63">{}</text>"##, esc(unit));
    for (i, s) in series.iter().enumerate() {
        let values: Vec<String> = s.points.iter().map(|(_, y)| number(*y)).collect();
        let xs: Vec<String> = s.points.iter().map(|(x, _)| number(*x)).collect();
        let path: Vec<String> = s.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
        let _ = write!(
            svg,
            r#"<polyline data-series="{}" data-x="[{}]" data-values="[{}]" points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            s.name,
            xs.join(","),
            values.join(","),
            path.join(" "),
            s.colour
        );
        // Markers, on short series: one of a single point (an event of one interval) is still
        // seen; a day of readings is a line.
        for &(x, y) in s.points.iter().filter(|_| s.points.len() <= 100) {
            let _ = write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#, px(x), py(y), s.colour);
        }
        let _ = write!(
            svg,
            r#"<rect x="{}" y="4" width="10" height="10" fill="{}"/><text x="{}" y="13" font-size="11">{}</text>"#,
            LEFT + 40.0 + 130.0 * i as f64,
            s.colour,
            LEFT + 54.0 + 130.0 * i as f64,
            s.name
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars, one per label, in `unit`.
pub fn bars(id: &str, bars: &[(String, f64)], unit: &str, show: impl Fn(f64) -> String) -> String {
    if bars.is_empty() {
        return format!(r#"<p class="note" id="{id}">Nothing yet.</p>"#);
    }
    let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let row = 26.0;
    let height = row * bars.len() as f64 + 8.0;
    let mut svg = format!(r#"<svg id="{id}" viewBox="0 0 {W} {height}" role="img" aria-label="{}">"#, esc(unit));
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let width = (value.max(0.0) / max * (W - 320.0)).max(1.0);
        let _ = write!(
            svg,
            r##"<g data-label="{l}" data-value="{v}"><text x="150" y="{ty}" font-size="12" text-anchor="end">{l}</text><rect x="158" y="{y}" width="{width:.1}" height="18" rx="3" fill="#2f8f6b"/><text x="{tx:.1}" y="{ty}" font-size="12">{s}</text></g>"##,
            l = esc(label),
            v = number(*value),
            ty = y + 13.0,
            tx = 164.0 + width,
            s = esc(&show(*value)),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A region on the tile map.
#[derive(serde::Deserialize)]
pub struct Tile {
    pub code: String,
    pub name: String,
    pub col: u32,
    pub row: u32,
}

#[derive(serde::Deserialize)]
pub struct TileMap {
    pub name: String,
    pub tiles: Vec<Tile>,
}

/// The regions as tiles, each with its devices online of registered: shaded by the share
/// online, empty where none is registered.
pub fn tile_map(id: &str, map: &TileMap, counts: &BTreeMap<String, (u64, u64)>) -> String {
    let size = 92.0;
    let cols = map.tiles.iter().map(|t| t.col).max().unwrap_or(0) + 1;
    let rows = map.tiles.iter().map(|t| t.row).max().unwrap_or(0) + 1;
    let (w, h) = (f64::from(cols) * size + 8.0, f64::from(rows) * size + 8.0);
    let mut svg = format!(r#"<svg id="{id}" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#, esc(&map.name));
    for tile in &map.tiles {
        let (online, devices) = counts.get(&tile.code).copied().unwrap_or((0, 0));
        let share = if devices > 0 { online as f64 / devices as f64 } else { 0.0 };
        let fill = if devices == 0 { "#eef1ee".to_string() } else { format!("rgba(15,110,79,{:.2})", 0.25 + 0.75 * share) };
        let (x, y) = (4.0 + f64::from(tile.col) * size, 4.0 + f64::from(tile.row) * size);
        let text = if devices == 0 { "#5d6a63" } else { "#fff" };
        let _ = write!(
            svg,
            r##"<g data-region="{code}" data-online="{online}" data-devices="{devices}"><title>{name}: {online} of {devices} online</title><rect x="{x}" y="{y}" width="{s}" height="{s}" rx="8" fill="{fill}" stroke="#fff" stroke-width="3"/><text x="{cx}" y="{ty1}" font-size="13" font-weight="700" text-anchor="middle" fill="{text}">{short}</text><text x="{cx}" y="{ty2}" font-size="12" text-anchor="middle" fill="{text}">{online}/{devices}</text></g>"##,
            code = esc(&tile.code),
            name = esc(&tile.name),
            s = size - 4.0,
            cx = x + size / 2.0 - 2.0,
            ty1 = y + size / 2.0 - 4.0,
            ty2 = y + size / 2.0 + 14.0,
            short = esc(tile.code.rsplit('-').next().unwrap_or(&tile.code)),
        );
    }
    svg.push_str("</svg>");
    svg
}
