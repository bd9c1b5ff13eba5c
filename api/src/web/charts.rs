//! Charts drawn on the server as SVG: no script, no library, nothing to download, and
//! readable by a screen reader (each chart has a title and a text alternative; the figures
//! are in a table beside it).

use maud::{Markup, html};

/// A line of rates (0–1) over labelled points, with the target as a dashed line.
pub(crate) fn trend(label: &str, points: &[(String, Option<f64>)], target: Option<f64>) -> Markup {
    const W: f64 = 320.0;
    const H: f64 = 90.0;
    const PAD: f64 = 6.0;
    let top = points
        .iter()
        .filter_map(|(_, v)| *v)
        .chain(target)
        .fold(0.0_f64, f64::max)
        .max(0.05)
        * 1.1;
    let n = points.len().max(2) as f64 - 1.0;
    let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / n;
    let y = |v: f64| H - PAD - (H - 2.0 * PAD) * (v / top).clamp(0.0, 1.0);
    // Gaps where a month has no data: one polyline per run of points.
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (i, (_, v)) in points.iter().enumerate() {
        match v {
            Some(v) => runs.last_mut().expect("one run").push((x(i), y(*v))),
            None => {
                if !runs.last().expect("one run").is_empty() {
                    runs.push(Vec::new());
                }
            }
        }
    }
    let path = |run: &[(f64, f64)]| {
        run.iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        svg class="chart" viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label)
            preserveAspectRatio="none" {
            title { (label) }
            line class="axis" x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) {}
            @if let Some(t) = target {
                line class="target-line" x1=(PAD) y1=(format!("{:.1}", y(t))) x2=(W - PAD)
                    y2=(format!("{:.1}", y(t))) {}
            }
            @for run in runs.iter().filter(|r| !r.is_empty()) {
                @if run.len() == 1 {
                    circle class="point" cx=(format!("{:.1}", run[0].0)) cy=(format!("{:.1}", run[0].1)) r="2.5" {}
                } @else {
                    polyline class="line" points=(path(run)) {}
                }
            }
        }
    }
}

/// A progress bar: `done` of 1, with the target as a tick.
pub(crate) fn progress(label: &str, done: Option<f64>, target: Option<f64>) -> Markup {
    const W: f64 = 120.0;
    let w = done.map_or(0.0, |d| (d.clamp(0.0, 1.0) * W * 10.0).round() / 10.0);
    html! {
        svg class="bar" viewBox=(format!("0 0 {W} 10")) role="img" aria-label=(label)
            preserveAspectRatio="none" {
            title { (label) }
            rect class="bar-bg" x="0" y="0" width=(W) height="10" {}
            rect class="bar-done" x="0" y="0" width=(w) height="10" {}
            @if let Some(t) = target {
                line class="bar-target" x1=(t.clamp(0.0, 1.0) * W) y1="0" x2=(t.clamp(0.0, 1.0) * W) y2="10" {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_in_the_data_is_a_gap_in_the_line() {
        let points: Vec<(String, Option<f64>)> = vec![
            ("01".into(), Some(0.1)),
            ("02".into(), Some(0.2)),
            ("03".into(), None),
            ("04".into(), Some(0.3)),
        ];
        let svg = trend("online <rate>", &points, Some(0.3)).into_string();
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert!(svg.contains("class=\"target-line\""));
        assert!(
            svg.contains("online &lt;rate&gt;"),
            "labels are escaped: {svg}"
        );
    }

    #[test]
    fn progress_is_clamped() {
        let svg = progress("p", Some(1.7), None).into_string();
        assert!(svg.contains("width=\"120\""), "{svg}");
    }
}
