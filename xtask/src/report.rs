//! `cargo xtask report`: turns the last saved bench results into the README's tables and two
//! charts under `docs/` (SVG, drawn with plotters).
//!
//! Reads `target/kv-results/peers.tsv` (from `cargo bench -p kv-benches --bench peers`) and
//! `target/kv-results/w1_curve.tsv` (from `--bench w1_curve`); writes `docs/peers.svg`,
//! `docs/w1-curve.svg`, and replaces the README's text between `<!-- report:peers -->` and
//! `<!-- /report:peers -->` (and the same for `w1-curve`).

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One results file: when it was measured, its column names and its rows.
struct Results {
    measured: String,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn read(path: &Path) -> Result<Results, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {} ({e}); run the bench that writes it first",
            path.display()
        )
    })?;
    let mut lines = text.lines();
    let measured = lines
        .next()
        .and_then(|l| l.strip_prefix("# "))
        .unwrap_or("")
        .to_string();
    let columns = lines
        .next()
        .ok_or("no header")?
        .split('\t')
        .map(String::from)
        .collect();
    let rows = lines
        .map(|l| l.split('\t').map(String::from).collect())
        .collect();
    Ok(Results {
        measured,
        columns,
        rows,
    })
}

fn number(cell: &str) -> f64 {
    cell.parse().unwrap_or(f64::NAN)
}

/// `1234567.8` as `1,234,568`; small numbers with three decimals.
fn format(value: f64) -> String {
    if !value.is_finite() {
        return "-".into();
    }
    if value == 0.0 {
        return "0".into();
    }
    if value.abs() < 100.0 {
        // At least three decimals, and three significant digits below 1: redb reopens in
        // under a millisecond, which three decimals of a second would show as 0.
        return format!("{value:.*}", decimals(value, 3).max(3));
    }
    let digits = (value.round() as i64).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && c != '-' && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The decimals that show `value` with `significant` significant digits.
fn decimals(value: f64, significant: i32) -> usize {
    if value == 0.0 || !value.is_finite() {
        return 0;
    }
    let magnitude = value.abs().log10().floor() as i32;
    (significant - 1 - magnitude).max(0) as usize
}

/// Replaces the README's text between the markers of `section`.
fn splice(readme: &str, section: &str, body: &str) -> Result<String, String> {
    let (open, close) = (
        format!("<!-- report:{section} -->"),
        format!("<!-- /report:{section} -->"),
    );
    let start = readme
        .find(&open)
        .ok_or(format!("README has no {open} marker"))?;
    let end = readme
        .find(&close)
        .ok_or(format!("README has no {close} marker"))?;
    Ok(format!(
        "{}{open}\n{body}{}",
        &readme[..start],
        &readme[end..]
    ))
}

fn peers(results: &Results, chart: &Path) -> Result<String, String> {
    let systems = &results.columns[3..];
    let kv = systems.iter().position(|s| s == "kv");
    let mut table = format!(
        "Results {}. Each bar: the system's figure relative to the best one on that workload (1 = best; for the time to reopen, less is better; memory is left out of the chart, as the peers keep their data on disk).\n\n![peers](docs/peers.svg)\n\n| workload | {} | kv ÷ best peer |\n|{}\n",
        results.measured,
        systems.join(" | "),
        " --- |".repeat(systems.len() + 2)
    );
    let mut bars: Vec<(String, Vec<f64>)> = Vec::new();
    for row in &results.rows {
        let (name, unit, higher) = (&row[0], &row[1], row[2] == "true");
        let values: Vec<f64> = row[3..].iter().map(|c| number(c)).collect();
        let better = |a: f64, b: f64| if higher { a.max(b) } else { a.min(b) };
        let peers = values
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != kv)
            .map(|(_, v)| *v)
            .filter(|v| v.is_finite() && *v > 0.0);
        let best_peer = peers.fold(f64::NAN, |a, b| if a.is_nan() { b } else { better(a, b) });
        let ratio = match kv.map(|i| values[i]) {
            Some(mine) if best_peer.is_finite() && mine > 0.0 => {
                let r = if higher {
                    mine / best_peer
                } else {
                    best_peer / mine
                };
                format!("{r:.*}×", decimals(r, 2).max(2))
            }
            _ => "-".into(),
        };
        let cells: Vec<String> = values
            .iter()
            .map(|v| {
                if *v < 0.0 {
                    "(on disk)".to_string()
                } else {
                    format!("{} {unit}", format(*v))
                }
            })
            .collect();
        table.push_str(&format!("| {name} | {} | {ratio} |\n", cells.join(" | ")));
        let positive: Vec<f64> = values.iter().map(|v| v.max(0.0)).collect();
        let best = positive
            .iter()
            .copied()
            .filter(|v| *v > 0.0)
            .fold(f64::NAN, |a, b| if a.is_nan() { b } else { better(a, b) });
        let relative = positive
            .iter()
            .map(|v| match (*v > 0.0, higher) {
                (false, _) => 0.0,
                (true, true) => v / best,
                (true, false) => best / v,
            })
            .collect();
        // Memory is left out of the chart: the peers keep their data on disk.
        if unit != "B/key" {
            bars.push((name.clone(), relative));
        }
    }
    draw_bars(chart, systems, &bars)?;
    Ok(table)
}

fn draw_bars(path: &Path, systems: &[String], bars: &[(String, Vec<f64>)]) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let groups = bars.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "relative to the best system on each workload (1 = best)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(40)
        .build_cartesian_2d(0f64..groups as f64, 0f64..1.3f64)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_labels(7)
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()
        .map_err(|e| fail(&e))?;
    // Workload names under their groups, where the plot puts each group's middle.
    for (g, (name, _)) in bars.iter().enumerate() {
        let (x, y) = chart.plotting_area().map_coordinate(&(g as f64 + 0.5, 0.0));
        // "W1 durable put, 8 writers" -> "W1: 8 writers"; names without a comma stay whole.
        let label = match name.split_once(", ") {
            Some((what, detail)) => {
                format!("{}: {detail}", what.split(' ').next().unwrap_or(what))
            }
            None => name.clone(),
        };
        let style = ("sans-serif", 13)
            .into_text_style(&root)
            .pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(label, (x, y + 8), style))
            .map_err(|e| fail(&e))?;
    }
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(214, 39, 40),
    ];
    let width = 0.8 / systems.len() as f64;
    for (s, system) in systems.iter().enumerate() {
        let color = palette[s % palette.len()];
        chart
            .draw_series(bars.iter().enumerate().map(|(g, (_, values))| {
                let x0 = g as f64 + 0.1 + s as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.9, values[s])], color.filled())
            }))
            .map_err(|e| fail(&e))?
            .label(system.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}

fn w1_curve(results: &Results, chart: &Path) -> Result<String, String> {
    let points: Vec<(f64, f64, f64, f64, f64)> = results
        .rows
        .iter()
        .map(|r| {
            (
                number(&r[0]),
                number(&r[1]),
                number(&r[2]),
                number(&r[3]),
                number(&r[4]),
            )
        })
        .collect();
    let (l1, l1p) = points.first().map_or((0.0, 0.0), |p| (p.2, p.3));
    let mut table = format!(
        "Results {}; L1 {} fsyncs/s, L1p {} in the same run.\n\n![W1 group commit](docs/w1-curve.svg)\n\n| writers | durable puts/s | × L1 | records per fsync |\n| --- | --- | --- | --- |\n",
        results.measured,
        format(l1),
        format(l1p)
    );
    for (writers, rate, l1, _, per_fsync) in &points {
        table.push_str(&format!(
            "| {writers} | {} | {:.2}× | {per_fsync:.1} |\n",
            format(*rate),
            rate / l1
        ));
    }
    let fail = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", chart.display());
    let root = SVGBackend::new(chart, (640, 380)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let top = points.iter().map(|p| p.1).fold(l1p, f64::max) * 1.1;
    let right = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let mut plot = ChartBuilder::on(&root)
        .caption(
            "W1: durable puts/s against writers (group commit)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..right + 2.0, 0f64..top)
        .map_err(|e| fail(&e))?;
    plot.configure_mesh()
        .x_desc("concurrent writers")
        .y_desc("durable puts per second")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format(*y))
        .draw()
        .map_err(|e| fail(&e))?;
    plot.draw_series(LineSeries::new(
        points.iter().map(|p| (p.0, p.1)),
        BLUE.stroke_width(2),
    ))
    .map_err(|e| fail(&e))?
    .label("kv, Durability::Sync")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    plot.draw_series(
        points
            .iter()
            .map(|p| Circle::new((p.0, p.1), 3, BLUE.filled())),
    )
    .map_err(|e| fail(&e))?;
    for (limit, label, color) in [
        (l1, "L1: write + fdatasync loop", RED),
        (l1p, "L1p: same, preallocated file", GREEN),
    ] {
        plot.draw_series(LineSeries::new(
            vec![(0.0, limit), (right + 2.0, limit)],
            color,
        ))
        .map_err(|e| fail(&e))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    plot.configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(table)
}

/// Runs the report from the workspace root.
pub fn report() -> Result<(), String> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let results = target.join("kv-results");
    std::fs::create_dir_all("docs").map_err(|e| format!("cannot create docs/: {e}"))?;
    let mut readme = std::fs::read_to_string("README.md").map_err(|e| format!("README.md: {e}"))?;
    let peers_table = peers(
        &read(&results.join("peers.tsv"))?,
        Path::new("docs/peers.svg"),
    )?;
    readme = splice(&readme, "peers", &peers_table)?;
    let curve_table = w1_curve(
        &read(&results.join("w1_curve.tsv"))?,
        Path::new("docs/w1-curve.svg"),
    )?;
    readme = splice(&readme, "w1-curve", &curve_table)?;
    std::fs::write("README.md", readme).map_err(|e| format!("README.md: {e}"))?;
    eprintln!("xtask: wrote docs/peers.svg, docs/w1-curve.svg and the README's tables");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_figures_keep_their_significant_digits() {
        assert_eq!(format(0.000375137), "0.000375");
        assert_eq!(format(0.251), "0.251");
        assert_eq!(format(56.868), "56.868");
        assert_eq!(format(1234567.8), "1,234,568");
        assert_eq!(
            format!("{:.*}", decimals(0.0015, 2).max(2), 0.0015),
            "0.0015"
        );
        assert_eq!(format!("{:.*}", decimals(3.52, 2).max(2), 3.52), "3.52");
    }
}
