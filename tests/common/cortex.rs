//! A real Cortex v1.19.1 for the tests (../shared/cortex/up): every component in one process,
//! blocks on the local filesystem, multi-tenant, on free loopback ports, killed when dropped.

use std::path::PathBuf;
use std::process::Command;

use super::{Data, decode_samples, raw_read_with, temp_dir};
use promimport::proto::read_request::ResponseType;

pub struct Cortex {
    /// The base URL: push at `/api/v1/push`, query at `/prometheus/api/v1/...`.
    pub url: String,
    pub dir: PathBuf,
    pid: u32,
}

/// Where the shared Cortex scripts live, beside this repository.
fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/cortex")
        .join(name)
}

impl Cortex {
    /// Starts a Cortex with `settings` (`CORTEX_*` variables, see ../shared/cortex/up; Cortex's
    /// defaults otherwise, but a 240h out-of-order window unless `CORTEX_OOO_WINDOW` says).
    pub fn start(name: &str, settings: &[(&str, &str)]) -> Cortex {
        let dir = temp_dir(&format!("{name}-cortex")).join("cortex");
        let out = Command::new(script("up"))
            .arg(&dir)
            .envs(settings.iter().copied())
            .output()
            .expect("../shared/cortex/up runs");
        assert!(
            out.status.success(),
            "cortex did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let pid = std::fs::read_to_string(dir.join("cortex.pid"))
            .expect("cortex.pid")
            .trim()
            .parse()
            .expect("a pid");
        Cortex { url, dir, pid }
    }

    pub fn push_url(&self) -> String {
        format!("{}/api/v1/push", self.url)
    }

    pub fn read_url(&self) -> String {
        format!("{}/prometheus/api/v1/read", self.url)
    }

    /// Every raw sample the tenant holds in [start, end), read back through Cortex's own
    /// remote read (its querier), not through promimport.
    pub fn read_samples(&self, tenant: &str, start_ms: i64, end_ms: i64) -> Data {
        let (_, body) = raw_read_with(
            &self.read_url(),
            &[("X-Scope-OrgID", tenant)],
            start_ms,
            end_ms,
            ResponseType::Samples,
        );
        decode_samples(&body, start_ms, end_ms)
    }
}

impl Drop for Cortex {
    fn drop(&mut self) {
        // Killed, not stopped: its data dies with the test, so leaving the ring is moot.
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
    }
}
