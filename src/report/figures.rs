//! The standard figures of a sweep (`afdsim report`): each names the columns it needs, and a
//! figure whose columns the table lacks is skipped with those columns named, never drawn
//! half-empty.
//!
//! Column names are those of a merged sweep: scenario keys for parameters, flattened metric
//! names for results. The AFD names are those an `[afd]` run's `--json` metrics flatten to
//! (`tokens_per_s_per_gpu`, `tpot_ms`, `comm_time_fraction_exposed`, and `micro_batches`
//! beside the swept key `afd.micro_batches`), checked against a real AFD sweep row by
//! `tests/afd.rs`.

use super::plot::{Mark, Plot, Series, Table, axis_label, render_svg, series_of};

/// Where link bandwidth is read from, first present and varying wins.
pub const BANDWIDTH_KEYS: &[&str] = &["fabric.nic.rate_gbps"];
/// The micro-batches in flight of an AFD pipeline.
/// The swept scenario key first; an AFD row also carries the value as a metric.
pub const MICRO_BATCH_KEYS: &[&str] = &["afd.micro_batches", "micro_batches"];
pub const THROUGHPUT: &str = "tokens_per_s_per_gpu";
pub const TPOT: &str = "tpot_ms";
/// The share of the step on its critical path spent in transfers.
pub const EXPOSED_COMM: &str = "comm_time_fraction_exposed";

/// What a figure plots.
#[derive(Clone, Debug)]
pub struct Figure {
    pub file: &'static str,
    pub title: &'static str,
    /// Candidates for x: the first the table has (and that varies) is used.
    pub x: &'static [&'static str],
    pub y: &'static str,
    pub log_x: bool,
    pub log_y: bool,
    /// Lines per series, or a throughput–latency Pareto front (x lower and y higher better).
    pub pareto: bool,
}

pub const FIGURES: &[Figure] = &[
    Figure {
        file: "bandwidth-throughput.svg",
        title: "Throughput per GPU vs link bandwidth",
        x: BANDWIDTH_KEYS,
        y: THROUGHPUT,
        log_x: true,
        log_y: false,
        pareto: false,
    },
    Figure {
        file: "bandwidth-tpot.svg",
        title: "Time per output token vs link bandwidth",
        x: BANDWIDTH_KEYS,
        y: TPOT,
        log_x: true,
        log_y: false,
        pareto: false,
    },
    Figure {
        file: "pareto-throughput-tpot.svg",
        title: "Throughput–latency Pareto front",
        x: &[TPOT],
        y: THROUGHPUT,
        log_x: false,
        log_y: false,
        pareto: true,
    },
    Figure {
        file: "exposed-comm-micro-batches.svg",
        title: "Exposed communication (share of the step) vs micro-batches",
        x: MICRO_BATCH_KEYS,
        y: EXPOSED_COMM,
        log_x: false,
        log_y: false,
        pareto: false,
    },
    Figure {
        file: "bandwidth-makespan.svg",
        title: "Makespan vs link bandwidth",
        x: BANDWIDTH_KEYS,
        y: "makespan_us",
        log_x: true,
        log_y: true,
        pareto: false,
    },
    Figure {
        file: "bandwidth-message-p99.svg",
        title: "p99 message time vs link bandwidth",
        x: BANDWIDTH_KEYS,
        y: "message_time_us.p99",
        log_x: true,
        log_y: true,
        pareto: false,
    },
];

/// One figure's outcome: its SVG, or why it was skipped.
pub struct Made {
    pub file: &'static str,
    pub svg: Result<String, String>,
}

/// Draws every standard figure the table has the columns for.
pub fn standard_figures(table: &Table) -> Vec<Made> {
    FIGURES
        .iter()
        .map(|f| Made {
            file: f.file,
            svg: figure(table, f),
        })
        .collect()
}

fn figure(table: &Table, f: &Figure) -> Result<String, String> {
    let x =
        f.x.iter()
            .copied()
            .find(|c| table.column(c).is_some())
            .ok_or_else(|| {
                let mut missing = vec![format!("x: one of {}", f.x.join(", "))];
                if table.column(f.y).is_none() {
                    missing.push(format!("y: {}", f.y));
                }
                format!("needs columns the table lacks ({})", missing.join("; "))
            })?;
    if table.column(f.y).is_none() {
        return Err(format!(
            "needs columns the table lacks (y: {}); x `{x}` is there",
            f.y
        ));
    }
    if !f.pareto && !table.varies(x) {
        return Err(format!(
            "`{x}` takes one value only: nothing to plot against"
        ));
    }
    // Series: the other swept parameters that vary; seeds are averaged.
    let series: Vec<String> = table
        .param_columns()
        .into_iter()
        .filter(|c| c != x && table.varies(c))
        .collect();
    let seeds = table.column("seed").map_or(1, |c| {
        let mut v: Vec<&str> = table.rows.iter().map(|r| r[c].as_str()).collect();
        v.sort();
        v.dedup();
        v.len()
    });
    let title = if seeds > 1 {
        format!("{} (mean over {seeds} seeds)", f.title)
    } else {
        f.title.to_string()
    };
    let series: Vec<Series> = if f.pareto {
        let all = series_of(table, x, f.y, &[], true, Mark::Scatter)?;
        let mut points = all.into_iter().flat_map(|s| s.points).collect::<Vec<_>>();
        let front = pareto_front(&mut points);
        vec![
            Series {
                name: "sweep points".into(),
                points,
                mark: Mark::Scatter,
            },
            Series {
                name: "Pareto front".into(),
                points: front,
                mark: Mark::Lines,
            },
        ]
    } else {
        let names: Vec<&str> = series.iter().map(String::as_str).collect();
        series_of(table, x, f.y, &names, seeds > 1, Mark::Lines)?
    };
    for (log, col, axis) in [(f.log_x, x, "x"), (f.log_y, f.y, "y")] {
        if log {
            table.check_positive(col, &format!("the log {axis} axis"))?;
        }
    }
    render_svg(&Plot {
        title,
        // The swept keys fixed over the table change what the figure means (12 layers make
        // a TPOT of 13 ms): name them under the title.
        subtitle: table.fixed_overrides(&[x, f.y]),
        x_label: axis_label(x),
        y_label: axis_label(f.y),
        log_x: f.log_x,
        log_y: f.log_y,
        series,
    })
}

/// The points no other point beats on both x (lower is better) and y (higher is better),
/// in x order.
pub fn pareto_front(points: &mut [(f64, f64)]) -> Vec<(f64, f64)> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for &p in points.iter() {
        if front.last().is_none_or(|l| p.1 > l.1) {
            front.push(p);
        }
    }
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_keeps_the_undominated() {
        let mut p = vec![
            (3.0, 5.0),
            (1.0, 1.0),
            (2.0, 4.0),
            (2.5, 3.0),
            (4.0, 5.0),
            (1.0, 2.0),
        ];
        assert_eq!(pareto_front(&mut p), [(1.0, 2.0), (2.0, 4.0), (3.0, 5.0)]);
    }

    #[test]
    fn figures_name_what_they_lack() {
        let t = Table::parse(
            "point,index,fabric.nic.rate_gbps,seed,scenario,level,afdsim_version,makespan_us\n\
             a,0,100,1,s,packet,v,10\nb,1,200,1,s,packet,v,6\n",
        )
        .unwrap();
        let made = standard_figures(&t);
        let get = |f: &str| made.iter().find(|m| m.file == f).unwrap();
        assert!(get("bandwidth-makespan.svg").svg.is_ok());
        let e = get("bandwidth-tpot.svg").svg.as_ref().unwrap_err();
        assert!(e.contains("y: tpot_ms"), "{e}");
        let e = get("exposed-comm-micro-batches.svg")
            .svg
            .as_ref()
            .unwrap_err();
        assert!(
            e.contains("one of afd.micro_batches") && e.contains("comm_time_fraction_exposed"),
            "{e}"
        );
        let e = get("pareto-throughput-tpot.svg").svg.as_ref().unwrap_err();
        assert!(e.contains("tpot_ms"), "{e}");
    }
}
