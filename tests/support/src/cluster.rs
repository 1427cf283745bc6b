//! The project's own Kubernetes cluster for the tests (scripts/cluster): kube-apiserver, the
//! controllers, kube-scheduler, and a real kubelet running the image (scripts/image) in
//! containers, in a network namespace of its own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use promimport::window::Window;

pub struct Cluster {
    pub dir: PathBuf,
}

/// The cluster that scripts/cluster started (`PROMTEST_CLUSTER`, its directory), in whose
/// network namespace this test binary runs: scripts/test runs the Kubernetes tests so.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let dir = std::env::var_os("PROMTEST_CLUSTER").map(PathBuf::from);
        let dir = dir.filter(|d| d.join("kubeconfig").is_file()).expect(
            "no PROMTEST_CLUSTER: these tests run on real pods; scripts/test starts \
             `scripts/cluster up DIR` and runs them inside its network namespace \
             (nsenter --net=$(cat DIR/netns)) with PROMTEST_CLUSTER=DIR",
        );
        Cluster { dir }
    })
}

/// A namespace of a real-pod test, deleted when the test ends, passed or failed: the scheduler
/// and workers of a failed test would otherwise hold the node's CPU (2, and a worker requests
/// 500m) and leave the next test's pods Pending.
pub struct TestNamespace<'a> {
    cluster: &'a Cluster,
    pub name: &'a str,
}

impl<'a> TestNamespace<'a> {
    pub fn create(cluster: &'a Cluster, name: &'a str) -> Self {
        cluster.kubectl(&["create", "namespace", name]);
        TestNamespace { cluster, name }
    }
}

impl Drop for TestNamespace<'_> {
    fn drop(&mut self) {
        // Not `kubectl()`: a failure here must not panic while a test's panic unwinds.
        let deleted = Command::new("kubectl")
            .args(["delete", "namespace", self.name, "--timeout=120s"])
            .env("KUBECONFIG", self.cluster.admin())
            .output();
        if !deleted.is_ok_and(|out| out.status.success()) {
            eprintln!("namespace {} was not deleted within 120 s", self.name);
        }
    }
}

/// What an import's ledger ConfigMap says: its state and message, its range, the window records
/// not yet compacted (key → JSON), and the compacted ranges of done windows.
#[derive(Debug)]
pub struct Ledger {
    pub state: String,
    pub message: String,
    pub range_start_ms: i64,
    pub range_end_ms: Option<i64>,
    pub records: Vec<(String, serde_json::Value)>,
    pub ranges: Vec<serde_json::Value>,
}

impl Ledger {
    /// Windows recorded, compacted or not.
    pub fn windows(&self) -> u64 {
        self.records.len() as u64
            + self
                .ranges
                .iter()
                .map(|r| r["windows"].as_u64().unwrap())
                .sum::<u64>()
    }

    /// Every window done, with every sample read written.
    pub fn all_exact(&self) -> bool {
        self.records
            .iter()
            .all(|(_, w)| w["status"] == "done" && w["read"] == w["written"])
            && self.ranges.iter().all(|r| r["read"] == r["written"])
    }

    /// The compacted ranges, as `[start_ms, end_ms)`.
    pub fn spans(&self) -> Vec<(i64, i64)> {
        self.ranges
            .iter()
            .map(|r| {
                (
                    r["window"]["start_ms"].as_i64().unwrap(),
                    r["window"]["end_ms"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    /// Which of `planned` the ledger holds as done.
    pub fn done_of(&self, planned: &[Window]) -> Vec<Window> {
        let spans = self.spans();
        planned
            .iter()
            .copied()
            .filter(|w| {
                spans
                    .iter()
                    .any(|&(start, end)| start <= w.start_ms && w.end_ms <= end)
                    || self
                        .records
                        .iter()
                        .any(|(k, r)| k == &format!("w-{}", w.key()) && r["status"] == "done")
            })
            .collect()
    }
}

impl Cluster {
    /// An import's ledger, or `None` before a scheduler made it.
    pub fn ledger(&self, namespace: &str, import: &str) -> Option<Ledger> {
        let json = self.kubectl(&[
            "get",
            "configmap",
            &format!("promimport-{import}"),
            "-n",
            namespace,
            "-o",
            "json",
            "--ignore-not-found",
        ]);
        if json.trim().is_empty() {
            return None;
        }
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        let data = json["data"].as_object().unwrap();
        let text = |key: &str| data.get(key).and_then(|v| v.as_str());
        let time = |key: &str| {
            text(key).map(|t| promimport::timespec::parse_time("ledger", t, 0).unwrap())
        };
        Some(Ledger {
            state: text("state").unwrap().to_string(),
            message: text("message").unwrap_or_default().to_string(),
            range_start_ms: time("rangeStart").unwrap(),
            range_end_ms: time("rangeEnd"),
            records: data
                .iter()
                .filter(|(k, _)| k.starts_with("w-"))
                .map(|(k, v)| {
                    (
                        k.clone(),
                        serde_json::from_str(v.as_str().unwrap()).unwrap(),
                    )
                })
                .collect(),
            ranges: text("done")
                .map(|d| serde_json::from_str(d).unwrap())
                .unwrap_or_default(),
        })
    }

    /// An import's Jobs: window (from its label) → the Job's uid (a new uid is a window
    /// imported again).
    pub fn job_uids(&self, namespace: &str, import: &str) -> BTreeMap<Window, String> {
        self.kubectl(&[
            "get",
            "jobs",
            "-n",
            namespace,
            "-l",
            &format!("promimport.io/import={import}"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.labels.promimport\\.io/window} {.metadata.uid}{\"\\n\"}{end}",
        ])
        .lines()
        .map(|l| {
            let (window, uid) = l.split_once(' ').unwrap();
            (Window::from_key("Job label", window).unwrap(), uid.to_string())
        })
        .collect()
    }

    /// Waits until nothing of a helm release is left in `namespace` (its Jobs, pods,
    /// ConfigMaps, accounts, roles and Secrets); panics with what is left after `within`.
    pub fn wait_until_release_gone(&self, namespace: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = self.kubectl(&[
                "get",
                "jobs,pods,configmaps,serviceaccounts,roles,rolebindings,secrets",
                "-n",
                namespace,
                "-o",
                "name",
            ]);
            // The namespace's own default account, its token and the API server's root CA stay.
            let ours: Vec<&str> = left
                .lines()
                .filter(|l| !l.contains("/default") && !l.contains("kube-root-ca"))
                .collect();
            if ours.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "left {within:?} after helm uninstall: {ours:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The promimport image the cluster's containerd holds (`REPOSITORY:TAG`), as scripts/cluster
    /// wrote it.
    pub fn image(&self) -> String {
        let image = std::fs::read_to_string(self.dir.join("image"))
            .expect("scripts/cluster up writes DIR/image");
        image.trim().to_string()
    }

    /// The chart's values that point it at [`Cluster::image`], as a user points it at theirs.
    pub fn image_sets(&self) -> [String; 2] {
        let image = self.image();
        let (repository, tag) = image.rsplit_once(':').expect("REPOSITORY:TAG");
        [
            format!("image.repository={repository}"),
            format!("image.tag={tag}"),
        ]
    }

    pub fn admin(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.admin())
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A namespace with promimport's RBAC applied, and a kubeconfig for the scheduler's
    /// service account, so the scheduler runs with exactly the permissions the manifests give.
    pub fn namespace(&self, name: &str) -> PathBuf {
        self.kubectl(&["create", "namespace", name]);
        let rbac = super::repo_root().join("manifests/rbac.yaml");
        self.kubectl(&["apply", "-n", name, "-f", rbac.to_str().unwrap()]);
        self.service_account_kubeconfig(name, "promimport-scheduler")
    }

    pub fn service_account_kubeconfig(&self, namespace: &str, account: &str) -> PathBuf {
        let deadline = Instant::now() + Duration::from_secs(30);
        let secret = loop {
            let name = self.kubectl(&[
                "get",
                "sa",
                account,
                "-n",
                namespace,
                "-o",
                "jsonpath={.secrets[0].name}",
            ]);
            if !name.is_empty() {
                break name;
            }
            assert!(Instant::now() < deadline, "no token for {account}");
            std::thread::sleep(Duration::from_millis(200));
        };
        let token = self.kubectl(&[
            "get",
            "secret",
            &secret,
            "-n",
            namespace,
            "-o",
            "jsonpath={.data.token}",
        ]);
        let token = String::from_utf8(base64_decode(&token)).unwrap();
        let server = std::fs::read_to_string(self.dir.join("server")).unwrap();
        let path = self.dir.join(format!("{namespace}-{account}.kubeconfig"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\n\
                 users:\n- name: u\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u, namespace: {namespace}}}\n\
                 current-context: c\n",
                server.trim(),
                self.dir.join("pki/ca.crt").display()
            ),
        )
        .unwrap();
        path
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
}
