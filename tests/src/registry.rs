//! A real OCI registry for tests: Debian's `docker-registry` on a free 127.0.0.1 port with its
//! own storage, killed on drop. Where the program is missing, [`LocalRegistry::start`] says
//! why, and the test records a skip ([`crate::skip`]).

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running registry.
pub struct LocalRegistry {
    child: Child,
    /// `127.0.0.1:<port>`, the registry part of its references.
    pub address: String,
    _storage: tempfile::TempDir,
}

impl LocalRegistry {
    /// Starts one and waits until it answers `GET /v2/`, or says why it cannot run here.
    ///
    /// # Errors
    /// Why: the program is missing, it does not start, or it does not answer within 15 s.
    pub fn start() -> Result<Self, String> {
        let binary = find_binary("docker-registry").ok_or(
            "docker-registry is not installed (Debian package docker-registry; `make tools`)",
        )?;
        let storage = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
                storage.path().join("data").display()
            ),
        )
        .map_err(|e| format!("writing the registry config: {e}"))?;
        let child = std::process::Command::new(&binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{} does not start: {e}", binary.display()))?;
        let mut registry = Self {
            child,
            address,
            _storage: storage,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = registry.child.try_wait() {
                return Err(format!("{} exited at start ({status})", binary.display()));
            }
            if registry.answers() {
                return Ok(registry);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{} did not answer /v2/ within 15 s",
            binary.display()
        ))
    }

    /// Whether `GET /v2/` answers 200 (distribution spec, "end-1").
    #[must_use]
    pub fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(&self.address) else {
            return false;
        };
        drop(stream.set_read_timeout(Some(Duration::from_secs(2))));
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.address);
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut response = String::new();
        drop(stream.read_to_string(&mut response));
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")
    }

    /// Stops it (a test that proves nothing more is asked of it).
    pub fn stop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
