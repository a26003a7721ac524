//! TypeScript definitions of the wire types, generated with ts-rs.
//!
//! [`export`] writes one `.ts` file per type (`Envelope.ts`, `Problem.ts`, `Code.ts`, …) into a
//! directory of your frontend. The definitions are a discriminated union on `status`:
//!
//! ```ts
//! export type Envelope<T> = { "status": "success", data: T, meta?: Meta }
//!   | { "status": "error", error: Problem }
//!   | { "status": "pending", operation: Operation };
//! ```
//!
//! [`crate::Code`] becomes a union of the built-in code strings plus `(string & {})`, so
//! editors suggest the built-in codes and host codes still type-check. No type of this crate
//! comes out as `bigint`: 64-bit values travel as strings.
//!
//! # Example
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! tenantry_envelope::ts::export(dir.path())?;
//! let envelope = std::fs::read_to_string(dir.path().join("Envelope.ts"))?;
//! assert!(envelope.contains(r#""status": "pending""#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use ts_rs::{Config, TS};

use crate::{Code, Envelope, Error, Page, ProblemDetails};

/// Writes the TypeScript definitions of every wire type into `dir` (created if missing) and
/// returns the files written, sorted.
///
/// # Errors
///
/// [`Error::TypeScriptExport`] if a file cannot be written.
///
/// # Example
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let files = tenantry_envelope::ts::export(dir.path())?;
/// assert!(files.iter().any(|file| file.ends_with("Problem.ts")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn export(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, Error> {
    let dir = dir.as_ref();
    let config = Config::new().with_out_dir(dir);
    <Envelope<()> as TS>::export_all(&config).map_err(Error::TypeScriptExport)?;
    <Page<()> as TS>::export_all(&config).map_err(Error::TypeScriptExport)?;
    <ProblemDetails as TS>::export_all(&config).map_err(Error::TypeScriptExport)?;
    let mut files = Vec::new();
    collect_ts_files(dir, &mut files).map_err(|err| Error::TypeScriptExport(err.into()))?;
    files.sort();
    for file in &files {
        let text =
            std::fs::read_to_string(file).map_err(|err| Error::TypeScriptExport(err.into()))?;
        let stripped = strip_rust_examples(&text);
        if stripped != text {
            std::fs::write(file, stripped).map_err(|err| Error::TypeScriptExport(err.into()))?;
        }
    }
    Ok(files)
}

/// Drops the Rust `# Example` sections (heading and code block) that ts-rs copies from the
/// doc comments into the JSDoc: they are Rust, not TypeScript.
fn strip_rust_examples(text: &str) -> String {
    #[derive(PartialEq)]
    enum State {
        Keep,
        BeforeFence,
        InFence,
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut state = State::Keep;
    for line in text.lines() {
        let comment = line.trim();
        match state {
            State::Keep if comment == "* # Example" || comment == "* # Examples" => {
                if kept.last().is_some_and(|previous| previous.trim() == "*") {
                    kept.pop();
                }
                state = State::BeforeFence;
            }
            State::Keep => kept.push(line),
            State::BeforeFence if comment.starts_with("* ```") => state = State::InFence,
            State::BeforeFence => {}
            State::InFence if comment == "* ```" => state = State::Keep,
            State::InFence => {}
        }
    }
    let mut out = kept.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn collect_ts_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_ts_files(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "ts") {
            files.push(path);
        }
    }
    Ok(())
}

/// `Code` is a string on the wire: the built-in names, or a host's own.
impl TS for Code {
    type WithoutGenerics = Self;
    type OptionInnerType = Self;

    fn docs() -> Option<String> {
        Some(
            "/**\n * A stable, machine-readable problem code: one of the built-in codes, or a code\n \
             * the host application defined (same spelling rule: UPPER_SNAKE_CASE).\n */\n"
                .to_owned(),
        )
    }

    fn name(_: &Config) -> String {
        "Code".to_owned()
    }

    fn inline(_: &Config) -> String {
        let mut union: Vec<String> = Code::BUILT_IN
            .iter()
            .map(|code| format!("\"{}\"", code.as_str()))
            .collect();
        union.push("(string & {})".to_owned());
        union.join(" | ")
    }

    fn decl(cfg: &Config) -> String {
        format!("type Code = {};", Self::inline(cfg))
    }

    fn decl_concrete(cfg: &Config) -> String {
        Self::decl(cfg)
    }

    fn output_path() -> Option<PathBuf> {
        Some(PathBuf::from("Code.ts"))
    }
}

#[cfg(test)]
mod tests {
    use super::strip_rust_examples;

    #[test]
    fn rust_examples_are_dropped_and_the_rest_kept() {
        let jsdoc = "/**\n * One line.\n *\n * ```json\n * {\"a\":1}\n * ```\n *\n * # Example\n *\n * ```\n * let x = 1;\n * ```\n */\nexport type A = number;\n";
        assert_eq!(
            strip_rust_examples(jsdoc),
            "/**\n * One line.\n *\n * ```json\n * {\"a\":1}\n * ```\n */\nexport type A = number;\n"
        );
        assert_eq!(
            strip_rust_examples("export type B = string;"),
            "export type B = string;"
        );
    }
}
