//! SVG plots of result tables (`afdsim plot`, `afdsim report`), drawn with plotters' SVG
//! backend: text is written as SVG `<text>`, so no font files are read (plotters' "naive"
//! text metrics size the layout), and any SVG viewer renders it with its own fonts.
//!
//! Invariant: a plot is a pure function of the table and the options (no clock, no hash-map
//! order): the same CSV gives the same SVG bytes.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use std::collections::BTreeMap;

/// A CSV table in memory: header and rows of cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// The file line each row starts on (the header is line 1), so an error can name the
    /// row in the file the user reads, also after `filter`.
    pub lines: Vec<u64>,
}

impl Table {
    pub fn parse(text: &str) -> Result<Table, String> {
        let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let header = r
            .headers()
            .map_err(|e| format!("not CSV: {e}"))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for rec in r.records() {
            let rec = rec.map_err(|e| format!("not CSV: {e}"))?;
            lines.push(rec.position().map_or(0, |p| p.line()));
            rows.push(rec.iter().map(str::to_string).collect());
        }
        Ok(Table {
            header,
            rows,
            lines,
        })
    }

    /// Where row `i` is, for messages: `line 7`, or `line 7 (point 0123abcd...)` in a merged
    /// sweep, whose `point` column names the point.
    pub fn row_name(&self, i: usize) -> String {
        let line = self.lines.get(i).copied().unwrap_or(0);
        match self.column("point").and_then(|c| self.rows[i].get(c)) {
            Some(id) if !id.is_empty() => format!("line {line} (point {id})"),
            _ => format!("line {line}"),
        }
    }

    /// A numeric cell that a plot can place: a finite number, or an error naming the column,
    /// the row and what is allowed (`inf` and `NaN` parse as f64, but no axis holds them).
    pub fn number(&self, i: usize, c: usize) -> Result<f64, String> {
        let cell = &self.rows[i][c];
        let name = &self.header[c];
        match cell.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(format!(
                "`{name}` at {} is `{cell}`: values to plot must be finite numbers",
                self.row_name(i)
            )),
            Err(_) => Err(format!(
                "`{name}` at {} holds `{cell}`, not a number: values to plot must be finite numbers",
                self.row_name(i)
            )),
        }
    }

    /// Checks that every value of `col` is > 0, as a log axis (`flag`) needs.
    pub fn check_positive(&self, col: &str, flag: &str) -> Result<(), String> {
        let c = self.column(col).ok_or_else(|| self.no_column(col))?;
        for i in 0..self.rows.len() {
            let v = self.number(i, c)?;
            if v <= 0.0 {
                return Err(format!(
                    "{flag} needs every value of `{col}` > 0; {} holds `{}`",
                    self.row_name(i),
                    self.rows[i][c]
                ));
            }
        }
        Ok(())
    }

    /// The scenario overrides that hold one value over the whole table: the parameter
    /// columns (swept keys) that do not vary, as `key = value`, leaving out `except` (the
    /// columns the plot shows). A sweep that fixes `afd.layers = 12` changes what every
    /// TPOT means, so a figure names it.
    pub fn fixed_overrides(&self, except: &[&str]) -> Vec<String> {
        if self.rows.is_empty() {
            return Vec::new();
        }
        self.param_columns()
            .into_iter()
            .filter(|c| !except.contains(&c.as_str()) && !self.varies(c))
            .map(|c| {
                let v = &self.rows[0][self.column(&c).expect("a param column")];
                format!("{c} = {v}")
            })
            .collect()
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The columns among `names` that the table lacks.
    pub fn missing<'a>(&self, names: &[&'a str]) -> Vec<&'a str> {
        names
            .iter()
            .copied()
            .filter(|n| self.column(n).is_none())
            .collect()
    }

    /// Keeps the rows whose `col` cell is `value` (numerically equal if both are numbers).
    pub fn filter(&self, col: &str, value: &str) -> Result<Table, String> {
        let c = self.column(col).ok_or_else(|| self.no_column(col))?;
        let eq = |cell: &str| match (cell.parse::<f64>(), value.parse::<f64>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => cell == value,
        };
        let keep: Vec<usize> = (0..self.rows.len())
            .filter(|&i| eq(&self.rows[i][c]))
            .collect();
        Ok(Table {
            header: self.header.clone(),
            rows: keep.iter().map(|&i| self.rows[i].clone()).collect(),
            lines: keep.iter().map(|&i| self.lines[i]).collect(),
        })
    }

    pub fn no_column(&self, name: &str) -> String {
        format!(
            "no column `{name}`; the table has: {}",
            self.header.join(", ")
        )
    }

    /// The parameter columns of a merged sweep: those between `index` and `seed`.
    pub fn param_columns(&self) -> Vec<String> {
        match (self.column("index"), self.column("seed")) {
            (Some(i), Some(s)) if i < s => self.header[i + 1..s].to_vec(),
            _ => Vec::new(),
        }
    }

    /// Whether a column takes more than one value.
    pub fn varies(&self, col: &str) -> bool {
        self.column(col)
            .is_some_and(|c| self.rows.iter().any(|r| r[c] != self.rows[0][c]))
    }
}

/// How the points of a series are drawn.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Lines through the points, in x order, with a marker at each point.
    Lines,
    /// Markers only.
    Scatter,
}

/// One named set of (x, y) points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub mark: Mark,
}

/// Everything a plot shows.
#[derive(Clone, Debug)]
pub struct Plot {
    pub title: String,
    /// Settings that hold for every point and change what the plot means (`afd.layers =
    /// 12`), shown under the title; empty: no subtitle.
    pub subtitle: Vec<String>,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

/// Width and height of every plot, pixels.
pub const SIZE: (u32, u32) = (900, 560);

/// The most decades a log axis spans: the ratio of its ends, padding included, must stay
/// a finite f64 (plotters' log ticks loop forever on an infinite ratio).
pub const MAX_LOG_DECADES: f64 = 280.0;

/// One axis as drawn: its range, in units of `10^exp` of the values (so ticks are computed
/// on moderate numbers whatever the data's magnitude).
#[derive(Copy, Clone, Debug, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    exp: i32,
}

/// `v / 10^exp`, in steps that neither overflow nor underflow for any finite `v` and the
/// exponents [`axis`] picks (|exp| <= 330).
fn unscale(mut v: f64, exp: i32) -> f64 {
    let mut e = exp;
    while e != 0 {
        let step = e.clamp(-300, 300);
        v /= 10f64.powi(step);
        e -= step;
    }
    v
}

/// The drawn range of an axis holding `values` (finite; > 0 when `log`): a little beyond
/// the extreme points, and in a power of ten of the values' unit when they are so large or
/// so small that the range or plotters' tick arithmetic would overflow (±1e308) or lose
/// its precision (subnormals). `name` is `x` or `y`, for errors.
fn axis(values: &[f64], log: bool, name: &str) -> Result<Axis, String> {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    if log {
        let (lo_e, hi_e) = (lo.log10(), hi.log10());
        if hi_e - lo_e > MAX_LOG_DECADES {
            return Err(format!(
                "the {name} values span {:.0} decades ({} to {}): more than a log axis holds ({MAX_LOG_DECADES})",
                hi_e - lo_e,
                number(lo),
                number(hi)
            ));
        }
        // Centre the decades on 1 when an end is far from it.
        let exp = if lo_e < -100.0 || hi_e > 100.0 {
            ((lo_e + hi_e) / 2.0).round() as i32
        } else {
            0
        };
        let (lo, hi) = (unscale(lo, exp), unscale(hi, exp));
        let (lo, hi) = if lo == hi {
            (lo / 2.0, hi * 2.0)
        } else {
            (lo, hi)
        };
        // A little room beyond the extreme points, in ratio.
        let pad = (hi / lo).powf(0.04);
        // plotters' log ticks start at the first power of ten inside the range: start
        // the axis at one, or the values below it would have no tick.
        // (A minimum that is a power of ten is its own tick.)
        let decade = 10f64.powf(lo.log10().floor());
        let start = if (decade - lo).abs() <= lo * 1e-9 {
            lo / pad
        } else {
            decade
        };
        Ok(Axis {
            lo: start,
            hi: hi * pad,
            exp,
        })
    } else {
        // The largest magnitude to about 1..10 when it is beyond 1e100 either way: the
        // span (up to twice the magnitude), its padding and the tick steps stay finite.
        let m = lo.abs().max(hi.abs());
        let exp = if m > 1e100 || (m > 0.0 && m < 1e-100) {
            m.log10().floor() as i32
        } else {
            0
        };
        let (lo, hi) = (unscale(lo, exp), unscale(hi, exp));
        let (lo, hi) = if lo == hi {
            (lo - lo.abs().max(1.0) * 0.5, hi + hi.abs().max(1.0) * 0.5)
        } else {
            (lo, hi)
        };
        let pad = (hi - lo) * 0.05;
        // Start a positive quantity's axis at 0 when that costs little room.
        let lo = if lo >= 0.0 && lo < (hi - lo) * 0.5 {
            0.0
        } else {
            lo - pad
        };
        Ok(Axis {
            lo,
            hi: hi + pad,
            exp,
        })
    }
}

/// An axis label with the power of ten its values are drawn in: `makespan (µs)`, 308 ->
/// `makespan (×1e308 µs)`.
fn scaled_label(label: &str, exp: i32) -> String {
    if exp == 0 {
        return label.to_string();
    }
    match label.strip_suffix(')').and_then(|l| l.rsplit_once(" (")) {
        Some((name, unit)) => format!("{name} (×1e{exp} {unit})"),
        None => format!("{label} (×1e{exp})"),
    }
}

/// Renders a plot as SVG text. Every value must be finite (and > 0 on a log axis): the
/// table's rows are checked with their lines named before a plot is built
/// ([`series_of`], [`Table::check_positive`]); this checks again so no input can reach
/// plotters' tick loops, which spin forever on infinite ranges.
pub fn render_svg(plot: &Plot) -> Result<String, String> {
    let pts: Vec<(f64, f64)> = plot
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    if pts.is_empty() {
        return Err("nothing to plot: no rows with numbers in both columns".into());
    }
    if let Some(p) = pts.iter().find(|p| !p.0.is_finite() || !p.1.is_finite()) {
        return Err(format!(
            "the point ({}, {}) is not finite: values to plot must be finite numbers",
            p.0, p.1
        ));
    }
    if plot.log_x && pts.iter().any(|p| p.0 <= 0.0) {
        return Err("--log-x needs every x > 0".into());
    }
    if plot.log_y && pts.iter().any(|p| p.1 <= 0.0) {
        return Err("--log-y needs every y > 0".into());
    }
    let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
    let x = axis(&xs, plot.log_x, "x")?;
    let y = axis(&ys, plot.log_y, "y")?;
    // The plot in the axes' units.
    let scaled = Plot {
        x_label: scaled_label(&plot.x_label, x.exp),
        y_label: scaled_label(&plot.y_label, y.exp),
        series: plot
            .series
            .iter()
            .map(|s| Series {
                points: s
                    .points
                    .iter()
                    .map(|&(a, b)| (unscale(a, x.exp), unscale(b, y.exp)))
                    .collect(),
                ..s.clone()
            })
            .collect(),
        ..plot.clone()
    };
    let plot = &scaled;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let r = match (plot.log_x, plot.log_y) {
            (false, false) => draw(&root, plot, x.lo..x.hi, y.lo..y.hi),
            (true, false) => draw(&root, plot, (x.lo..x.hi).log_scale(), y.lo..y.hi),
            (false, true) => draw(&root, plot, x.lo..x.hi, (y.lo..y.hi).log_scale()),
            (true, true) => draw(
                &root,
                plot,
                (x.lo..x.hi).log_scale(),
                (y.lo..y.hi).log_scale(),
            ),
        };
        r.map_err(|e| format!("drawing failed: {e}"))?;
        root.present().map_err(|e| format!("drawing failed: {e}"))?;
    }
    Ok(svg)
}

/// The subtitle's entries in lines of at most about `width` characters (plotters draws
/// each text on one line).
fn wrap(entries: &[String], width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for e in entries {
        match lines.last_mut() {
            Some(l) if l.len() + 2 + e.len() <= width => {
                l.push_str(", ");
                l.push_str(e);
            }
            _ => lines.push(e.clone()),
        }
    }
    lines
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw<'a, XR, YR>(
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    plot: &Plot,
    x: XR,
    y: YR,
) -> DrawResult
where
    XR: AsRangedCoord<Value = f64>,
    YR: AsRangedCoord<Value = f64>,
    XR::CoordDescType: ValueFormatter<f64>,
    YR::CoordDescType: ValueFormatter<f64>,
{
    root.fill(&WHITE)?;
    let mut area = root.titled(&plot.title, ("sans-serif", 22))?;
    for line in wrap(&plot.subtitle, 95) {
        area = area.titled(&line, ("sans-serif", 15).into_font().color(&BLACK.mix(0.7)))?;
    }
    // Few integer x values (micro-batches, GPUs): one tick per integer, no 0.5 steps.
    let xs: Vec<f64> = plot
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let x_max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let x_ticks = if xs.iter().all(|x| x.fract() == 0.0) && (0.0..=12.0).contains(&x_max) {
        x_max as usize + 1
    } else {
        12
    };
    let mut chart = ChartBuilder::on(&area)
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(84)
        .build_cartesian_2d(x, y)?;
    // plotters' log axis yields each power of ten twice (the end of one decade's light
    // ticks and the start of the next): label it once, or it prints bold.
    let last = (
        std::cell::Cell::new(f64::NAN),
        std::cell::Cell::new(f64::NAN),
    );
    let once = |v: f64, log: bool, last: &std::cell::Cell<f64>| {
        if last.replace(v) == v {
            String::new()
        } else {
            tick_label(v, log)
        }
    };
    let fx = |v: &f64| once(*v, plot.log_x, &last.0);
    let fy = |v: &f64| once(*v, plot.log_y, &last.1);
    chart
        .configure_mesh()
        .x_desc(&plot.x_label)
        .y_desc(&plot.y_label)
        .axis_desc_style(("sans-serif", 17))
        .label_style(("sans-serif", 14))
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        // A log axis needs many key points for plotters to place ticks inside each decade
        // (the formatter labels only 1, 2 and 5 of them).
        .x_labels(if plot.log_x { 30 } else { x_ticks })
        .y_labels(if plot.log_y { 30 } else { 10 })
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    let several = plot.series.len() > 1 || !plot.series[0].name.is_empty();
    for (i, s) in plot.series.iter().enumerate() {
        let color = palette(i);
        let mut pts = s.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let style = ShapeStyle::from(&color).stroke_width(2);
        let drawn = match s.mark {
            Mark::Lines => {
                chart.draw_series(LineSeries::new(pts.iter().copied(), style))?;
                chart.draw_series(
                    pts.iter()
                        .map(|&p| Circle::new(p, 4, ShapeStyle::from(&color).filled())),
                )?
            }
            Mark::Scatter => chart.draw_series(
                pts.iter()
                    .map(|&p| Circle::new(p, 4, ShapeStyle::from(&color.mix(0.6)).filled())),
            )?,
        };
        if several {
            let mark = s.mark;
            drawn.label(&s.name).legend(move |(lx, ly)| {
                let c = palette(i);
                match mark {
                    Mark::Lines => PathElement::new(
                        vec![(lx, ly), (lx + 20, ly)],
                        ShapeStyle::from(&c).stroke_width(2),
                    )
                    .into_dyn(),
                    Mark::Scatter => {
                        Circle::new((lx + 10, ly), 4, ShapeStyle::from(&c).filled()).into_dyn()
                    }
                }
            });
        }
    }
    if several {
        let corner = legend_corner(plot, chart.plotting_area());
        chart
            .configure_series_labels()
            .position(corner)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    Ok(())
}

/// The corner of the plot area with the fewest points and line samples near it, so the
/// legend hides as little data as it can.
fn legend_corner<DB: DrawingBackend, CT: CoordTranslate<From = (f64, f64)>>(
    plot: &Plot,
    area: &DrawingArea<DB, CT>,
) -> SeriesLabelPosition {
    let ((x0, y0), (x1, y1)) = {
        let r = area.get_pixel_range();
        ((r.0.start, r.1.start), (r.0.end, r.1.end))
    };
    // Points, and samples along the lines between them, in pixels.
    let mut px: Vec<(i32, i32)> = Vec::new();
    for s in &plot.series {
        let mut pts = s.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (i, &p) in pts.iter().enumerate() {
            px.push(area.map_coordinate(&p));
            if s.mark == Mark::Lines
                && let Some(&q) = pts.get(i + 1)
            {
                let (a, b) = (area.map_coordinate(&p), area.map_coordinate(&q));
                for k in 1..8 {
                    px.push((a.0 + (b.0 - a.0) * k / 8, a.1 + (b.1 - a.1) * k / 8));
                }
            }
        }
    }
    let (w, h) = ((x1 - x0) * 2 / 5, (y1 - y0) * 2 / 5);
    let corners = [
        (SeriesLabelPosition::UpperRight, x1 - w, y0),
        (SeriesLabelPosition::UpperLeft, x0, y0),
        (SeriesLabelPosition::LowerRight, x1 - w, y1 - h),
        (SeriesLabelPosition::LowerLeft, x0, y1 - h),
    ];
    corners
        .into_iter()
        .min_by_key(|&(_, cx, cy)| {
            px.iter()
                .filter(|p| (cx..cx + w).contains(&p.0) && (cy..cy + h).contains(&p.1))
                .count()
        })
        .map(|c| c.0)
        .expect("four corners")
}

/// Distinguishable colors (Tableau 10), cycled.
fn palette(i: usize) -> RGBColor {
    const C: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

/// A tick label: a log axis labels only 1, 2 and 5 times a power of ten (its other ticks
/// stay unlabelled, so labels never crowd).
fn tick_label(v: f64, log: bool) -> String {
    if log {
        let m = v / 10f64.powf(v.log10().floor());
        let near = |t: f64| (m - t).abs() < 1e-6 * t;
        if !(near(1.0) || near(2.0) || near(5.0) || near(10.0)) {
            return String::new();
        }
    }
    number(v)
}

/// A number for a label: up to 4 significant digits, no trailing zeros, `1.5e6` when large.
pub fn number(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        let s = format!("{v:.2e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        return format!("{}e{e}", trim(m));
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    trim(&format!("{v:.decimals$}"))
}

fn trim(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// An axis label from a column name, with its unit spelled out from the name's unit suffix:
/// `fabric.link_rate_gbps` -> `fabric link rate (Gb/s)`, `message_time_us.p99` ->
/// `message time p99 (µs)`, `tokens_per_s_per_gpu` -> `tokens/s per GPU`.
pub fn axis_label(col: &str) -> String {
    // Longest suffixes first.
    const UNITS: [(&str, &str); 14] = [
        ("_gbytes_per_s_per_gpu", "GB/s per GPU"),
        ("_per_s_per_gpu", "/s per GPU"),
        ("_gbytes_per_s", "GB/s"),
        ("_per_s", "/s"),
        ("_gbps", "Gb/s"),
        ("_bytes", "bytes"),
        ("_pct", "%"),
        ("_ms", "ms"),
        ("_us", "µs"),
        ("_ns", "ns"),
        ("_ps", "ps"),
        ("_s", "s"),
        ("_mib", "MiB"),
        ("_gib", "GiB"),
    ];
    let mut unit = None;
    let parts: Vec<String> = col
        .split('.')
        .map(|part| {
            if part == "bytes" {
                unit.get_or_insert("bytes");
                return "bytes".to_string();
            }
            for (suffix, u) in UNITS {
                if let Some(stem) = part.strip_suffix(suffix)
                    && !stem.is_empty()
                    && unit.is_none()
                {
                    if u.starts_with('/') {
                        // A rate of a count: `tokens_per_s_per_gpu` reads `tokens/s per GPU`.
                        return format!("{}{u}", stem.replace('_', " "));
                    }
                    unit = Some(u);
                    return stem.replace('_', " ");
                }
            }
            part.replace('_', " ")
        })
        .collect();
    let text = parts
        .join(" ")
        .split(' ')
        .map(|w| match w {
            "gpu" => "GPU",
            "gpus" => "GPUs",
            "tpot" => "TPOT",
            "ttft" => "TTFT",
            "nic" => "NIC",
            "nics" => "NICs",
            "ffn" => "FFN",
            "afd" => "AFD",
            "mtu" => "MTU",
            "nvlink" => "NVLink",
            "pcie" => "PCIe",
            "ecn" => "ECN",
            "pfc" => "PFC",
            _ => w,
        })
        .collect::<Vec<_>>()
        .join(" ");
    match unit {
        Some(u) if u != "bytes" || !text.ends_with("bytes") => format!("{text} ({u})"),
        _ => text,
    }
}

/// A column's readable name without its unit, for titles: `makespan_us` -> `makespan`,
/// `fabric.nic.rate_gbps` -> `fabric NIC rate` (the axes carry the units).
pub fn quantity(col: &str) -> String {
    let label = axis_label(col);
    match label.strip_suffix(')').and_then(|l| l.rsplit_once(" (")) {
        Some((name, _)) => name.to_string(),
        None => label,
    }
}

/// The default title of `y` against `x`: `makespan vs fabric NIC rate`.
pub fn default_title(x: &str, y: &str) -> String {
    format!("{} vs {}", quantity(y), quantity(x))
}

/// Series of `y` against `x` from a table, one per distinct combination of the `series`
/// columns (sorted numerically where they are numbers). Rows sharing (series, x) are an
/// error that names the parameter columns that tell them apart, unless `mean` averages them.
pub fn series_of(
    table: &Table,
    x: &str,
    y: &str,
    series: &[&str],
    mean: bool,
    mark: Mark,
) -> Result<Vec<Series>, String> {
    let xc = table.column(x).ok_or_else(|| table.no_column(x))?;
    let yc = table.column(y).ok_or_else(|| table.no_column(y))?;
    let sc: Vec<usize> = series
        .iter()
        .map(|s| table.column(s).ok_or_else(|| table.no_column(s)))
        .collect::<Result<_, _>>()?;
    // Sort key of a series: its cells, as numbers where they parse.
    type Key = Vec<(Option<OrdF64>, String)>;
    // The rows at one x of a series, and their y.
    type Rows = (Vec<usize>, Vec<f64>);
    // series key -> x -> rows
    let mut groups: BTreeMap<Key, BTreeMap<OrdF64, Rows>> = BTreeMap::new();
    for (i, r) in table.rows.iter().enumerate() {
        let xv = table.number(i, xc)?;
        let yv = table.number(i, yc)?;
        let key: Key = sc
            .iter()
            .map(|&c| (r[c].parse::<f64>().ok().map(OrdF64), r[c].clone()))
            .collect();
        let e = groups
            .entry(key)
            .or_default()
            .entry(OrdF64(xv))
            .or_insert((Vec::new(), Vec::new()));
        e.0.push(i);
        e.1.push(yv);
    }
    if !mean
        && let Some((rows, _)) = groups
            .values()
            .flat_map(|g| g.values())
            .find(|(rows, _)| rows.len() > 1)
    {
        let params = table.param_columns();
        let differ: Vec<&str> = table
            .header
            .iter()
            .enumerate()
            .filter(|(_, h)| params.contains(h) || *h == "seed")
            .filter(|(c, _)| {
                rows.iter()
                    .any(|&r| table.rows[r][*c] != table.rows[rows[0]][*c])
            })
            .map(|(_, h)| h.as_str())
            .collect();
        return Err(format!(
            "{} rows have the same `{x}`{}; they differ in: {}. Pick one with --where COL=VALUE, split them with --series COL, or average them with --mean",
            rows.len(),
            if series.is_empty() {
                String::new()
            } else {
                format!(" and {}", series.join(", "))
            },
            if differ.is_empty() {
                "(no parameter column)".to_string()
            } else {
                differ.join(", ")
            }
        ));
    }
    Ok(groups
        .into_iter()
        .map(|(key, g)| Series {
            name: series
                .iter()
                .zip(&key)
                .map(|(s, (_, v))| legend_entry(s, v))
                .collect::<Vec<_>>()
                .join(", "),
            points: g
                .into_iter()
                // Each y over n before summing: the mean of finite values stays finite
                // (a sum of two 1e308 would not).
                .map(|(xv, (_, ys))| (xv.0, ys.iter().map(|y| y / ys.len() as f64).sum()))
                .collect(),
            mark,
        })
        .collect())
}

/// An f64 with a total order (for sorting groups).
#[derive(Copy, Clone, Debug, PartialEq)]
struct OrdF64(f64);

impl Eq for OrdF64 {}

impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for OrdF64 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// A legend entry for a column's value: its last key (the table names the rest), the
/// value, and the unit: `fabric.link_rate_gbps`, 100 -> `link rate = 100 Gb/s`.
pub fn legend_entry(col: &str, value: &str) -> String {
    let label = axis_label(col.rsplit('.').next().unwrap_or(col));
    match label.rsplit_once(" (") {
        Some((name, unit)) => format!("{name} = {value} {}", unit.trim_end_matches(')')),
        None => format!("{label} = {value}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_carry_units() {
        let check = |col: &str, label: &str| assert_eq!(axis_label(col), label, "{col}");
        check("fabric.link_rate_gbps", "fabric link rate (Gb/s)");
        check("message_time_us.p99", "message time p99 (µs)");
        check("makespan_us", "makespan (µs)");
        check("tokens_per_s_per_gpu", "tokens/s per GPU");
        check("afd.micro_batches", "AFD micro batches");
        assert_eq!(
            legend_entry("fabric.link_rate_gbps", "100"),
            "link rate = 100 Gb/s"
        );
        assert_eq!(legend_entry("fabric.gpus", "4"), "GPUs = 4");
        check("rx_gbytes_per_s_per_gpu", "rx (GB/s per GPU)");
        check("tpot_ms", "TPOT (ms)");
        check("traffic[0].bytes", "traffic[0] bytes");
        check("peak_queue_bytes", "peak queue (bytes)");
        check("seed", "seed");
    }

    #[test]
    fn numbers_and_log_ticks() {
        assert_eq!(number(151.4776), "151.5");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(3200.0), "3200");
        assert_eq!(number(2_500_000.0), "2.5e6");
        assert_eq!(tick_label(200.0, true), "200");
        assert_eq!(tick_label(300.0, true), "");
        assert_eq!(tick_label(300.0, false), "300");
    }

    fn table() -> Table {
        Table::parse(
            "point,index,a,b,seed,scenario,level,afdsim_version,y\n\
             p0,0,1,10,1,s,packet,v,5\n\
             p1,1,1,20,1,s,packet,v,6\n\
             p2,2,2,10,1,s,packet,v,7\n\
             p3,3,2,20,1,s,packet,v,9\n",
        )
        .unwrap()
    }

    #[test]
    fn series_group_and_duplicates_are_explained() {
        let t = table();
        assert_eq!(t.param_columns(), ["a", "b"]);
        let s = series_of(&t, "a", "y", &["b"], false, Mark::Lines).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "b = 10");
        assert_eq!(s[1].name, "b = 20");
        assert_eq!(s[0].points, [(1.0, 5.0), (2.0, 7.0)]);
        let e = series_of(&t, "a", "y", &[], false, Mark::Lines).unwrap_err();
        assert!(
            e.contains("2 rows have the same `a`; they differ in: b."),
            "{e}"
        );
        let m = series_of(&t, "a", "y", &[], true, Mark::Lines).unwrap();
        assert_eq!(m[0].points, [(1.0, 5.5), (2.0, 8.0)]);
        let f = t.filter("b", "20").unwrap();
        assert_eq!(f.rows.len(), 2);
        assert!(
            series_of(&t, "nope", "y", &[], false, Mark::Lines)
                .unwrap_err()
                .contains("no column `nope`")
        );
    }

    #[test]
    fn svg_is_deterministic_and_labelled() {
        let t = table();
        let plot = Plot {
            title: "y vs a".into(),
            subtitle: vec!["afd.layers = 12".into()],
            x_label: axis_label("fabric.link_rate_gbps"),
            y_label: axis_label("makespan_us"),
            log_x: true,
            log_y: false,
            series: series_of(&t, "a", "y", &["b"], false, Mark::Lines).unwrap(),
        };
        let a = render_svg(&plot).unwrap();
        assert_eq!(a, render_svg(&plot).unwrap());
        assert!(a.starts_with("<svg"));
        for text in [
            "fabric link rate (Gb/s)",
            "makespan (µs)",
            "b = 10",
            "b = 20",
            "y vs a",
            "afd.layers = 12",
        ] {
            assert!(a.contains(text), "{text} missing");
        }
    }

    /// Renders on another thread and fails if it takes more than 30 s: plotters' tick loops
    /// spin forever on infinite ranges, so a regression must fail, not hang.
    fn render_within(plot: Plot) -> Result<String, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let shown = format!("{:?}", plot.series);
        std::thread::spawn(move || {
            let _ = tx.send(render_svg(&plot));
        });
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("render_svg of {shown} still running after 30 s"))
    }

    fn plot_of(points: &[(f64, f64)], log_x: bool, log_y: bool) -> Plot {
        Plot {
            title: "t".into(),
            subtitle: Vec::new(),
            x_label: axis_label("x_us"),
            y_label: axis_label("y"),
            log_x,
            log_y,
            series: vec![Series {
                name: String::new(),
                points: points.to_vec(),
                mark: Mark::Lines,
            }],
        }
    }

    #[test]
    fn extreme_ranges_are_drawn_or_refused_never_spun() {
        let big = f64::MAX;
        for (pts, log_x, log_y) in [
            (vec![(1.0, 1e308), (2.0, -1e308)], false, false),
            (vec![(-big, 1.0), (big, 2.0)], false, false),
            (vec![(1.0, big), (2.0, big)], false, false),
            (vec![(1.0, 5e-324), (2.0, 1e-323)], false, false),
            (vec![(1.0, 1.0), (2.0, 1.0 + f64::EPSILON)], false, false),
            (vec![(1e300, 1e-300), (1e301, 1e-290)], true, true),
            (vec![(1.0, big), (2.0, big)], false, true),
            (vec![(1.0, 5e-324), (2.0, 1e-300)], false, true),
        ] {
            let svg = render_within(plot_of(&pts, log_x, log_y))
                .unwrap_or_else(|e| panic!("{pts:?}: {e}"));
            assert!(svg.starts_with("<svg"), "{pts:?}");
        }
        // The power of ten the values are drawn in is in the label.
        let svg = render_within(plot_of(&[(1e308, 1.0), (1.5e308, 2.0)], false, false)).unwrap();
        assert!(svg.contains("x (×1e308 µs)"), "{svg}");
        // Too many decades, non-finite points, log of <= 0: errors, at once.
        for (pts, log_y, words) in [
            (vec![(1.0, 5e-324), (2.0, 1e308)], true, "decades"),
            (vec![(1.0, f64::INFINITY), (2.0, 1.0)], false, "finite"),
            (vec![(f64::NAN, 1.0), (2.0, 1.0)], false, "finite"),
            (vec![(1.0, 0.0), (2.0, 1.0)], true, "--log-y"),
        ] {
            let e = render_within(plot_of(&pts, false, log_y)).unwrap_err();
            assert!(e.contains(words), "{pts:?}: {e}");
        }
    }

    #[test]
    fn cells_name_their_line_and_column() {
        let t = Table::parse("point,index,a,seed,y\np0,0,1,1,5\np1,1,2,1,inf\n").unwrap();
        assert_eq!(t.lines, [2, 3]);
        let e = series_of(&t, "a", "y", &[], false, Mark::Lines).unwrap_err();
        assert!(
            e.contains("`y` at line 3 (point p1) is `inf`") && e.contains("finite"),
            "{e}"
        );
        let f = t.filter("a", "2").unwrap();
        assert_eq!(f.row_name(0), "line 3 (point p1)");
        let t = Table::parse("x,y\n1,0\n2,abc\n").unwrap();
        assert!(
            t.check_positive("y", "--log-y")
                .unwrap_err()
                .contains("--log-y needs every value of `y` > 0; line 2 holds `0`")
        );
        assert!(t.number(1, 1).unwrap_err().contains("not a number"));
    }

    #[test]
    fn titles_read_like_the_axes_and_fixed_overrides_are_named() {
        assert_eq!(
            default_title("fabric.nic.rate_gbps", "makespan_us"),
            "makespan vs fabric NIC rate"
        );
        assert_eq!(quantity("tokens_per_s_per_gpu"), "tokens/s per GPU");
        assert_eq!(
            scaled_label("tokens/s per GPU", -5),
            "tokens/s per GPU (×1e-5)"
        );
        let t = Table::parse(
            "point,index,afd.layers,afd.micro_batches,fabric.nic.rate_gbps,seed,level,tpot_ms\n\
             p0,0,12,1,100,1,flow,13\np1,1,12,2,100,1,flow,12\n",
        )
        .unwrap();
        assert_eq!(
            t.fixed_overrides(&["afd.micro_batches", "tpot_ms"]),
            ["afd.layers = 12", "fabric.nic.rate_gbps = 100"]
        );
        assert_eq!(
            t.fixed_overrides(&["fabric.nic.rate_gbps"]),
            ["afd.layers = 12"]
        );
        assert_eq!(
            wrap(&["a = 1".into(), "b = 2".into(), "c = 3".into()], 12),
            ["a = 1, b = 2", "c = 3"]
        );
    }
}
