//! PostgreSQL `COPY … FROM STDIN` of new job rows: the database's own bulk load, for large
//! `submit_many` calls without idempotency keys (`COPY` cannot skip a taken key).
//!
//! The statement names only the table and its columns; every value travels in the `COPY`
//! data, in the text format, escaped by [`push_text`]: nothing a request holds is ever part
//! of a statement's text.

use std::fmt::Write as _;

use sea_query::Iden;

use crate::job::JobState;
use crate::store::schema::Jobs;
use crate::validate::NewJob;

use super::submit::INSERT_JOB_COLUMNS;

/// `COPY "tenantry_queue_jobs" ("id", …) FROM STDIN`, with the columns of
/// [`INSERT_JOB_COLUMNS`] in order.
pub(crate) fn copy_jobs_statement() -> String {
    let columns: Vec<String> = INSERT_JOB_COLUMNS.iter().map(quoted).collect();
    format!(
        "COPY {} ({}) FROM STDIN",
        quoted(&Jobs::Table),
        columns.join(", ")
    )
}

/// A schema identifier in double quotes; the schema's names are plain snake case.
fn quoted(iden: &impl Iden) -> String {
    let name = iden.unquoted();
    debug_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    format!("\"{name}\"")
}

/// The `COPY` text-format data of these jobs, one line each, the columns of
/// [`copy_jobs_statement`] in order.
pub(crate) fn job_rows(jobs: &[NewJob]) -> String {
    let mut out = String::with_capacity(jobs.iter().map(|j| j.params.len() + 256).sum());
    for job in jobs {
        let mut row = Row(&mut out);
        row.text(job.id.as_str());
        row.text(job.tenant.as_str());
        row.text(&job.feature);
        row.text(&job.user);
        row.text(job.lane);
        row.text(JobState::Queued.as_str());
        row.text(&job.params);
        row.int(Some(job.request_bytes));
        row.text(&job.metadata);
        row.opt_text(job.idempotency_key.as_deref());
        row.int(Some(job.max_wait_ms));
        row.int(job.deadline);
        row.text(job.on_deadline);
        row.int(Some(0)); // attempts
        row.int(Some(job.created_at));
        row.int(Some(job.created_at)); // updated_at
        row.int(Some(job.flush_at));
        row.last_int(job.hold);
    }
    out
}

/// One line of `COPY` text data being written: each value is followed by a tab, the last by a
/// newline.
struct Row<'a>(&'a mut String);

impl Row<'_> {
    fn text(&mut self, value: &str) {
        push_text(self.0, value);
        self.0.push('\t');
    }

    fn opt_text(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.text(v),
            None => self.0.push_str("\\N\t"),
        }
    }

    fn int(&mut self, value: Option<i64>) {
        self.push_int(value);
        self.0.push('\t');
    }

    fn last_int(&mut self, value: Option<i64>) {
        self.push_int(value);
        self.0.push('\n');
    }

    fn push_int(&mut self, value: Option<i64>) {
        match value {
            // Writing into a `String` cannot fail.
            Some(v) => {
                let _ = write!(self.0, "{v}");
            }
            None => self.0.push_str("\\N"),
        }
    }
}

/// Appends `value` as one column of `COPY` text data: a backslash, the delimiter (tab) and the
/// line ends are backslash-escaped, so a value can neither end its column or line nor read as
/// `\N` (NULL) or the end-of-data marker `\.`; every other character, quotes and non-ASCII
/// included, stands for itself.
pub(crate) fn push_text(out: &mut String, value: &str) {
    let mut rest = value;
    while let Some(at) = rest.find(['\\', '\t', '\n', '\r']) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            _ => "\\r",
        });
        // Each of the four is one byte long.
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(value: &str) -> String {
        let mut out = String::new();
        push_text(&mut out, value);
        out
    }

    #[test]
    fn copy_text_escapes_exactly_what_the_format_reads_specially() {
        assert_eq!(escaped("plain"), "plain");
        assert_eq!(escaped("a\tb\nc\rd\\e"), "a\\tb\\nc\\rd\\\\e");
        // `\N` and `\.` in a value stay text: their backslash is doubled.
        assert_eq!(escaped("\\N"), "\\\\N");
        assert_eq!(escaped("\\."), "\\\\.");
        assert_eq!(
            escaped("\"quotes\" and 'these', é ü 漢字 🦀"),
            "\"quotes\" and 'these', é ü 漢字 🦀"
        );
        assert_eq!(escaped(""), "");
    }

    #[test]
    fn the_statement_names_the_insert_columns_in_order() {
        assert_eq!(
            copy_jobs_statement(),
            r#"COPY "tenantry_queue_jobs" ("id", "tenant", "feature", "user_id", "lane", "state", "params", "request_bytes", "metadata", "idempotency_key", "max_wait_ms", "deadline", "on_deadline", "attempts", "created_at", "updated_at", "flush_at", "hold_id") FROM STDIN"#
        );
    }

    #[test]
    fn a_row_has_one_column_per_insert_column_and_nulls_as_backslash_n() {
        let tenant = crate::TenantId::new("t1").unwrap();
        let submission = crate::job::Submission::new(
            "f\teature",
            "u\n1",
            serde_json::json!({
                "model": "claude-haiku-4-5",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "tab\there \\ \"q\""}]
            }),
        );
        let job = crate::validate::prepare(&tenant, &submission, time::OffsetDateTime::now_utc())
            .unwrap();
        let data = job_rows(std::slice::from_ref(&job));
        assert!(data.ends_with('\n'));
        let line = data.strip_suffix('\n').unwrap();
        assert!(!line.contains('\n'));
        let columns: Vec<&str> = line.split('\t').collect();
        assert_eq!(columns.len(), INSERT_JOB_COLUMNS.len());
        assert_eq!(columns[2], "f\\teature");
        assert_eq!(columns[3], "u\\n1");
        assert_eq!(columns[9], "\\N"); // no idempotency key
        assert_eq!(columns[17], "\\N"); // no hold
        assert_eq!(columns[13], "0");
    }
}
