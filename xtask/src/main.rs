//! Repository tasks, run from anywhere in the repository as `cargo xtask TASK`
//! (the alias is in `.cargo/config.toml`).
//!
//! - `cargo xtask test [ARGS…]`: the README's test command. It provisions what the
//!   cross-checks need, then runs `cargo test --workspace --all-features ARGS…`:
//!   - the official Python SDK (every `crates/*/tests/*/requirements.txt`) into a virtual
//!     environment under the target directory, handed to the tests as `TENANTRY_PYTHON`;
//!   - the npm packages of every `crates/*/tests/*/package.json`, by `npm ci` in that folder;
//!   - the Debian packages in `.ci/apt-packages.txt` (Chromium and its WebDriver for the
//!     browser test) through `apt-get`, when this user may install packages; otherwise it
//!     stops and names the command that installs them.
//! - `cargo xtask provision`: only the provisioning, for a shell that then runs single tests
//!   (export `TENANTRY_PYTHON` as printed).
//!
//! Nothing is skipped: a tool that cannot be provisioned stops the task with a message that
//! says what to install, before a single test runs.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// What the provisioning leaves for the test run.
#[derive(Debug)]
struct Provisioned {
    /// The virtual environment's interpreter, which has the Python SDK.
    python: PathBuf,
}

/// A task's failure: what went wrong and what to do about it, for a human.
type Failure = String;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let task = args.next();
    let rest: Vec<OsString> = args.collect();
    let outcome = match task.as_ref().and_then(|t| t.to_str()) {
        Some("test") => test(&rest),
        Some("provision") if rest.is_empty() => provision().map(|p| {
            println!("export TENANTRY_PYTHON={}", p.python.display());
            ExitCode::SUCCESS
        }),
        _ => Err(
            "usage: cargo xtask test [CARGO TEST ARGS…] | cargo xtask provision\n\
             `test` provisions the cross-checks' tools, then runs \
             `cargo test --workspace --all-features [ARGS…]`"
                .to_owned(),
        ),
    };
    match outcome {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Provisions, then runs the whole test suite with the provisioned tools.
fn test(args: &[OsString]) -> Result<ExitCode, Failure> {
    let provisioned = provision()?;
    step("cargo test --workspace --all-features --no-fail-fast");
    // Every test binary runs even after one fails: one run names every failure.
    let status = Command::new(cargo())
        .current_dir(root())
        .args(["test", "--workspace", "--all-features", "--no-fail-fast"])
        .args(args)
        .env("TENANTRY_PYTHON", &provisioned.python)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        // Cargo's own codes are small; anything else (a signal) is a plain failure.
        Some(code) => u8::try_from(code).map_or(ExitCode::FAILURE, ExitCode::from),
        None => ExitCode::FAILURE,
    })
}

fn provision() -> Result<Provisioned, Failure> {
    let state = target_dir()?.join("xtask");
    fs::create_dir_all(&state).map_err(|e| format!("cannot create {}: {e}", state.display()))?;
    let python = python_sdk(&state)?;
    npm_packages(&state)?;
    system_packages()?;
    Ok(Provisioned { python })
}

/// A virtual environment under the target directory with every test's Python requirements;
/// reinstalled only when a requirements file changes.
fn python_sdk(state: &Path) -> Result<PathBuf, Failure> {
    let files = test_files("requirements.txt")?;
    let venv = state.join("python");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        step(&format!("python3 -m venv {}", venv.display()));
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "Python 3 with its `venv` module is needed for the Python SDK check \
             (on Debian: `apt-get install python3-venv`)",
        )?;
    }
    let wanted = concatenated(&files)?;
    let stamp = venv.join("tenantry-requirements.txt");
    if fs::read(&stamp).ok().as_deref() != Some(wanted.as_slice()) {
        let mut pip = Command::new(&python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]);
        for file in &files {
            pip.arg("-r").arg(file);
        }
        step(&format!("pip install into {}", venv.display()));
        run(
            &mut pip,
            "pip could not install the Python SDK check's requirements",
        )?;
        write(&stamp, &wanted)?;
    }
    Ok(python)
}

/// `npm ci` in every test folder with a `package.json`, unless its `node_modules` was
/// installed from the same lock file.
fn npm_packages(state: &Path) -> Result<(), Failure> {
    for manifest in test_files("package.json")? {
        let dir = manifest.parent().expect("a file has a folder");
        let lock = fs::read(dir.join("package-lock.json"))
            .map_err(|e| format!("{}: no package-lock.json: {e}", dir.display()))?;
        let relative = dir.strip_prefix(root()).unwrap_or(dir);
        let stamp = state.join(format!(
            "npm-{}.lock",
            relative.to_string_lossy().replace(['/', '\\'], "-")
        ));
        let installed = dir.join("node_modules").join(".bin").is_dir()
            && fs::read(&stamp).ok().as_deref() == Some(lock.as_slice());
        if installed {
            continue;
        }
        step(&format!("npm ci in {}", relative.display()));
        run(
            Command::new("npm").current_dir(dir).args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ]),
            "Node.js and npm are needed for the TypeScript checks",
        )?;
        write(&stamp, &lock)?;
    }
    Ok(())
}

/// The Debian packages in `.ci/apt-packages.txt`, installed with `apt-get` when this user is
/// root or may use `sudo` without a password; otherwise the task stops and names the command.
fn system_packages() -> Result<(), Failure> {
    let list = root().join(".ci").join("apt-packages.txt");
    let text = fs::read_to_string(&list).unwrap_or_default();
    let packages: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if packages.is_empty() {
        return Ok(());
    }
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!("apt-get install -y {}", missing.join(" "));
    let advice = format!(
        "the browser test needs the Debian packages {} ({}): run `sudo apt-get update && sudo {install}`, \
         then `cargo xtask test` again",
        missing.join(", "),
        list.display()
    );
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(format!("no dpkg on this system; {advice}"));
    }
    let sudo: &[&str] = if is_root() {
        &[]
    } else if Command::new("sudo")
        .args(["-n", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        &["sudo", "-n"]
    } else {
        return Err(format!("this user may not install packages; {advice}"));
    };
    step(&format!("{}apt-get update && {install}", prefix(sudo)));
    run(apt(sudo).args(["update", "-qq"]), &advice)?;
    run(
        apt(sudo).args(["install", "-y", "-qq"]).args(&missing),
        &advice,
    )?;
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b"install ok installed"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn apt(sudo: &[&str]) -> Command {
    let mut command = match sudo.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg("apt-get");
            c
        }
        None => Command::new("apt-get"),
    };
    command.env("DEBIAN_FRONTEND", "noninteractive");
    command
}

fn prefix(sudo: &[&str]) -> String {
    sudo.iter().map(|s| format!("{s} ")).collect()
}

/// Every `crates/*/tests/*/NAME`, sorted so stamps do not depend on directory order.
fn test_files(name: &str) -> Result<Vec<PathBuf>, Failure> {
    let mut found = Vec::new();
    for krate in read_dir(&root().join("crates"))? {
        let tests = krate.join("tests");
        if !tests.is_dir() {
            continue;
        }
        for folder in read_dir(&tests)? {
            let file = folder.join(name);
            if file.is_file() {
                found.push(file);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    fs::read_dir(dir)
        .and_then(|entries| entries.map(|e| e.map(|e| e.path())).collect())
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))
}

fn concatenated(files: &[PathBuf]) -> Result<Vec<u8>, Failure> {
    let mut all = Vec::new();
    for file in files {
        all.extend(fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?);
    }
    Ok(all)
}

fn write(path: &Path, contents: &[u8]) -> Result<(), Failure> {
    fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Runs a provisioning command with its output shown; a failure carries `what`.
fn run(command: &mut Command, what: &str) -> Result<(), Failure> {
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!(
            "{what} ({:?} exited with {status})",
            command.get_program()
        )),
        Err(e) => Err(format!(
            "{what} (cannot run {:?}: {e})",
            command.get_program()
        )),
    }
}

fn step(what: &str) {
    println!("==> {what}");
}

fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The repository root: this crate's parent folder.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the repository root")
        .to_path_buf()
}

/// The target directory as cargo resolves it (`CARGO_TARGET_DIR`, config, or `target/`).
fn target_dir() -> Result<PathBuf, Failure> {
    let output = Command::new(cargo())
        .current_dir(root())
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    let json = String::from_utf8_lossy(&output.stdout);
    // One string field is all this needs; a JSON parser would be the only dependency.
    let key = "\"target_directory\":\"";
    let start = json
        .find(key)
        .map(|i| i + key.len())
        .ok_or_else(|| "cargo metadata did not name a target directory".to_owned())?;
    let value = &json[start..];
    let end = value
        .find('"')
        .ok_or_else(|| "cargo metadata: unterminated target directory".to_owned())?;
    Ok(PathBuf::from(value[..end].replace("\\\\", "\\")))
}
