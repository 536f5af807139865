//! The study's answers from its merged rows: every candidate x workload x SLO cell as a
//! long CSV, and per hardware and workload the feasibility map (which family wins each
//! cell, by how much, where only AFD is feasible), the Pareto front of throughput per GPU
//! against tokens/s per user, and the winning attention:FFN split (the design rules), as
//! Markdown and as SVG figures drawn by `report::plot` (`pareto-<hardware>-<workload>.svg`,
//! `splits-<hardware>-<workload>.svg`).
//!
//! Invariant: a pure function of the study and the rows (rows in point order, ties broken
//! by point order).

use super::{CELL_COLUMNS, Family, Study};
use crate::report::plot::{Mark, Plot, Series, Table, render_svg};

/// One candidate's result under one workload and cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellResult {
    /// Index of the candidate (its point).
    pub candidate: usize,
    pub hardware: String,
    pub family: Family,
    pub deployment: String,
    pub workload: String,
    pub ttft_limit_ms: f64,
    pub tpot_limit_ms: f64,
    /// `None`: not even the lowest rate probed met the cell's limits.
    pub best: Option<Best>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Best {
    pub req_per_s: f64,
    pub tokens_per_s_per_gpu: f64,
    pub tokens_per_s_per_user: f64,
    pub ttft_ms: f64,
    pub tpot_ms: f64,
}

/// What the report writes.
pub struct Report {
    pub cells: Vec<CellResult>,
    /// `cells.csv`: every candidate x workload x cell.
    pub csv: String,
    /// `report.md`.
    pub markdown: String,
    /// (file name, SVG text).
    pub figures: Vec<(String, String)>,
}

/// Reads the merged rows (`sweep::merge` of the study's folder) into cell results.
pub fn cell_results(study: &Study, merged_csv: &str) -> Result<Vec<CellResult>, String> {
    let t = Table::parse(merged_csv)?;
    let col = |name: &str| t.column(name).ok_or_else(|| t.no_column(name));
    let index = col("index")?;
    let cells = study.cells();
    let mut out = Vec::new();
    for (r, row) in t.rows.iter().enumerate() {
        let i: usize = row[index]
            .parse()
            .map_err(|_| format!("line {}: index `{}`", r + 2, row[index]))?;
        let c = study
            .candidates
            .get(i)
            .ok_or_else(|| format!("line {}: no candidate {i} in the study", r + 2))?;
        for w in &study.workloads {
            for slo in &cells {
                let prefix = format!("{}.{}", w.name, Study::cell_name(slo));
                let mut v = [None; 5];
                for (k, slot) in CELL_COLUMNS[..5].iter().zip(v.iter_mut()) {
                    let c = col(&format!("{prefix}.{k}"))?;
                    let text = &row[c];
                    if !text.is_empty() {
                        *slot =
                            Some(text.parse::<f64>().map_err(|_| {
                                format!("line {}: `{prefix}.{k}` is `{text}`", r + 2)
                            })?);
                    }
                }
                let best = match v {
                    [Some(a), Some(b), Some(c), Some(d), Some(e)] => Some(Best {
                        req_per_s: a,
                        tokens_per_s_per_gpu: b,
                        tokens_per_s_per_user: c,
                        ttft_ms: d,
                        tpot_ms: e,
                    }),
                    _ => None,
                };
                out.push(CellResult {
                    candidate: i,
                    hardware: study.hardware[c.hardware].name.clone(),
                    family: c.family,
                    deployment: study.describe(c),
                    workload: w.name.clone(),
                    ttft_limit_ms: slo.ttft_ms,
                    tpot_limit_ms: slo.tpot_ms,
                    best,
                });
            }
        }
    }
    Ok(out)
}

/// The best result of each family in one cell (hardware, workload, limits), by tokens/s
/// per GPU, families in [`Family::ALL`] order (absent: none feasible).
fn winners<'a>(cells: &[&'a CellResult]) -> Vec<(Family, &'a CellResult)> {
    let mut out = Vec::new();
    for f in Family::ALL {
        let best = cells
            .iter()
            .filter(|c| c.family == f)
            .filter_map(|c| c.best.map(|b| (b, *c)))
            // Highest throughput per GPU; ties to the earlier candidate.
            .fold(None::<(Best, &CellResult)>, |acc, (b, c)| match acc {
                Some((a, _)) if a.tokens_per_s_per_gpu >= b.tokens_per_s_per_gpu => acc,
                _ => Some((b, c)),
            });
        if let Some((_, c)) = best {
            out.push((f, c));
        }
    }
    out
}

/// The points no other beats on both tokens/s per user and tokens/s per GPU (higher is
/// better on both), by decreasing tokens/s per user.
pub fn pareto(points: &[(f64, f64, usize)]) -> Vec<(f64, f64, usize)> {
    let mut p = points.to_vec();
    p.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(b.1.total_cmp(&a.1))
            .then(a.2.cmp(&b.2))
    });
    let mut front: Vec<(f64, f64, usize)> = Vec::new();
    for x in p {
        if front.last().is_none_or(|l| x.1 > l.1) {
            front.push(x);
        }
    }
    front
}

fn fmt(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A figure of tokens/s per GPU against `x_label`, the study's budget and percentile under
/// the title.
fn figure(
    study: &Study,
    title: String,
    x_label: &str,
    series: Vec<Series>,
) -> Result<String, String> {
    render_svg(&Plot {
        title,
        subtitle: vec![
            format!("{} GPUs", study.gpus),
            format!("p{} limits", study.percentile),
        ],
        x_label: x_label.into(),
        y_label: "tokens/s per GPU".into(),
        log_x: false,
        log_y: false,
        series,
    })
}

/// Builds the report from the cell results.
pub fn build(study: &Study, cells: Vec<CellResult>) -> Result<Report, String> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "hardware",
        "family",
        "deployment",
        "workload",
        "ttft_limit_ms",
        "tpot_limit_ms",
        "feasible",
        "best_req_per_s",
        "tokens_per_s_per_gpu",
        "tokens_per_s_per_user",
        "ttft_ms",
        "tpot_ms",
    ])
    .expect("in-memory write");
    for c in &cells {
        let b = c.best;
        let n = |f: fn(&Best) -> f64| b.as_ref().map_or(String::new(), |b| format!("{}", f(b)));
        csv.write_record([
            c.hardware.clone(),
            c.family.as_str().to_string(),
            c.deployment.clone(),
            c.workload.clone(),
            format!("{}", c.ttft_limit_ms),
            format!("{}", c.tpot_limit_ms),
            b.is_some().to_string(),
            n(|b| b.req_per_s),
            n(|b| b.tokens_per_s_per_gpu),
            n(|b| b.tokens_per_s_per_user),
            n(|b| b.ttft_ms),
            n(|b| b.tpot_ms),
        ])
        .expect("in-memory write");
    }
    let csv = String::from_utf8(csv.into_inner().expect("flush")).expect("utf-8");

    let mut md = String::new();
    let line = |md: &mut String, s: String| {
        md.push_str(&s);
        md.push('\n');
    };
    line(&mut md, format!("# Study `{}`", study.name));
    line(&mut md, String::new());
    if let Some(d) = &study.description {
        line(&mut md, d.trim().to_string());
        line(&mut md, String::new());
    }
    line(
        &mut md,
        format!(
            "{} on a budget of {} GPUs; p{} limits; {} requests per probe, seed {}, {} level; \
             {} candidates ran, {} excluded.",
            study.model,
            study.gpus,
            study.percentile,
            study.requests,
            study.seed,
            study.level,
            study.candidates.len(),
            study.excluded.len()
        ),
    );
    if !study.excluded.is_empty() {
        line(&mut md, String::new());
        line(&mut md, "Excluded candidates:".into());
        line(&mut md, String::new());
        for (c, why) in &study.excluded {
            line(
                &mut md,
                format!(
                    "- {} on {}: {}",
                    study.describe(c),
                    study.hardware[c.hardware].name,
                    why.lines().next().unwrap_or_default()
                ),
            );
        }
    }
    let mut figures = Vec::new();
    // Design rules: (workload, hardware) -> the AFD split that wins the most cells.
    let mut rules: Vec<(String, String, String, usize, usize)> = Vec::new();
    for h in &study.hardware {
        for w in &study.workloads {
            let here: Vec<&CellResult> = cells
                .iter()
                .filter(|c| c.hardware == h.name && c.workload == w.name)
                .collect();
            line(&mut md, String::new());
            line(&mut md, format!("## {} on {}", w.name, h.name));
            line(&mut md, String::new());
            line(
                &mut md,
                "Feasibility map: the family with the most tokens/s per GPU in each cell, its \
                 deployment and its lead over the best other family (`AFD only`: no other \
                 family meets the limits; `-`: none does)."
                    .into(),
            );
            line(&mut md, String::new());
            let mut head = "| TTFT \\ TPOT |".to_string();
            let mut rule = "|---|".to_string();
            for p in &study.tpot_ms {
                head.push_str(&format!(" {p} ms |"));
                rule.push_str("---|");
            }
            line(&mut md, head);
            line(&mut md, rule);
            let mut afd_wins: Vec<String> = Vec::new();
            for &t in &study.ttft_ms {
                let mut row = format!("| {t} ms |");
                for &p in &study.tpot_ms {
                    let cell: Vec<&CellResult> = here
                        .iter()
                        .filter(|c| c.ttft_limit_ms == t && c.tpot_limit_ms == p)
                        .copied()
                        .collect();
                    let mut win = winners(&cell);
                    win.sort_by(|a, b| {
                        let (x, y) = (a.1.best.expect("feasible"), b.1.best.expect("feasible"));
                        y.tokens_per_s_per_gpu.total_cmp(&x.tokens_per_s_per_gpu)
                    });
                    let text = match win.as_slice() {
                        [] => "-".to_string(),
                        [(f, c)] => format!(
                            "**{}** {} tok/s/GPU ({}){}",
                            f.as_str(),
                            fmt(c.best.expect("feasible").tokens_per_s_per_gpu),
                            c.deployment,
                            if *f == Family::PdAfd {
                                ", AFD only"
                            } else {
                                ""
                            }
                        ),
                        [(f, c), (g, d), ..] => {
                            let (a, b) = (
                                c.best.expect("feasible").tokens_per_s_per_gpu,
                                d.best.expect("feasible").tokens_per_s_per_gpu,
                            );
                            format!(
                                "**{}** {} tok/s/GPU ({}), +{:.0} % over {}",
                                f.as_str(),
                                fmt(a),
                                c.deployment,
                                (a / b - 1.0) * 100.0,
                                g.as_str()
                            )
                        }
                    };
                    if let Some((Family::PdAfd, c)) = win.first() {
                        afd_wins.push(c.deployment.clone());
                    }
                    row.push_str(&format!(" {text} |"));
                }
                line(&mut md, row);
            }
            // The AFD split that wins most cells among the AFD candidates.
            let mut split_wins: Vec<(String, usize)> = Vec::new();
            let mut afd_cells = 0;
            for &t in &study.ttft_ms {
                for &p in &study.tpot_ms {
                    let cell: Vec<&CellResult> = here
                        .iter()
                        .filter(|c| c.ttft_limit_ms == t && c.tpot_limit_ms == p)
                        .filter(|c| c.family == Family::PdAfd)
                        .copied()
                        .collect();
                    if let Some((_, c)) = winners(&cell).first() {
                        afd_cells += 1;
                        match split_wins.iter_mut().find(|s| s.0 == c.deployment) {
                            Some(s) => s.1 += 1,
                            None => split_wins.push((c.deployment.clone(), 1)),
                        }
                    }
                }
            }
            split_wins.sort_by_key(|s| std::cmp::Reverse(s.1));
            if let Some((d, n)) = split_wins.first() {
                rules.push((w.name.clone(), h.name.clone(), d.clone(), *n, afd_cells));
            }
            // Pareto fronts, one per TTFT limit.
            line(&mut md, String::new());
            line(
                &mut md,
                "Pareto front (tokens/s per user = 1000 / mean TPOT at the best rate; every \
                 candidate's best rate under each TPOT limit counts):"
                    .into(),
            );
            line(&mut md, String::new());
            line(
                &mut md,
                "| TTFT limit | tok/s/user | tok/s/GPU | deployment | TPOT limit |".into(),
            );
            line(&mut md, "|---|---|---|---|---|".into());
            let mut series = Vec::new();
            for &t in &study.ttft_ms {
                let pts: Vec<(f64, f64, usize)> = here
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.ttft_limit_ms == t)
                    .filter_map(|(i, c)| {
                        c.best
                            .map(|b| (b.tokens_per_s_per_user, b.tokens_per_s_per_gpu, i))
                    })
                    .collect();
                let front = pareto(&pts);
                for &(x, y, i) in &front {
                    line(
                        &mut md,
                        format!(
                            "| {t} ms | {} | {} | {} | {} ms |",
                            fmt(x),
                            fmt(y),
                            here[i].deployment,
                            here[i].tpot_limit_ms
                        ),
                    );
                }
                if !front.is_empty() {
                    series.push(Series {
                        name: format!("Pareto front, TTFT <= {t} ms"),
                        points: front.iter().map(|&(x, y, _)| (x, y)).collect(),
                        mark: Mark::Lines,
                    });
                }
            }
            for f in Family::ALL {
                let pts: Vec<(f64, f64)> = here
                    .iter()
                    .filter(|c| c.family == f)
                    .filter_map(|c| {
                        c.best
                            .map(|b| (b.tokens_per_s_per_user, b.tokens_per_s_per_gpu))
                    })
                    .collect();
                if !pts.is_empty() {
                    series.push(Series {
                        name: f.as_str().to_string(),
                        points: pts,
                        mark: Mark::Scatter,
                    });
                }
            }
            if !series.is_empty() {
                let title = format!("{}: {} on {}", study.name, w.name, h.name);
                figures.push((
                    format!("pareto-{}-{}.svg", h.name, w.name),
                    figure(study, title, "tokens/s per user", series)?,
                ));
            }
            // The AFD splits against the TPOT limit, at each TTFT limit: which split wins
            // where.
            let mut series = Vec::new();
            for &t in &study.ttft_ms {
                let mut names: Vec<&str> = Vec::new();
                for c in here.iter().filter(|c| c.family == Family::PdAfd) {
                    if !names.contains(&c.deployment.as_str()) {
                        names.push(&c.deployment);
                    }
                }
                for d in names {
                    let pts: Vec<(f64, f64)> = here
                        .iter()
                        .filter(|c| c.deployment == d && c.ttft_limit_ms == t)
                        .filter_map(|c| c.best.map(|b| (c.tpot_limit_ms, b.tokens_per_s_per_gpu)))
                        .collect();
                    if !pts.is_empty() {
                        series.push(Series {
                            name: format!("{d}, TTFT <= {t} ms"),
                            points: pts,
                            mark: Mark::Lines,
                        });
                    }
                }
            }
            if !series.is_empty() {
                let title = format!("{}: AFD splits, {} on {}", study.name, w.name, h.name);
                figures.push((
                    format!("splits-{}-{}.svg", h.name, w.name),
                    figure(study, title, "TPOT limit (ms)", series)?,
                ));
            }
        }
    }
    line(&mut md, String::new());
    line(
        &mut md,
        "## Design rules: the winning attention:FFN split".into(),
    );
    line(&mut md, String::new());
    line(
        &mut md,
        "Among the P/D + AFD candidates, the split with the most tokens/s per GPU in the most \
         cells where one is feasible:"
            .into(),
    );
    line(&mut md, String::new());
    line(
        &mut md,
        "| workload | hardware | split | cells won |".into(),
    );
    line(&mut md, "|---|---|---|---|".into());
    for (w, h, d, n, of) in &rules {
        line(&mut md, format!("| {w} | {h} | {d} | {n} of {of} |"));
    }
    Ok(Report {
        cells,
        csv,
        markdown: md,
        figures,
    })
}
