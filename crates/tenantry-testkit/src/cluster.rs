//! A throw-away PostgreSQL cluster for machines where no server is running.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A PostgreSQL cluster created with `initdb` in a temporary directory and started with
/// `pg_ctl` on a free loopback port.
///
/// A watchdog process stops the cluster and removes its directory when the process that
/// started it exits, however it exits (even on `SIGKILL`), so a crashed test run leaves
/// nothing behind.
#[derive(Debug)]
pub struct ThrowawayCluster {
    port: u16,
    dir: PathBuf,
}

impl ThrowawayCluster {
    /// Creates and starts a new cluster.
    ///
    /// When the process runs as root, `initdb` and `pg_ctl` run as the `postgres` system user,
    /// because PostgreSQL refuses to run as root.
    ///
    /// # Errors
    ///
    /// A human-readable reason when the binaries are missing or the cluster does not start.
    pub fn start() -> Result<Self, String> {
        let bin = find_bin_dir().ok_or_else(|| {
            "no `initdb`/`pg_ctl` on PATH or under /usr/lib/postgresql/*/bin".to_owned()
        })?;
        let dir = std::env::temp_dir().join(format!(
            "tenantry-pg-{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let run_as = if running_as_root() {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(&dir)
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !status.success() {
                return Err(
                    "running as root and cannot hand the cluster directory to the `postgres` user"
                        .into(),
                );
            }
            Some("postgres")
        } else {
            None
        };
        let data = dir.join("data");
        let port = free_port()?;
        run(
            run_as,
            &bin.join("initdb"),
            &[
                "-D",
                path_str(&data)?,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=400",
            path_str(&dir)?
        );
        run(
            run_as,
            &bin.join("pg_ctl"),
            &[
                "-D",
                path_str(&data)?,
                "-o",
                &options,
                "-l",
                path_str(&dir.join("log"))?,
                "-w",
                "start",
            ],
        )?;
        spawn_watchdog(run_as, &bin.join("pg_ctl"), &data, &dir)?;
        Ok(Self { port, dir })
    }

    /// The connection URL of the cluster's `postgres` database.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The directory holding the cluster's data and log.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    // The owner of /proc/self is the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("temporary path is not UTF-8: {}", path.display()))
}

fn command(run_as: Option<&str>, program: &Path) -> Command {
    match run_as {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

fn run(run_as: Option<&str>, program: &Path, args: &[&str]) -> Result<(), String> {
    let output = command(run_as, program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({}): {}{}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn spawn_watchdog(
    run_as: Option<&str>,
    pg_ctl: &Path,
    data: &Path,
    dir: &Path,
) -> Result<(), String> {
    let stop = format!(
        "{}{} -D {} -m immediate stop",
        run_as
            .map(|u| format!("runuser -u {u} -- "))
            .unwrap_or_default(),
        path_str(pg_ctl)?,
        path_str(data)?
    );
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        dir = path_str(dir)?
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the cluster watchdog: {e}"))?;
    Ok(())
}

pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}_{nanos}", COUNTER.fetch_add(1, Ordering::Relaxed))
}
