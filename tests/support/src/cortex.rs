//! A real Cortex v1.19 for the tests (../shared/cortex/up, with the binary that `CORTEX_BIN`
//! names): every component in one process, blocks on the local filesystem, multi-tenant, on free
//! loopback ports, killed when dropped. The tests that start one are `#[ignore]`d, "needs
//! CORTEX_BIN": no package registry carries Cortex, so none is fetched, and scripts/test runs
//! them only where `CORTEX_BIN` is set. Without it, `cortex_replay` plays back what a real
//! Cortex answered.

use std::path::PathBuf;
use std::process::Command;

use super::cortex_stories::CortexLike;
use super::{Data, decode_samples, raw_read_with, temp_dir};
use promimport::proto::read_request::ResponseType;

pub struct Cortex {
    /// The base URL: push at `/api/v1/push`, query at `/prometheus/api/v1/...`.
    pub url: String,
    pub dir: PathBuf,
    pid: u32,
    /// The process, when this test started it itself (`start_on_s3`) rather than `up`.
    child: Option<std::process::Child>,
}

/// Where the shared Cortex scripts live, beside this repository.
fn script(name: &str) -> PathBuf {
    super::repo_root().join("../shared/cortex").join(name)
}

impl Cortex {
    /// Starts a Cortex with `settings` (`CORTEX_*` variables, see ../shared/cortex/up; Cortex's
    /// defaults otherwise, but a 240h out-of-order window unless `CORTEX_OOO_WINDOW` says, and
    /// a ship interval of 1h unless `CORTEX_SHIP_INTERVAL` says).
    ///
    /// Why the ship interval: with Cortex's 1m, ingesters upload the blocks they cut from old
    /// samples and then drop those older than their 6h retention, and queries miss them until
    /// the store-gateway's next sync (15m). A test that reads back what it imported would then
    /// see part of it, depending on how slow the machine is (CI saw 1 384 of 6 240 samples of a
    /// series). The test of that delay sets its own interval.
    pub fn start(name: &str, settings: &[(&str, &str)]) -> Cortex {
        let mut settings = settings.to_vec();
        if !settings.iter().any(|(k, _)| *k == "CORTEX_SHIP_INTERVAL") {
            settings.push(("CORTEX_SHIP_INTERVAL", "1h"));
        }
        Self::start_once(name, &settings)
    }

    fn start_once(name: &str, settings: &[(&str, &str)]) -> Cortex {
        let base = temp_dir(&format!("{name}-cortex"));
        // `up` picks free ports and Cortex binds them a moment later; another server of a
        // parallel test may take one in between. A new try gets new ports.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = base.join(format!("cortex-{attempt}"));
            let out = Command::new(script("up"))
                .arg(&dir)
                // Cortex keeps its active query log in `./active-query-tracker/queries.active`
                // and mmaps it: two Cortex of parallel tests in one working directory shared that
                // file, and one crashed with SIGBUS when the other recreated it (CI, chart tests).
                .current_dir(&base)
                .envs(settings.iter().copied())
                .output()
                .expect("../shared/cortex/up runs");
            let said = String::from_utf8_lossy(&out.stderr);
            // 77: no binary. Only a test run with --include-ignored and no CORTEX_BIN gets here.
            assert_ne!(
                out.status.code(),
                Some(77),
                "this test needs a real Cortex: set CORTEX_BIN to a Cortex v1.19 binary ({said})"
            );
            if !out.status.success() && said.contains("address already in use") && attempt < 3 {
                continue;
            }
            assert!(out.status.success(), "cortex did not start: {said}");
            let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let pid = std::fs::read_to_string(dir.join("cortex.pid"))
                .expect("cortex.pid")
                .trim()
                .parse()
                .expect("a pid");
            return Cortex {
                url,
                dir,
                pid,
                child: None,
            };
        }
    }

    /// A Cortex whose blocks storage is the S3 bucket `bucket` at `endpoint` (an S3-compatible
    /// server on loopback, e.g. moto): `up` makes its configuration, then that Cortex is
    /// replaced by one of the same binary (`CORTEX_BIN`, which `up` records in DIR/env) with
    /// `blocks_storage` on S3, on the same ports.
    pub fn start_on_s3(
        name: &str,
        settings: &[(&str, &str)],
        endpoint: &str,
        bucket: &str,
    ) -> Cortex {
        let first = Self::start(name, settings);
        let config = first.dir.join("cortex.yaml");
        let yaml = std::fs::read_to_string(&config).expect("up writes cortex.yaml");
        let filesystem = format!(
            "  backend: filesystem\n  filesystem: {{dir: {}/blocks}}\n",
            first.dir.display()
        );
        assert!(
            yaml.contains(&filesystem),
            "the template's blocks storage: {yaml}"
        );
        let s3 = format!(
            "  backend: s3\n  s3: {{endpoint: {endpoint}, bucket_name: {bucket}, access_key_id: x, \
             secret_access_key: y, insecure: true}}\n"
        );
        std::fs::write(&config, yaml.replace(&filesystem, &s3)).unwrap();
        let (url, dir) = (first.url.clone(), first.dir.clone());
        drop(first);
        let env = std::fs::read_to_string(dir.join("env")).expect("up writes DIR/env");
        let binary = env
            .lines()
            .find_map(|line| line.strip_prefix("CORTEX_BIN="))
            .map(PathBuf::from)
            .expect("DIR/env names CORTEX_BIN");
        // The ports the killed one held may take a moment to free.
        for _ in 0..20 {
            let child = Command::new(&binary)
                .arg(format!("-config.file={}", config.display()))
                .current_dir(dir.parent().expect("a parent"))
                .stdout(std::fs::File::create(dir.join("cortex-s3.log")).unwrap())
                .stderr(std::process::Stdio::from(
                    std::fs::File::options()
                        .append(true)
                        .open(dir.join("cortex-s3.log"))
                        .unwrap(),
                ))
                .spawn()
                .expect("the Cortex binary that CORTEX_BIN names");
            let cortex = Cortex {
                url: url.clone(),
                dir: dir.clone(),
                pid: child.id(),
                child: Some(child),
            };
            let client = reqwest::blocking::Client::new();
            for _ in 0..240 {
                std::thread::sleep(std::time::Duration::from_millis(500));
                if client
                    .get(format!("{url}/ready"))
                    .send()
                    .is_ok_and(|r| r.status().is_success())
                {
                    return cortex;
                }
                let log = std::fs::read_to_string(dir.join("cortex-s3.log")).unwrap_or_default();
                if log.contains("address already in use") {
                    break;
                }
            }
        }
        panic!(
            "Cortex on S3 did not start: see {}",
            dir.join("cortex-s3.log").display()
        );
    }

    /// Every raw sample the tenant holds in [start, end), read back through Cortex's own
    /// remote read (its querier), not through promimport.
    pub fn read_samples(&self, tenant: &str, start_ms: i64, end_ms: i64) -> Data {
        self.read_samples_with(&reqwest::blocking::Client::new(), tenant, start_ms, end_ms)
    }

    /// `read_samples` with a client of the test's making (client certificates).
    pub fn read_samples_with(
        &self,
        client: &reqwest::blocking::Client,
        tenant: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Data {
        let (_, body) = raw_read_with(
            client,
            &self.read_url(),
            &[("X-Scope-OrgID", tenant)],
            start_ms,
            end_ms,
            ResponseType::Samples,
        );
        decode_samples(&body, start_ms, end_ms)
    }
}

impl CortexLike for Cortex {
    fn base_url(&self) -> String {
        self.url.clone()
    }

    fn holds(&self, tenant: &str, start_ms: i64, end_ms: i64) -> Data {
        self.read_samples(tenant, start_ms, end_ms)
    }
}

impl Cortex {
    /// `read_samples`, again every 3 s until the tenant holds `expected` samples or 3 minutes
    /// have passed: blocks put into the bucket are served only after Cortex's next sync of it.
    /// What it holds then is the test's to compare.
    pub fn read_samples_once_synced(
        &self,
        tenant: &str,
        start_ms: i64,
        end_ms: i64,
        expected: usize,
    ) -> Data {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            let held = self.read_samples(tenant, start_ms, end_ms);
            if super::total_samples(&held) >= expected || std::time::Instant::now() > deadline {
                return held;
            }
            std::thread::sleep(std::time::Duration::from_secs(3));
        }
    }
}

/// Certificates as Opni issues them (cert-manager, Ed25519): a CA, a serving certificate
/// naming only the short Service names, and a client certificate. The files `up` wants
/// (server.crt, server.key, client-ca.crt) and the client's (ca.crt, client.crt, client.key).
pub fn opni_certificates(name: &str) -> std::path::PathBuf {
    let dir = temp_dir(&format!("{name}-tls"));
    super::openssl(
        &dir,
        &["genpkey", "-algorithm", "ed25519", "-out", "ca.key"],
    );
    super::openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-days",
            "2",
            "-subj",
            "/CN=cortex-ca",
            "-out",
            "ca.crt",
        ],
    );
    for (who, subject, ext) in [
        (
            "server",
            "/CN=cortex",
            "subjectAltName=DNS:cortex-distributor,DNS:cortex-querier,DNS:cortex-ingester,\
             DNS:cortex-compactor,DNS:cortex-store-gateway,DNS:cortex-server\n\
             basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "client",
            "/CN=cortex-client",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        ),
    ] {
        std::fs::write(dir.join(format!("{who}.cnf")), ext).unwrap();
        super::openssl(
            &dir,
            &[
                "genpkey",
                "-algorithm",
                "ed25519",
                "-out",
                &format!("{who}.key"),
            ],
        );
        super::openssl(
            &dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{who}.key"),
                "-subj",
                subject,
                "-out",
                &format!("{who}.csr"),
            ],
        );
        super::sign_with_ca(
            &dir,
            &format!("{who}.csr"),
            &format!("{who}.cnf"),
            &format!("{who}.crt"),
        );
    }
    std::fs::copy(dir.join("ca.crt"), dir.join("client-ca.crt")).unwrap();
    dir
}

impl Drop for Cortex {
    fn drop(&mut self) {
        // Killed, not stopped: its data dies with the test, so leaving the ring is moot.
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
        if let Some(child) = &mut self.child {
            let _ = child.wait();
        }
    }
}
