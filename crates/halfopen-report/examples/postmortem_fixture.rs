//! Writes the test fixture's postmortem in every form and its plot (SVG and
//! PNG) to a directory, to look at them: `cargo run -p halfopen-report
//! --example postmortem_fixture -- DIR [realistic|ongoing|no-samples|one|big|hostile]`.
#[path = "../tests/common/fixture.rs"]
mod fixture;

use halfopen_report::plot::{plot, PlotFormat};
use halfopen_report::postmortem::{render, Format};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let which = args.next().unwrap_or_else(|| "realistic".into());
    let spec = match which.as_str() {
        "realistic" | "hostile" => fixture::Spec::default(),
        "ongoing" => fixture::Spec::ongoing(),
        "no-samples" => fixture::Spec::no_samples(),
        "one" => fixture::Spec::one(),
        "big" => fixture::big(50_000, 9),
        other => return Err(format!("unknown fixture {other}").into()),
    };
    let pm = if which == "hostile" {
        fixture::hostile()
    } else {
        fixture::build(&spec)
    };
    let now = fixture::now_ms(&spec);
    std::fs::create_dir_all(&dir)?;
    let t = std::time::Instant::now();
    for (f, ext) in [
        (Format::Text, "txt"),
        (Format::Markdown, "md"),
        (Format::Json, "json"),
        (Format::Html, "html"),
    ] {
        std::fs::write(dir.join(format!("{which}.{ext}")), render(&pm, f, now)?)?;
    }
    std::fs::write(dir.join(format!("{which}.svg")), plot(&pm, PlotFormat::Svg)?)?;
    std::fs::write(dir.join(format!("{which}.png")), plot(&pm, PlotFormat::Png)?)?;
    eprintln!("{which}: {} findings, written in {:?}", pm.findings.len(), t.elapsed());
    Ok(())
}
