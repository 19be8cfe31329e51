//! An incident in one picture (SVG or PNG), drawn with plotters: three
//! panels on one UTC time axis, with the incident shaded and its start,
//! end (or "still open") and peak marked:
//!
//! 1. one-sided connections over time, stacked per client process (the
//!    [`TOP_PROCESSES`](crate::series::TOP_PROCESSES) biggest, then
//!    "other"), and connections waiting for a greeting when there were any;
//! 2. the listener's accept queue against its backlog (the samples'
//!    `ListenerPoint`s of the incident's listener);
//! 3. per second: the listener's own drops (sk_drops), the host's
//!    accept-queue overflows (TcpExt ListenOverflows, ListenDrops) and the
//!    SYN cookies it sent (TcpExt SyncookiesSent).
//!
//! Text is laid out and, for PNG, rasterized with ab_glyph from the Go font
//! shipped in this crate (`fonts/`, BSD-3-Clause, see `fonts/LICENSE`): no
//! fontconfig, freetype or system font is needed, and every machine draws
//! the same picture. The SVG names the font family `sans-serif` and the
//! viewer uses its own. The data come from [`crate::series`] (bounded
//! sweeps), so 50,000 findings draw as fast as 300.
use crate::series::{series, Series, StackPoint};
use crate::story::{clock, day, num, span, truncate};
use halfopen_core::Postmortem;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlotFormat {
    Svg,
    Png,
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The shipped font did not parse (a broken build).
    #[error("the plot's font (Go Regular, shipped in halfopen-report) does not load")]
    Font,
    #[error("drawing the plot: {0}")]
    Draw(String),
    #[error("encoding the PNG: {0}")]
    Png(#[from] png::EncodingError),
}

/// The picture's size, pixels.
pub const WIDTH: u32 = 1400;
pub const HEIGHT: u32 = 1040;

const FONT: &str = "sans-serif";
static GO_REGULAR: &[u8] = include_bytes!("../fonts/Go-Regular.ttf");

fn register_font() -> Result<(), PlotError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, GO_REGULAR).is_ok());
    if ok {
        Ok(())
    } else {
        Err(PlotError::Font)
    }
}

/// The latest moment the data know of: "now" for an incident still open
/// when no clock is given (the last sample or finding event).
pub fn data_now(pm: &Postmortem) -> i64 {
    let f = pm.findings.iter().map(|f| {
        f.gone_at_ms
            .unwrap_or(f.finding.confirmed_at_ms)
            .max(f.finding.first_seen_ms)
    });
    let s = pm.samples.iter().map(|s| s.at_ms);
    f.chain(s)
        .max()
        .unwrap_or(pm.incident.start_ms)
        .max(pm.incident.end_ms.unwrap_or(i64::MIN))
}

/// The plot's file contents; an incident still open is drawn up to the
/// latest moment its data know of ([`data_now`]).
pub fn plot(pm: &Postmortem, format: PlotFormat) -> Result<Vec<u8>, PlotError> {
    let safe = crate::clean::defang_postmortem(pm);
    let now = data_now(&safe);
    let sr = series(&safe, now);
    plot_series(&safe, &sr, format)
}

/// The plot of `pm` (already defanged) from its series.
pub(crate) fn plot_series(pm: &Postmortem, sr: &Series, format: PlotFormat) -> Result<Vec<u8>, PlotError> {
    register_font()?;
    let err = |e: String| PlotError::Draw(e);
    match format {
        PlotFormat::Svg => {
            let mut s = String::new();
            {
                let root = SVGBackend::with_string(&mut s, (WIDTH, HEIGHT)).into_drawing_area();
                draw(&root, pm, sr).map_err(|e| err(e.to_string()))?;
                root.present().map_err(|e| err(e.to_string()))?;
            }
            Ok(s.into_bytes())
        }
        PlotFormat::Png => {
            let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
                draw(&root, pm, sr).map_err(|e| err(e.to_string()))?;
                root.present().map_err(|e| err(e.to_string()))?;
            }
            let mut out = Vec::new();
            {
                let mut enc = png::Encoder::new(&mut out, WIDTH, HEIGHT);
                enc.set_color(png::ColorType::Rgb);
                enc.set_depth(png::BitDepth::Eight);
                let mut w = enc.write_header()?;
                w.write_image_data(&rgb)?;
            }
            Ok(out)
        }
    }
}

/// The shared time axis: reconciler wall clock, ms, with ticks on round
/// UTC times (every 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1, 2,
/// 3, 6, 12 h, 1 d).
#[derive(Clone, Copy, Debug)]
struct TimeAxis {
    from: i64,
    to: i64,
}

const STEPS_S: [i64; 18] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
];

impl TimeAxis {
    fn step_ms(&self, max: usize) -> i64 {
        let span = (self.to - self.from).max(1);
        STEPS_S
            .iter()
            .map(|s| s * 1000)
            .find(|s| span / s < max.max(1) as i64)
            .unwrap_or(86_400_000 * ((span / 86_400_000) / max.max(1) as i64 + 1))
    }

    fn ticks(&self, step: i64) -> Vec<i64> {
        let mut t = self.from.div_euclid(step) * step;
        if t < self.from {
            t += step;
        }
        let mut v = Vec::new();
        while t <= self.to && v.len() < 1000 {
            v.push(t);
            t += step;
        }
        v
    }

    /// A tick's label: seconds only when ticks are less than a minute apart.
    fn label(&self, t: i64) -> String {
        let step = self.step_ms(12);
        let c = clock(t);
        if self.to - self.from > 86_400_000 {
            format!("{} {}", &day(t)[5..], &c[..5])
        } else if step < 60_000 {
            c
        } else {
            c[..5].to_string()
        }
    }
}

impl Ranged for TimeAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = i64;

    fn map(&self, v: &i64, limit: (i32, i32)) -> i32 {
        let span = (self.to - self.from).max(1) as f64;
        let f = (*v - self.from) as f64 / span;
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<i64> {
        let max = hint.max_num_points().min(14);
        if max == 0 {
            return Vec::new();
        }
        self.ticks(self.step_ms(max))
    }

    fn range(&self) -> std::ops::Range<i64> {
        self.from..self.to
    }
}

impl ValueFormatter<i64> for TimeAxis {
    fn format(v: &i64) -> String {
        clock(*v)
    }
}

// Colours: a colour-blind-safe palette (Okabe & Ito) for client processes,
// grey for "other"; the listener and counters in their own.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
];
const OTHER: RGBColor = RGBColor(150, 150, 150);
const INK: RGBColor = RGBColor(29, 35, 48);
const MUTED: RGBColor = RGBColor(91, 100, 117);
const BAND: RGBColor = RGBColor(255, 226, 170);
const START: RGBColor = RGBColor(192, 57, 43);
const END: RGBColor = RGBColor(46, 125, 50);
const QUEUE: RGBColor = RGBColor(0, 114, 178);
const BACKLOG: RGBColor = RGBColor(192, 57, 43);
const DROPS: RGBColor = RGBColor(230, 159, 0);
const OVERFLOWS: RGBColor = RGBColor(192, 57, 43);
const COOKIES: RGBColor = RGBColor(110, 60, 160);

fn group_colour(i: usize, n: usize, has_other: bool) -> RGBColor {
    if has_other && i + 1 == n {
        OTHER
    } else {
        PALETTE[i % PALETTE.len()]
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

const LEGEND_W: u32 = 330;
const TITLE_H: u32 = 84;
const Y_LABELS: u32 = 78;

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&INK)
}

fn muted(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&MUTED)
}

/// One legend entry: its swatch and words.
enum Swatch {
    Fill(RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
    Dot(RGBColor),
    Band,
}

/// The legend of a panel, in the column at the right of the plots.
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, top: i32, items: &[(Swatch, String)]) -> DrawResult<DB> {
    let x = 8;
    let mut y = top;
    for (sw, text) in items {
        match sw {
            Swatch::Fill(c) => {
                area.draw(&Rectangle::new([(x, y + 2), (x + 26, y + 14)], c.filled()))?;
            }
            Swatch::Line(c) => {
                area.draw(&PathElement::new(vec![(x, y + 8), (x + 26, y + 8)], c.stroke_width(3)))?;
            }
            Swatch::Dashed(c) => {
                for k in 0..3 {
                    area.draw(&PathElement::new(
                        vec![(x + k * 10, y + 8), (x + k * 10 + 6, y + 8)],
                        c.stroke_width(3),
                    ))?;
                }
            }
            Swatch::Dot(c) => {
                area.draw(&Circle::new((x + 13, y + 8), 5, c.filled()))?;
            }
            Swatch::Band => {
                area.draw(&Rectangle::new([(x, y + 2), (x + 26, y + 14)], BAND.mix(0.55).filled()))?;
            }
        }
        area.draw(&Text::new(text.clone(), (x + 36, y), font(14)))?;
        y += 21;
    }
    Ok(())
}

/// The incident's band and its start and end lines, in a panel.
fn marks<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<TimeAxis, plotters::coord::types::RangedCoordf64>>,
    sr: &Series,
    ymax: f64,
    labels: bool,
) -> DrawResult<DB> {
    let end = sr.end_ms.unwrap_or(sr.now_ms).clamp(sr.from_ms, sr.to_ms);
    let start = sr.start_ms.clamp(sr.from_ms, sr.to_ms);
    chart.draw_series(std::iter::once(Rectangle::new(
        [(start, 0.0), (end, ymax)],
        BAND.mix(0.55).filled(),
    )))?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(start, 0.0), (start, ymax)],
        START.stroke_width(2),
    )))?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(end, 0.0), (end, ymax)],
        END.stroke_width(2),
    )))?;
    if labels {
        // Labels inside the band; outside it when the band is narrow.
        let left_of = Pos::new(HPos::Right, VPos::Top);
        let right_of = Pos::new(HPos::Left, VPos::Top);
        let wide = (end - start) > (sr.to_ms - sr.from_ms) / 4;
        chart.draw_series(std::iter::once(Text::new(
            format!(" start {} ", clock(sr.start_ms)),
            (start, ymax),
            font(14).color(&START).pos(if wide { right_of } else { left_of }),
        )))?;
        let end_text = match sr.end_ms {
            Some(e) => format!(" end {} ", clock(e)),
            None => format!(" still open at {} ", clock(sr.now_ms)),
        };
        let room_right = sr.to_ms - end > (sr.to_ms - sr.from_ms) / 6;
        chart.draw_series(std::iter::once(Text::new(
            end_text,
            (end, ymax),
            font(14)
                .color(&END)
                .pos(if wide || !room_right { left_of } else { right_of }),
        )))?;
    }
    Ok(())
}

fn message<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<TimeAxis, plotters::coord::types::RangedCoordf64>>,
    sr: &Series,
    ymax: f64,
    text: &str,
) -> DrawResult<DB> {
    let mid = sr.from_ms + (sr.to_ms - sr.from_ms) / 2;
    chart.draw_series(std::iter::once(Text::new(
        text.to_string(),
        (mid, ymax * 0.55),
        muted(16).pos(Pos::new(HPos::Center, VPos::Center)),
    )))?;
    Ok(())
}

/// Axis numbers: whole numbers with thousands separators, else one decimal.
fn y_number(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        num(v.round().max(0.0) as u64)
    } else {
        format!("{v:.1}")
    }
}

/// A count axis: whole numbers only (0..=v+1 for small counts), and how
/// many labels.
fn count_axis(v: u64) -> (f64, usize) {
    if v <= 8 {
        let m = (v + 1).max(2);
        (m as f64, m as usize + 1)
    } else {
        (nice_max(v as f64), 10)
    }
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let v = v * 1.18;
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, pm: &Postmortem, sr: &Series) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let inc = &pm.incident;
    let (title, rest) = root.split_vertically(TITLE_H);
    let connections: u64 = sr.groups.iter().map(|g| g.connections).sum();
    let headline = if connections > 0 {
        format!(
            "{}:{} — {} half-open connection{}",
            inc.server_host,
            inc.server.port(),
            num(connections),
            if connections == 1 { "" } else { "s" }
        )
    } else {
        format!("{}:{} — incident on the listener", inc.server_host, inc.server.port())
    };
    title.draw(&Text::new(headline, (16, 12), font(26)))?;
    let when = match sr.end_ms {
        Some(e) => format!(
            "{} {} to {} UTC ({}), ended: {}",
            day(sr.start_ms),
            clock(sr.start_ms),
            clock(e),
            span(e - sr.start_ms),
            crate::rows::ended_str(inc.ended).replace('_', " ")
        ),
        None => format!(
            "{} {} UTC, still open at {} ({} so far)",
            day(sr.start_ms),
            clock(sr.start_ms),
            clock(sr.now_ms),
            span(sr.now_ms - sr.start_ms)
        ),
    };
    let peak = sr.peak.map_or(String::new(), |(t, p)| {
        format!("; peak {} at once at {}", num(p), clock(t))
    });
    title.draw(&Text::new(format!("{when}{peak}"), (16, 46), font(17)))?;
    title.draw(&Text::new(
        format!("incident {}", inc.id),
        (WIDTH as i32 - 16, 16),
        muted(13).pos(Pos::new(HPos::Right, VPos::Top)),
    ))?;

    let (plots, legends) = rest.split_horizontally(WIDTH - LEGEND_W);
    let h = HEIGHT - TITLE_H;
    let a_h = h * 42 / 100;
    let b_h = h * 26 / 100;
    let panels = plots.split_by_breakpoints([] as [u32; 0], [a_h, a_h + b_h]);
    let lpanels = legends.split_by_breakpoints([] as [u32; 0], [a_h, a_h + b_h]);
    let axis = TimeAxis {
        from: sr.from_ms,
        to: sr.to_ms,
    };
    let xfmt = |t: &i64| axis.label(*t);

    // (a) One-sided connections per client process.
    {
        let totals: Vec<u64> = sr.one_sided.iter().map(StackPoint::total).collect();
        let stalled_max = sr.stalled.iter().map(|x| x.1).max().unwrap_or(0);
        let (ymax, ylabels) = count_axis(totals.iter().copied().max().unwrap_or(0).max(stalled_max));
        let mut chart = ChartBuilder::on(&panels[0])
            .margin_top(8)
            .margin_right(14)
            .caption(
                "Half-open connections (held by one end only), stacked by client process",
                font(18),
            )
            .x_label_area_size(28)
            .y_label_area_size(Y_LABELS)
            .build_cartesian_2d(axis, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_label_formatter(&xfmt)
            .y_label_formatter(&y_number)
            .y_labels(ylabels)
            .y_desc("connections")
            .axis_desc_style(font(14))
            .label_style(font(13))
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .max_light_lines(1)
            .draw()?;
        marks(&mut chart, sr, ymax, true)?;
        let n = sr.groups.len();
        let has_other = n > crate::series::TOP_PROCESSES;
        for g in (0..n).rev() {
            let pts: Vec<(i64, f64)> = sr
                .one_sided
                .iter()
                .map(|p| (p.at_ms, p.counts[..=g].iter().sum::<u64>() as f64))
                .collect();
            let c = group_colour(g, n, has_other);
            chart.draw_series(AreaSeries::new(pts, 0.0, c.mix(0.85).filled()).border_style(c.stroke_width(1)))?;
        }
        if !sr.stalled.is_empty() {
            chart.draw_series(DashedLineSeries::new(
                sr.stalled.iter().map(|(t, v)| (*t, *v as f64)),
                8,
                5,
                INK.stroke_width(2),
            ))?;
        }
        if let Some((t, p)) = sr.peak {
            let left = t - sr.from_ms > (sr.to_ms - sr.from_ms) / 2;
            chart.draw_series(std::iter::once(Circle::new((t, p as f64), 6, INK.filled())))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("  peak {} at {}  ", num(p), clock(t)),
                (t, p as f64),
                font(15).pos(Pos::new(if left { HPos::Right } else { HPos::Left }, VPos::Bottom)),
            )))?;
        }
        if n == 0 && sr.stalled.is_empty() {
            message(
                &mut chart,
                sr,
                ymax,
                "No one-sided connection in this incident: its findings are about the listener.",
            )?;
        }
        let mut items: Vec<(Swatch, String)> = sr
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                (
                    Swatch::Fill(group_colour(i, n, has_other)),
                    truncate(&format!("{}  {}", num(g.connections), g.label), 38),
                )
            })
            .collect();
        if !sr.stalled.is_empty() {
            items.push((Swatch::Dashed(INK), "waiting for a greeting (both ends)".into()));
        }
        if sr.peak.is_some() {
            items.push((Swatch::Dot(INK), "the most at once".into()));
        }
        items.push((Swatch::Band, "the incident".into()));
        lpanels[0].draw(&Text::new("Client processes (connections)", (8, 36), muted(14)))?;
        legend(&lpanels[0], 58, &items)?;
    }

    // (b) The listener's accept queue against its backlog.
    {
        let qmax = sr.queue.iter().map(|q| q.queue.max(q.backlog)).max().unwrap_or(0);
        let (ymax, ylabels) = count_axis(u64::from(qmax));
        let caption = match sr.listener {
            Some(l) => format!(
                "Accept queue of listener {l} on {}, against its backlog",
                inc.server_host
            ),
            None => format!("Accept queue of the listener on {}", inc.server_host),
        };
        let mut chart = ChartBuilder::on(&panels[1])
            .margin_top(8)
            .margin_right(14)
            .caption(caption, font(18))
            .x_label_area_size(28)
            .y_label_area_size(Y_LABELS)
            .build_cartesian_2d(axis, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_label_formatter(&xfmt)
            .y_label_formatter(&y_number)
            .y_labels(if sr.queue.is_empty() { 0 } else { ylabels })
            .y_desc("waiting")
            .axis_desc_style(font(14))
            .label_style(font(13))
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .max_light_lines(1)
            .draw()?;
        marks(&mut chart, sr, ymax, false)?;
        if sr.queue.is_empty() {
            message(
                &mut chart,
                sr,
                ymax,
                "No sample of this listener was kept: its queue is not known over time.",
            )?;
        } else {
            chart.draw_series(
                AreaSeries::new(
                    sr.queue.iter().map(|q| (q.at_ms, q.queue as f64)),
                    0.0,
                    QUEUE.mix(0.25).filled(),
                )
                .border_style(QUEUE.stroke_width(2)),
            )?;
            chart.draw_series(DashedLineSeries::new(
                sr.queue.iter().map(|q| (q.at_ms, q.backlog as f64)),
                10,
                6,
                BACKLOG.stroke_width(3),
            ))?;
        }
        legend(
            &lpanels[1],
            40,
            &[
                (Swatch::Line(QUEUE), "connections waiting for accept()".into()),
                (Swatch::Dashed(BACKLOG), "backlog: the queue's limit".into()),
            ],
        )?;
        lpanels[1].draw(&Text::new(
            "At the limit, new connections are dropped",
            (8, 92),
            muted(13),
        ))?;
        lpanels[1].draw(&Text::new("(or answered with SYN cookies).", (8, 110), muted(13)))?;
    }

    // (c) Drops and SYN cookies per second.
    {
        let r = |k: &str| sr.rates.get(k).cloned().unwrap_or_default();
        let overflows = r("TcpExt.ListenOverflows");
        let listen_drops = r("TcpExt.ListenDrops");
        let cookies = r("TcpExt.SyncookiesSent");
        let same = overflows == listen_drops;
        let vmax = sr
            .drops
            .iter()
            .chain(&overflows)
            .chain(&listen_drops)
            .chain(&cookies)
            .map(|x| x.1)
            .fold(0f64, f64::max);
        let ymax = nice_max(vmax);
        let no_samples = sr.queue.is_empty() && sr.rates.values().all(|v| v.is_empty());
        let mut chart = ChartBuilder::on(&panels[2])
            .margin_top(8)
            .margin_right(14)
            .margin_bottom(6)
            .caption("Dropped connection attempts and SYN cookies, per second", font(18))
            .x_label_area_size(48)
            .y_label_area_size(Y_LABELS)
            .build_cartesian_2d(axis, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_label_formatter(&xfmt)
            .y_label_formatter(&y_number)
            .y_labels(if no_samples { 0 } else { 10 })
            .y_desc("per second")
            .x_desc("time (UTC)")
            .axis_desc_style(font(14))
            .label_style(font(13))
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .max_light_lines(1)
            .draw()?;
        marks(&mut chart, sr, ymax, false)?;
        if no_samples {
            message(
                &mut chart,
                sr,
                ymax,
                "No sample of the server host was kept: its counters are not known over time.",
            )?;
        }
        // The listener's drops as bars, one per rate bin; the host's
        // counters as lines through the bins' middles.
        let w = sr.rate_bin_ms;
        let mid =
            |v: &[(i64, f64)]| -> Vec<(i64, f64)> { v.iter().map(|(t, x)| ((*t + w / 2).min(sr.to_ms), *x)).collect() };
        chart.draw_series(
            sr.drops
                .iter()
                .filter(|d| d.1 > 0.0)
                .map(|(t, v)| Rectangle::new([(*t, 0.0), ((*t + w).min(sr.to_ms), *v)], DROPS.mix(0.8).filled())),
        )?;
        if !same {
            chart.draw_series(LineSeries::new(mid(&listen_drops), OVERFLOWS.mix(0.5).stroke_width(2)))?;
        }
        chart.draw_series(DashedLineSeries::new(mid(&overflows), 8, 5, OVERFLOWS.stroke_width(2)))?;
        chart.draw_series(LineSeries::new(mid(&cookies), COOKIES.stroke_width(2)))?;
        let mut items = vec![
            (Swatch::Fill(DROPS), "dropped by this listener (sk_drops)".to_string()),
            (
                Swatch::Dashed(OVERFLOWS),
                if same {
                    "host: accept queue overflows".to_string()
                } else {
                    "host: ListenOverflows".to_string()
                },
            ),
        ];
        if !same {
            items.push((Swatch::Line(OVERFLOWS), "host: ListenDrops".into()));
        }
        items.push((Swatch::Line(COOKIES), "host: SYN cookies sent".into()));
        legend(&lpanels[2], 40, &items)?;
        lpanels[2].draw(&Text::new(
            "Host counters: TcpExt ListenOverflows,",
            (8, 40 + 21 * items.len() as i32 + 10),
            muted(13),
        ))?;
        lpanels[2].draw(&Text::new(
            "ListenDrops, SyncookiesSent (nstat).",
            (8, 40 + 21 * items.len() as i32 + 28),
            muted(13),
        ))?;
    }
    Ok(())
}
