//! The tables lab prints and writes, built with `tabled`: terminal tables (columns
//! aligned, no borders) and GitHub-flavoured Markdown tables (right-aligned columns
//! marked `---:`), and the percentile columns every latency table shares.
//!
//! # Guarantees
//!
//! - Every row of a [`Table`] has as many cells as its header: a short row is filled
//!   with empty cells, and [`Table::row_spanning`]'s last cell spans the rest.
//! - A terminal table's lines carry no trailing whitespace.
//! - Cells are written as given: a caller that puts text into a Markdown table keeps
//!   `|` and line breaks out of it.
//! - [`PERCENTILE_COLUMNS`] and [`percentile_cells`] are the only place that decides the
//!   order and units of percentile columns: the count with thousands separators, then
//!   p50 … max through [`fmt_ns`].

use common::latency::Percentiles;
use common::units::fmt_ns;
use tabled::builder::Builder;
use tabled::grid::config::Offset;
use tabled::settings::object::{Cell, Columns, Object, Rows};
use tabled::settings::style::{LineChar, Style};
use tabled::settings::{Alignment, Padding};

/// Fewest samples for which a p99.99 means something: tables with fewer say so.
pub const P9999_MIN_SAMPLES: u64 = 1_000_000;

/// The percentile columns of every latency table, in order.
pub const PERCENTILE_COLUMNS: [&str; 7] = ["count", "p50", "p90", "p99", "p99.9", "p99.99", "max"];

/// One row's cells under [`PERCENTILE_COLUMNS`].
pub fn percentile_cells(p: &Percentiles) -> [String; 7] {
    [
        group(p.count),
        fmt_ns(p.p50),
        fmt_ns(p.p90),
        fmt_ns(p.p99),
        fmt_ns(p.p99_9),
        fmt_ns(p.p99_99),
        fmt_ns(p.max),
    ]
}

/// The cells under [`PERCENTILE_COLUMNS`] of a row with no samples: count 0, the rest
/// `n/a`.
pub fn percentile_cells_missing() -> [String; 7] {
    std::array::from_fn(|i| if i == 0 { "0" } else { "n/a" }.to_string())
}

/// `1234567` as `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Stands in a terminal table for the text of a spanning cell while the columns are laid
/// out (one column wide, so it widens nothing); a character no lead cell holds.
const SPAN_MARK: char = '\u{1f}';

/// A table under construction: a header, rows of text cells, and which columns are
/// right-aligned.
#[derive(Clone, Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
    /// (row, column, text) of each cell whose text runs on to the end of its line,
    /// in row order; the row holds [`SPAN_MARK`] there.
    spans: Vec<(usize, usize, String)>,
}

impl Table {
    /// A table with these column headers, every column left-aligned.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        let header: Vec<String> = header.into_iter().map(Into::into).collect();
        Table {
            right: vec![false; header.len()],
            header,
            rows: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// Right-aligns the columns `from..` (numbers).
    pub fn right_from(mut self, from: usize) -> Table {
        for r in self.right.iter_mut().skip(from) {
            *r = true;
        }
        self
    }

    /// Right-aligns the columns `cols`.
    pub fn right(mut self, cols: &[usize]) -> Table {
        for &c in cols {
            self.right[c] = true;
        }
        self
    }

    /// Adds a row; missing cells are empty, extra ones an error of the caller's (they
    /// are dropped).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let width = self.header.len();
        let mut row: Vec<String> = cells.into_iter().map(Into::into).take(width).collect();
        row.resize(width, String::new());
        self.rows.push(row);
    }

    /// Adds a row of `lead` cells whose last cell, `rest`, spans the remaining columns.
    pub fn row_spanning<S: Into<String>>(
        &mut self,
        lead: impl IntoIterator<Item = S>,
        rest: impl Into<String>,
    ) {
        let mut cells: Vec<String> = lead.into_iter().map(Into::into).collect();
        let at = cells.len();
        cells.push(SPAN_MARK.to_string());
        self.spans.push((self.rows.len(), at, rest.into()));
        self.row(cells);
    }

    fn build(&self) -> tabled::Table {
        let mut b = Builder::default();
        b.push_record(self.header.clone());
        for r in &self.rows {
            b.push_record(r.clone());
        }
        let mut t = b.build();
        for (c, _) in self.right.iter().enumerate().filter(|(_, r)| **r) {
            t.modify(Columns::one(c), Alignment::right());
        }
        t
    }

    /// The table for a terminal: columns two spaces apart, the header first, no lines.
    /// A spanning cell's text starts where its column does and runs on to the end of
    /// its line, widening no column (a table-drawn span would spread its width over the
    /// columns it covers).
    pub fn terminal(&self) -> String {
        let mut t = self.build();
        t.with(Style::empty()).with(Padding::new(0, 2, 0, 0));
        for (row, col, _) in &self.spans {
            t.modify(Cell::new(row + 1, *col), Alignment::left());
        }
        let mut spans = self.spans.iter().map(|(_, _, text)| text);
        let mut out = String::new();
        for line in t.to_string().lines() {
            match line.find(SPAN_MARK) {
                Some(at) => {
                    out.push_str(&line[..at]);
                    out.push_str(spans.next().map_or("", String::as_str));
                }
                None => out.push_str(line),
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        }
        out
    }

    /// The table in GitHub-flavoured Markdown, right-aligned columns marked `---:`.
    /// Spanning rows are written cell by cell.
    pub fn markdown(&self) -> String {
        let mut t = self.build();
        t.with(Style::markdown());
        for (c, _) in self.right.iter().enumerate().filter(|(_, r)| **r) {
            t.modify(
                Rows::one(1).intersect(Columns::one(c)),
                LineChar::horizontal(':', Offset::End(0)),
            );
        }
        let mut out = t.to_string();
        out.push('\n');
        out
    }
}

/// The trimmed cells of a Markdown table row (`| a | b |` gives `["a", "b"]`).
#[cfg(test)]
pub fn md_cells(line: &str) -> Vec<&str> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(str::trim).collect()
}

/// The row of the Markdown tables in `md` whose first cell is `first`, as cells.
#[cfg(test)]
pub fn md_row<'a>(md: &'a str, first: &str) -> Vec<&'a str> {
    md.lines()
        .filter(|l| l.starts_with('|'))
        .map(md_cells)
        .find(|c| c.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row starting {first:?} in\n{md}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
    }

    #[test]
    fn percentile_row_order_and_units() {
        let p = Percentiles {
            count: 2_500,
            min: 1,
            p50: 60,
            p90: 120,
            p99: 1_500,
            p99_9: 25_000,
            p99_99: 2_000_000,
            max: 3_000_000_000,
        };
        assert_eq!(
            percentile_cells(&p),
            ["2,500", "60ns", "120ns", "1.50µs", "25.0µs", "2.0ms", "3.0s"]
        );
        assert_eq!(percentile_cells_missing()[..2], ["0", "n/a"]);
    }

    #[test]
    fn terminal_tables_align_and_span() {
        let mut t = Table::new(["name", "n", "text"]).right(&[1]);
        t.row(["a", "1", "x"]);
        t.row(["bbb", "1000"]);
        t.row_spanning(["c"], "a reason longer than the columns");
        assert_eq!(
            t.terminal(),
            "name     n  text\n\
             a        1  x\n\
             bbb   1000\n\
             c     a reason longer than the columns\n"
        );
    }

    #[test]
    fn markdown_tables_mark_right_aligned_columns() {
        let mut t = Table::new(["name", "n"]).right_from(1);
        t.row(["a", "10"]);
        t.row(["bbbbb", "1234567"]);
        assert_eq!(
            t.markdown(),
            "| name  |       n |\n\
             |-------|--------:|\n\
             | a     |      10 |\n\
             | bbbbb | 1234567 |\n"
        );
        assert_eq!(md_row(&t.markdown(), "a"), ["a", "10"]);
    }
}
