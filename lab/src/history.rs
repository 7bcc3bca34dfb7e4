//! `lab history JOURNAL`: the ticks or 1-second bars a feed journaled
//! ([`common::journal`]), as CSV or JSON lines on stdout.
//!
//! Read-only: a torn tail is reported on stderr and left as it is (the feed cuts it
//! when it next opens the journal). Prices are printed as decimals from their fixed
//! point (× 10⁸) exactly; times as nanoseconds since the first tick of the epoch
//! (`scheduled_ns`, `published_ns`), converted with the recording machine's clock rate.
//! Bars follow the feed's history: per symbol and second of the epoch, open, high, low
//! and close of the trade price (the mid for quotes), the traded lots and the tick count.

use crate::cli::{HistoryArgs, HistoryFormat};
use anyhow::{Context, Result};
use common::failure::Failure;
use common::journal::{Journal, SegmentRead};
use common::tick::{Side, Tick, TickKind, PX_SCALE};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};

/// Runs `lab history`.
pub fn history(args: &HistoryArgs) -> Result<()> {
    let journal = Journal::open(&args.journal).map_err(|e| {
        if e.is_bad_input() {
            anyhow::Error::new(Failure::bad_input(e))
        } else {
            anyhow::Error::new(e)
        }
    })?;
    let epochs = journal.epochs();
    if let Some(e) = args.epoch {
        if !epochs.contains(&e) {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "{} has no epoch {e}; its epochs: {epochs:?}",
                args.journal.display()
            ))
            .into());
        }
    }
    let reads = journal.read(args.epoch).map_err(|e| {
        if e.is_bad_input() {
            anyhow::Error::new(Failure::bad_input(e))
        } else {
            anyhow::Error::new(e)
        }
    })?;
    for r in &reads {
        if let Some((bytes, why)) = &r.torn {
            eprintln!(
                "lab history: {}: {bytes} bytes after the last good block ({why}), not read",
                r.path.display()
            );
        }
    }
    let symbols = reads
        .first()
        .map(|r| r.header.symbols.clone())
        .unwrap_or_default();
    let only = match &args.symbol {
        Some(name) => Some(symbols.iter().position(|s| s == name).ok_or_else(|| {
            Failure::bad_input(anyhow::anyhow!(
                "--symbol {name}: the journal's symbols are {symbols:?}"
            ))
        })? as u16),
        None => None,
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let rows = if args.bars {
        write_bars(&reads, &symbols, only, args.format, &mut out)
    } else {
        write_ticks(&reads, &symbols, only, args.format, &mut out)
    };
    let n = match rows {
        Ok(n) => n,
        // A closed pipe (`| head`) ends the output, not in error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(e).context("cannot write to stdout"),
    };
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("cannot write to stdout")
        }
        _ => {}
    }
    eprintln!(
        "lab history: {} {} from {} segments of {}",
        n,
        if args.bars { "bars" } else { "ticks" },
        reads.len(),
        args.journal.display()
    );
    Ok(())
}

/// `12345.67800000`: a fixed-point price, exactly.
fn px(e8: i64) -> String {
    let sign = if e8 < 0 { "-" } else { "" };
    let a = e8.unsigned_abs();
    format!("{sign}{}.{:08}", a / PX_SCALE as u64, a % PX_SCALE as u64)
}

#[derive(Serialize)]
struct TickRow<'a> {
    epoch: u64,
    seq: u64,
    symbol: &'a str,
    kind: &'static str,
    side: &'static str,
    bid_px: String,
    ask_px: String,
    bid_qty: u32,
    ask_qty: u32,
    last_px: String,
    last_qty: u32,
    scheduled_ns: u64,
    published_ns: u64,
}

#[derive(Serialize)]
struct BarRow<'a> {
    epoch: u64,
    symbol: &'a str,
    second: u64,
    open: String,
    high: String,
    low: String,
    close: String,
    volume: u64,
    ticks: u64,
}

fn emit<T: Serialize>(
    row: &T,
    fields: &[String],
    format: HistoryFormat,
    out: &mut impl Write,
) -> std::io::Result<()> {
    match format {
        HistoryFormat::Jsonl => {
            serde_json::to_writer(&mut *out, row).map_err(std::io::Error::other)?;
            out.write_all(b"\n")
        }
        HistoryFormat::Csv => writeln!(out, "{}", fields.join(",")),
    }
}

/// The ticks of each segment, with the epoch's first scheduled time.
fn epochs_of(reads: &[SegmentRead]) -> impl Iterator<Item = (u64, f64, u64, &Tick)> {
    let mut first: BTreeMap<u64, u64> = BTreeMap::new();
    for r in reads {
        if let Some(t) = r.ticks.first() {
            first.entry(r.header.epoch).or_insert(t.scheduled_raw);
        }
    }
    reads.iter().flat_map(move |r| {
        let base = first.get(&r.header.epoch).copied().unwrap_or(0);
        r.ticks
            .iter()
            .map(move |t| (r.header.epoch, r.header.ns_per_raw, base, t))
    })
}

fn name(symbols: &[String], i: u16) -> &str {
    symbols.get(i as usize).map_or("?", String::as_str)
}

fn write_ticks(
    reads: &[SegmentRead],
    symbols: &[String],
    only: Option<u16>,
    format: HistoryFormat,
    out: &mut impl Write,
) -> std::io::Result<u64> {
    if format == HistoryFormat::Csv {
        writeln!(out, "epoch,seq,symbol,kind,side,bid_px,ask_px,bid_qty,ask_qty,last_px,last_qty,scheduled_ns,published_ns")?;
    }
    let mut n = 0;
    for (epoch, ns_per_raw, base, t) in epochs_of(reads) {
        if only.is_some_and(|s| s != t.symbol) {
            continue;
        }
        let ns = |raw: u64| (raw.saturating_sub(base) as f64 * ns_per_raw).round() as u64;
        let row = TickRow {
            epoch,
            seq: t.seq,
            symbol: name(symbols, t.symbol),
            kind: match t.kind {
                TickKind::Quote => "quote",
                TickKind::Trade => "trade",
            },
            side: match t.side {
                Side::None => "",
                Side::Buy => "buy",
                Side::Sell => "sell",
            },
            bid_px: px(t.bid_px_e8),
            ask_px: px(t.ask_px_e8),
            bid_qty: t.bid_qty_lots,
            ask_qty: t.ask_qty_lots,
            last_px: px(t.last_px_e8),
            last_qty: t.last_qty_lots,
            scheduled_ns: ns(t.scheduled_raw),
            published_ns: ns(t.published_raw),
        };
        let fields = [
            row.epoch.to_string(),
            row.seq.to_string(),
            row.symbol.to_string(),
            row.kind.to_string(),
            row.side.to_string(),
            row.bid_px.clone(),
            row.ask_px.clone(),
            row.bid_qty.to_string(),
            row.ask_qty.to_string(),
            row.last_px.clone(),
            row.last_qty.to_string(),
            row.scheduled_ns.to_string(),
            row.published_ns.to_string(),
        ];
        emit(&row, &fields, format, out)?;
        n += 1;
    }
    Ok(n)
}

/// One bar being built.
#[derive(Clone, Copy)]
struct Bar {
    second: u64,
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: u64,
    ticks: u64,
}

fn write_bars(
    reads: &[SegmentRead],
    symbols: &[String],
    only: Option<u16>,
    format: HistoryFormat,
    out: &mut impl Write,
) -> std::io::Result<u64> {
    if format == HistoryFormat::Csv {
        writeln!(out, "epoch,symbol,second,open,high,low,close,volume,ticks")?;
    }
    // (epoch, symbol) → bars in second order.
    let mut bars: BTreeMap<(u64, u16), Vec<Bar>> = BTreeMap::new();
    for (epoch, ns_per_raw, base, t) in epochs_of(reads) {
        if only.is_some_and(|s| s != t.symbol) {
            continue;
        }
        let second = (t.scheduled_raw.saturating_sub(base) as f64 * ns_per_raw / 1e9) as u64;
        let price = match t.kind {
            TickKind::Trade => t.last_px_e8,
            TickKind::Quote => t.mid_px_e8(),
        };
        let volume = if t.kind == TickKind::Trade {
            u64::from(t.last_qty_lots)
        } else {
            0
        };
        let list = bars.entry((epoch, t.symbol)).or_default();
        match list.last_mut() {
            Some(b) if b.second == second => {
                b.high = b.high.max(price);
                b.low = b.low.min(price);
                b.close = price;
                b.volume += volume;
                b.ticks += 1;
            }
            _ => list.push(Bar {
                second,
                open: price,
                high: price,
                low: price,
                close: price,
                volume,
                ticks: 1,
            }),
        }
    }
    let mut n = 0;
    for ((epoch, symbol), list) in &bars {
        for b in list {
            let row = BarRow {
                epoch: *epoch,
                symbol: name(symbols, *symbol),
                second: b.second,
                open: px(b.open),
                high: px(b.high),
                low: px(b.low),
                close: px(b.close),
                volume: b.volume,
                ticks: b.ticks,
            };
            let fields = [
                row.epoch.to_string(),
                row.symbol.to_string(),
                row.second.to_string(),
                row.open.clone(),
                row.high.clone(),
                row.low.clone(),
                row.close.clone(),
                row.volume.to_string(),
                row.ticks.to_string(),
            ];
            emit(&row, &fields, format, out)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_print_exactly() {
        assert_eq!(px(12_345_678_000_000), "123456.78000000");
        assert_eq!(px(1), "0.00000001");
        assert_eq!(px(-150_000_000), "-1.50000000");
        assert_eq!(px(0), "0.00000000");
    }
}
