//! `lab compare`: runs every variant of a matrix (see [`crate::matrix`]) on the same
//! seeded workload, interleaved and repeated, and writes a report folder.
//!
//! # What it does
//!
//! 1. Reads and validates the matrix, every derived run configuration and every binary
//!    it needs before anything runs (`feed*` and `engine*` for two-process variants,
//!    `pipeline*` for one-process ones, [`Binaries::of`]): a bad matrix or configuration
//!    is bad input (exit code 2), a missing binary a failure (exit code 1).
//! 2. Runs the variants interleaved: round 1 runs every variant of every block once, in
//!    order (A B C … A B C …), then round 2, … up to `repetitions`. Each run is a
//!    `lab run` ([`run::execute`]) into its own folder
//!    `runs/b<block>-v<variant>-<slug>/r<round>`, with the children's output kept in
//!    `feed.log` and `engine.log` there (`pipeline.log` for one process; not relayed),
//!    and lab's own notes and the run's table in `lab.log`. A progress bar on stderr shows the runs done and an estimate of
//!    the time left (plain lines when stderr is not a terminal).
//! 3. A run that fails is recorded as failed, with its error, and the comparison goes
//!    on. SIGINT or SIGTERM stops the run in progress and the comparison; the report then
//!    covers the runs done.
//! 4. Writes `report.md` ([`crate::report`]), one SVG plot per block and stage under
//!    `plots/` (percentile distributions decoded from each run's `engine.hlog`, the
//!    repetitions of a variant merged; see [`crate::hlog`] for which intervals count),
//!    `verdicts.json` (every verdict of the report as data: block, variant, metric,
//!    ratio, interval, halves, verdict) and `matrix.toml`, a copy of the matrix.
//!
//! Exit code: 0 when every run finished, 1 when one failed or the comparison was
//! interrupted (the report is written either way), 2 for bad input.

use crate::cli::CompareArgs;
use crate::hlog;
use crate::matrix::{Matrix, MatrixOverrides, RUN_OVERHEAD};
use crate::plot::{self, Series};
use crate::report::{self, BlockInfo, Meta, PlotRef, RunRecord};
use crate::run::{self, Binaries, Output};
use anyhow::{bail, Context, Result};
use common::failure::Failure;
use common::files::{self, Kind};
use common::latency::{fixed_histogram, Stage, HIGHEST_NS, STAGES};
use common::units::{fmt_duration, utc_stamp};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use signal_hook::iterator::Signals;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The copy of the matrix in the report folder.
const MATRIX_COPY: &str = "matrix.toml";
/// The report in the report folder.
const REPORT: &str = "report.md";
/// Every verdict of the report as data.
const VERDICTS: &str = "verdicts.json";
/// What `lab compare` writes at the top of its report folder, with each file's kind
/// (runs and plots go into folders of their own below it).
const COMPARE_OUTPUTS: [(&str, Kind); 2] = [(MATRIX_COPY, Kind::Text), (REPORT, Kind::Markup)];

/// Runs `lab compare`.
pub fn compare(args: &CompareArgs) -> Result<()> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let allowed = common::cores::allowed_cores();
    let cli = MatrixOverrides {
        repetitions: args.repetitions,
        duration_s: args.duration,
    };
    let matrix = Matrix::load(&args.matrix, &cli, &allowed).map_err(Failure::bad_input)?;
    let bin_dir = run::bin_dir(args.bin_dir.as_deref())?;
    let bins = matrix
        .blocks
        .iter()
        .map(|b| {
            b.variants
                .iter()
                .map(|v| Binaries::of(&bin_dir, v))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let out = match &args.out {
        Some(d) => {
            common::runargs::prepare_out_dir(d, &COMPARE_OUTPUTS).map_err(Failure::bad_input)?;
            d.clone()
        }
        None => files::create_fresh_dir(
            &Path::new(run::RESULTS_DIR).join(format!("compare-{}", utc_stamp(started_at))),
        )?,
    };
    let header = Kind::Text.header(&format!(
        "the matrix as run, from {}",
        matrix.path.display()
    ));
    files::write(
        &out.join(MATRIX_COPY),
        Kind::Text,
        format!("{header}{}", matrix.text).as_bytes(),
    )?;
    let mut signals = Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .context("cannot install the SIGINT/SIGTERM handler")?;

    let total = matrix.runs();
    let variants: usize = matrix.blocks.iter().map(|b| b.variants.len()).sum();
    eprintln!(
        "lab compare: {total} runs ({} repetition{} of {variants} variants in {} block{}), estimated {}; report in {}",
        matrix.repetitions,
        plural(matrix.repetitions as usize),
        matrix.blocks.len(),
        plural(matrix.blocks.len()),
        fmt_duration(matrix.estimate(RUN_OVERHEAD)),
        out.display()
    );
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} runs · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(500));

    let mut records: Vec<RunRecord> = Vec::with_capacity(total);
    let mut interrupted = None;
    // Measured overhead per run beyond its duration, for the estimate of time left.
    let mut overheads: Vec<f64> = Vec::new();
    let mut done = 0usize;
    // The hot cores of the first block's configuration: the noise probe spins them at the
    // start of every round.
    let hot_cores = {
        let c = &matrix.blocks[0].plans[0].config.cores;
        [c.feed_md, c.engine_hot]
    };
    let mut noise = Vec::new();
    'rounds: for rep in 1..=matrix.repetitions {
        if matrix.noise_s > 0.0 {
            bar.set_message(format!(
                "round {rep}: probing the noise on cores {hot_cores:?}"
            ));
            noise.push((
                rep,
                crate::noise::probe(&hot_cores, matrix.noise_s, "at the start of the round"),
            ));
        }
        for (bi, block) in matrix.blocks.iter().enumerate() {
            for (vi, variant) in block.variants.iter().enumerate() {
                if let Some(sig) = signals.pending().next() {
                    interrupted = Some(signal_name(sig));
                    break 'rounds;
                }
                let left = time_left(&matrix, done, &overheads);
                bar.set_message(format!(
                    "about {} left · round {rep}/{} · block {} V{} {}",
                    fmt_duration(left),
                    matrix.repetitions,
                    bi + 1,
                    vi + 1,
                    variant.label()
                ));
                let rel = format!("runs/b{}-v{:02}-{}/r{rep}", bi + 1, vi + 1, variant.slug());
                let dir = out.join(&rel);
                let t0 = Instant::now();
                let result = common::runargs::prepare_out_dir(&dir, &run::RUN_OUTPUTS)
                    .map_err(anyhow::Error::from)
                    .and_then(|()| {
                        run::execute(
                            &block.plans[vi],
                            &bins[bi][vi],
                            &dir,
                            Output::Logs,
                            &mut signals,
                            None,
                            &[block.plans[vi].config.cores.engine_hot],
                        )
                    });
                let elapsed = t0.elapsed();
                overheads.push((elapsed.as_secs_f64() - block.duration_s).max(0.0));
                done += 1;
                let result = match result {
                    Ok(ran) => match ran.interrupted_by {
                        Some(sig) => {
                            interrupted = Some(sig);
                            Err(format!("interrupted by {sig}"))
                        }
                        None => Ok(ran.summary),
                    },
                    Err(e) => Err(format!("{e:#}")),
                };
                bar.inc(1);
                if bar.is_hidden() {
                    eprintln!(
                        "lab compare: run {done}/{total} {} in {:.1} s: {rel} ({}); about {} left",
                        if result.is_ok() { "done" } else { "FAILED" },
                        elapsed.as_secs_f64(),
                        variant.label(),
                        fmt_duration(time_left(&matrix, done, &overheads))
                    );
                } else if let Err(e) = &result {
                    bar.println(format!("lab compare: {rel} failed: {e}"));
                }
                records.push(RunRecord {
                    block: bi,
                    variant: vi,
                    rep,
                    dir: rel,
                    result,
                });
                if interrupted.is_some() {
                    break 'rounds;
                }
            }
        }
    }
    bar.finish_and_clear();

    let (plots, plot_notes) = write_plots(&out, &matrix, &records)?;
    let infos: Vec<BlockInfo> = matrix
        .blocks
        .iter()
        .map(|b| BlockInfo {
            name: b.name.clone(),
            config: b.config.display().to_string(),
            duration_s: b.duration_s,
            warmup_s: b.warmup_s,
            seed: b.seed,
            variants: b.variants.clone(),
            baseline: b.baseline,
        })
        .collect();
    let meta = Meta {
        matrix: matrix.path.display().to_string(),
        started_utc: utc_stamp(started_at),
        wall: started.elapsed(),
        repetitions: matrix.repetitions,
        interrupted: interrupted.map(|sig| {
            format!(
                "interrupted by {sig} after {} of {total} runs",
                records.len()
            )
        }),
        plots,
        plot_notes,
        metrics: matrix.metrics.clone(),
        noise,
    };
    let md = report::render(&meta, &infos, &records);
    let report_path = out.join(REPORT);
    let header = Kind::Markup.header(&format!(
        "report of lab compare on {}",
        matrix.path.display()
    ));
    files::write(
        &report_path,
        Kind::Markup,
        format!("{header}{md}").as_bytes(),
    )?;
    files::write_json(
        &out.join(VERDICTS),
        &report::VerdictsFile {
            matrix: matrix.path.display().to_string(),
            git_rev: common::manifest::GIT_REV,
            verdicts: report::verdicts(&meta, &infos, &records),
        },
    )?;
    // The verdict on stdout, for whoever runs this by hand.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", verdict_section(&md));
    let _ = stdout.flush();
    let failed = records.iter().filter(|r| r.result.is_err()).count();
    eprintln!(
        "lab compare: wrote {} ({} runs, {failed} failed) in {}",
        report_path.display(),
        records.len(),
        fmt_duration(started.elapsed())
    );
    if let Some(sig) = interrupted {
        bail!(
            "the comparison was interrupted by {sig}; {} covers the runs done",
            report_path.display()
        );
    }
    if failed > 0 {
        bail!(
            "{failed} of {total} runs failed; {} says which and why",
            report_path.display()
        );
    }
    Ok(())
}

/// The report's verdict section (its heading to the next heading).
fn verdict_section(md: &str) -> &str {
    let Some(start) = md.find("## Verdict") else {
        return "";
    };
    let rest = &md[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].trim_end()
}

/// Estimated time for the runs after the first `done`: each run's duration plus the
/// mean measured overhead so far ([`RUN_OVERHEAD`] before the first run ends).
fn time_left(matrix: &Matrix, done: usize, overheads: &[f64]) -> Duration {
    let overhead = if overheads.is_empty() {
        RUN_OVERHEAD.as_secs_f64()
    } else {
        overheads.iter().sum::<f64>() / overheads.len() as f64
    };
    let order: Vec<f64> = matrix
        .blocks
        .iter()
        .flat_map(|b| b.variants.iter().map(|_| b.duration_s))
        .collect();
    let total = matrix.runs();
    let left: f64 = (done..total)
        .map(|i| order[i % order.len()] + overhead)
        .sum();
    Duration::from_secs_f64(left.max(0.0))
}

/// Decodes every finished run's `engine.hlog`, merges the repetitions of each variant,
/// and writes `plots/b<block>-<stage>.svg`. Returns the plots and notes on how they
/// were made.
fn write_plots(
    out: &Path,
    matrix: &Matrix,
    records: &[RunRecord],
) -> Result<(Vec<PlotRef>, Vec<String>)> {
    files::create_dir_all(&out.join("plots"))?;
    let mut plots = Vec::new();
    let mut notes = vec![
        "Each plot line is one variant: the post-warm-up intervals of its runs' `engine.hlog`, all repetitions merged into one histogram. The engine tags warm-up intervals `warmup_<stage>` and they are left out. Where a plot's sample count differs from the summaries', it is said below.".to_string(),
    ];
    let mut mismatched = Vec::new();
    for (bi, block) in matrix.blocks.iter().enumerate() {
        // Per variant, per stage: the merged histogram.
        let mut merged: Vec<BTreeMap<String, Histogram<u64>>> =
            vec![BTreeMap::new(); block.variants.len()];
        for r in records.iter().filter(|r| r.block == bi) {
            let Ok(summary) = &r.result else { continue };
            let path = out.join(&r.dir).join("engine.hlog");
            let expected: BTreeMap<String, u64> = summary
                .latency_ns
                .iter()
                .map(|(k, p)| (k.clone(), p.count))
                .collect();
            let decoded = std::fs::read(&path)
                .with_context(|| format!("cannot read {}", path.display()))
                .and_then(|bytes| hlog::measured(&bytes));
            let stages = match decoded {
                Ok(s) => s,
                Err(e) => {
                    notes.push(format!("`{}` left out of the plots: {e:#}.", r.dir));
                    continue;
                }
            };
            for (stage, hist) in stages {
                match expected.get(&stage) {
                    Some(&n) if n != hist.len() => mismatched.push(format!(
                        "`{}` {stage}: {} in the log, {n} in the summary",
                        r.dir,
                        hist.len()
                    )),
                    _ => {}
                }
                let slot = merged[r.variant]
                    .entry(stage)
                    .or_insert_with(|| fixed_histogram(HIGHEST_NS));
                slot.add(&hist)
                    .context("cannot merge interval histograms")?;
            }
        }
        for stage in STAGES.map(Stage::name) {
            let empty = fixed_histogram(HIGHEST_NS);
            let series: Vec<Series> = block
                .variants
                .iter()
                .enumerate()
                .map(|(vi, v)| Series {
                    label: format!("V{} {}", vi + 1, v.label()),
                    hist: merged[vi].get(stage).unwrap_or(&empty),
                })
                .collect();
            let title = format!(
                "{stage} latency by percentile · block {}: {}",
                bi + 1,
                block.name
            );
            let svg = plot::percentile_svg(&title, &series)?;
            let file = format!("plots/b{}-{stage}.svg", bi + 1);
            let path: PathBuf = out.join(&file);
            let header = Kind::Markup.header(&title);
            files::write(&path, Kind::Markup, format!("{header}{svg}").as_bytes())?;
            plots.push(PlotRef {
                block: bi,
                stage: stage.to_string(),
                file,
            });
        }
    }
    if !mismatched.is_empty() {
        notes.push(format!(
            "Sample counts of the plotted intervals that differ from the summary: {}.",
            mismatched.join(", ")
        ));
    }
    Ok((plots, notes))
}

fn signal_name(sig: i32) -> &'static str {
    if sig == signal_hook::consts::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_is_cut_from_the_report() {
        let md = "# R\n\n## How\n\nx\n\n## Verdict: y\n\n- a\n- b\n\n## Block 1\n";
        assert_eq!(verdict_section(md), "## Verdict: y\n\n- a\n- b");
        assert_eq!(verdict_section("nothing"), "");
    }
}
