//! A real PostgreSQL server for the tests of one test binary: started from the machine's
//! PostgreSQL binaries (Debian's `postgresql` package; `tests/run` installs it) on a free
//! loopback port with a fresh data directory, on first use; stopped by a watchdog when the
//! test process exits. Each test takes its own database.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};

pub struct Server {
    pub port: u16,
    pub data_dir: PathBuf,
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// The server, started on first call.
pub fn server() -> &'static Server {
    SERVER.get_or_init(|| start().unwrap_or_else(|e| panic!("PostgreSQL for the tests: {e}")))
}

/// A new empty database on the test server, as a URL. `name`: letters, digits, `_`.
pub async fn database(name: &str) -> String {
    server().database(name).await
}

impl Server {
    /// A new empty database on this server, as a URL. `name`: letters, digits, `_`.
    pub async fn database(&self, name: &str) -> String {
        let server = self;
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the test PostgreSQL");
        let db = format!("t_{name}_{}", std::process::id());
        conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))).await.expect("drop test database");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).await.expect("create test database");
        format!("postgres://postgres@127.0.0.1:{}/{db}", server.port)
    }
}

/// The directory of `initdb`, `pg_ctl` and `postgres`: the newest under
/// `/usr/lib/postgresql/*/bin` (Debian), else from `PATH`.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Runs a PostgreSQL program; as root, as the `postgres` user (the server refuses root).
fn pg_command(bin: &Path, program: &str, root: bool) -> Command {
    match root {
        true => {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(program));
            c
        }
        false => Command::new(bin.join(program)),
    }
}

fn start() -> Result<Server, String> {
    let bin = bin_dir().ok_or(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: run the suite with `tests/run`, which installs them, \
         or install Debian's `postgresql` package",
    )?;
    start_from(&bin, "default")
}

/// A server of its own from the binaries in `bin` (another PostgreSQL version than the
/// machine's), stopped like the test server when the test process exits.
pub fn start_from(bin: &Path, name: &str) -> Result<Server, String> {
    let root = is_root();
    let data_dir = std::env::temp_dir().join(format!("ovpp-test-postgres-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
    if root {
        let status = Command::new("chown").arg("postgres:").arg(&data_dir).status().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("chown postgres {} failed", data_dir.display()));
        }
    }
    let data = data_dir.join("data");
    let init = pg_command(bin, "initdb", root)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"])
        .arg(&data)
        .output()
        .map_err(|e| format!("running initdb: {e}"))?;
    if !init.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&init.stderr)));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    // Loopback only, the socket in the data directory, durable commits as in production (the
    // ingest benchmark measures them), connections for several oracle processes per test.
    let options =
        format!("-p {port} -c listen_addresses=127.0.0.1 -k {} -c max_connections=400 -c shared_buffers=256MB", data_dir.display());
    let log = data_dir.join("server.log");
    let started = pg_command(bin, "pg_ctl", root)
        .args(["-w", "-t", "60", "-D"])
        .arg(&data)
        .args(["-o", &options, "-l"])
        .arg(&log)
        .arg("start")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("running pg_ctl: {e}"))?;
    if !started.success() {
        return Err(format!("pg_ctl start failed; see {}", log.display()));
    }
    // Stops the server once this test process is gone.
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {pg_ctl} -D {data} -m immediate stop; rm -rf {dir}",
        pid = std::process::id(),
        pg_ctl = match root {
            true => format!("runuser -u postgres -- {}", bin.join("pg_ctl").display()),
            false => bin.join("pg_ctl").display().to_string(),
        },
        data = data.display(),
        dir = data_dir.display(),
    );
    // In a session of its own (`setsid`), so that a signal to the test's process group (a
    // timeout killing the run) does not take the watchdog with it and leave the server up.
    Command::new("setsid")
        .args(["sh", "-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the server's watchdog: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("server did not listen on {port}; see {}", log.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Server { port, data_dir })
}
