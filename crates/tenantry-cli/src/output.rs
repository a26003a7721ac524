//! Printing: aligned tables for people, JSON for scripts, CSV for spreadsheets.

use std::fmt::Write as _;

/// Rows under a header, printed with aligned columns.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: Vec<&'static str>) -> Self {
        Self {
            header,
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: Vec<&str>| {
            let mut text = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                let _ = write!(text, "{cell:<w$}");
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&mut out, self.header.clone());
        for row in &self.rows {
            line(&mut out, row.iter().map(String::as_str).collect());
        }
        out
    }

    pub(crate) fn print(&self) {
        print!("{}", self.render());
    }

    /// The table as CSV (RFC 4180 quoting).
    pub(crate) fn csv(&self) -> String {
        let field = |f: &str| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_owned()
            }
        };
        let mut out = String::new();
        let mut push = |cells: Vec<&str>| {
            let fields: Vec<String> = cells.into_iter().map(field).collect();
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        };
        push(self.header.clone());
        for row in &self.rows {
            push(row.iter().map(String::as_str).collect());
        }
        out
    }
}

/// Prints a JSON value, pretty.
pub(crate) fn json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A time as RFC 3339 text.
pub(crate) fn time(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_csv_quotes() {
        let mut t = Table::new(vec!["key", "cost"]);
        t.row(vec!["acme".into(), "$1.000000000".into()]);
        t.row(vec!["a,b \"c\"".into(), "$0.5".into()]);
        assert_eq!(
            t.render(),
            "key      cost\nacme     $1.000000000\na,b \"c\"  $0.5\n"
        );
        assert_eq!(
            t.csv(),
            "key,cost\r\nacme,$1.000000000\r\n\"a,b \"\"c\"\"\",$0.5\r\n"
        );
    }
}
