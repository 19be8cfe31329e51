//! The plot as files: the SVG is well-formed XML with every panel's title,
//! the PNG is a real PNG of the right size with a picture in it (not one
//! colour), for the realistic incident and the edge cases.
mod common;

use common::fixture::{self, Spec};
use halfopen_report::plot::{plot, PlotFormat, HEIGHT, WIDTH};
use std::collections::HashSet;

const TITLES: [&str; 3] = [
    "Half-open connections (held by one end only), stacked by client process",
    "Accept queue of listener 0.0.0.0:3306 on db-1, against its backlog",
    "Dropped connection attempts and SYN cookies, per second",
];

/// The SVG's text, in document order (parsed, so it must be well-formed).
fn svg_texts(svg: &[u8]) -> Vec<String> {
    let s = std::str::from_utf8(svg).expect("the SVG is UTF-8");
    let doc = roxmltree::Document::parse(s).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

/// Decoded RGB(A) pixels; panics unless it is a PNG of the plot's size.
fn png_pixels(png_bytes: &[u8]) -> Vec<[u8; 3]> {
    assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes)).read_info().unwrap();
    let mut buf = vec![0; dec.output_buffer_size()];
    let info = dec.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

#[test]
fn the_svg_is_xml_with_every_panel_and_the_marks() {
    let pm = fixture::realistic();
    let texts = svg_texts(&plot(&pm, PlotFormat::Svg).unwrap());
    for t in TITLES {
        assert!(texts.iter().any(|x| x == t), "no panel titled {t:?} in {texts:?}");
    }
    for t in [
        "db-1:3306 — 300 half-open connections",
        "start 02:15:02",
        "end 02:31:40",
        "peak 292 at 02:19:51",
        "140  php-fpm (pid 2201) on app-1",
        "time (UTC)",
        "02:20",
    ] {
        assert!(texts.iter().any(|x| x == t), "no text {t:?} in {texts:?}");
    }
}

#[test]
fn the_png_is_a_picture() {
    let px = png_pixels(&plot(&fixture::realistic(), PlotFormat::Png).unwrap());
    let colours: HashSet<[u8; 3]> = px.iter().copied().collect();
    assert!(colours.len() > 200, "{} distinct colours", colours.len());
    let white = px.iter().filter(|p| **p == [255, 255, 255]).count();
    assert!(white < px.len() * 9 / 10, "mostly white: {white} of {}", px.len());
    // The first client process's colour (Okabe-Ito blue) fills its area.
    let blue = px
        .iter()
        .filter(|p| **p == [0, 114, 178] || p[2] > 150 && p[0] < 60)
        .count();
    assert!(blue > 10_000, "{blue} blue pixels");
}

#[test]
fn edge_cases_draw() {
    let no_samples = Spec::no_samples();
    let one = Spec {
        samples: false,
        ..Spec::one()
    };
    let ongoing = Spec::ongoing();
    let listener_only = Spec::listener_only();
    for (name, spec, want) in [
        (
            "no samples",
            no_samples,
            "No sample of this listener was kept: its queue is not known over time.",
        ),
        ("one finding", one, "peak 1 at 02:15:04"),
        ("ongoing", ongoing, "still open at 02:27:12"),
        (
            "listener only",
            listener_only,
            "No one-sided connection in this incident: its findings are about the listener.",
        ),
    ] {
        let pm = fixture::build(&spec);
        let texts = svg_texts(&plot(&pm, PlotFormat::Svg).unwrap());
        assert!(texts.iter().any(|t| t == want), "{name}: no {want:?} in {texts:?}");
        let px = png_pixels(&plot(&pm, PlotFormat::Png).unwrap());
        assert!(px.iter().collect::<HashSet<_>>().len() > 50, "{name}: blank PNG");
    }
}

/// 50,000 findings draw from bounded series: the SVG stays small.
#[test]
fn fifty_thousand_findings_draw_small() {
    let pm = fixture::build(&fixture::big(50_000, 9));
    let started = std::time::Instant::now();
    let svg = plot(&pm, PlotFormat::Svg).unwrap();
    assert!(svg.len() < 400_000, "{} bytes", svg.len());
    let texts = svg_texts(&svg);
    assert!(texts.iter().any(|t| t == "16,665  3 other processes"), "{texts:?}");
    let png = plot(&pm, PlotFormat::Png).unwrap();
    assert!(png_pixels(&png).len() == (WIDTH * HEIGHT) as usize);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn hostile_names_make_well_formed_svg() {
    let svg = plot(&fixture::hostile(), PlotFormat::Svg).unwrap();
    let s = String::from_utf8(svg.clone()).unwrap();
    assert!(!s.contains("<script"), "a script element in the SVG");
    assert!(!s.contains('\u{1b}'), "an escape character in the SVG (not XML)");
    let texts = svg_texts(&svg);
    assert!(
        texts.iter().any(|t| t.starts_with("140  <script>alert(1)")),
        "{texts:?}"
    );
}
