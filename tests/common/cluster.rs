//! A real Kubernetes control plane for the tests (../shared/k8s/up): kube-apiserver, the Job,
//! CronJob, garbage-collector and service-account controllers, and a test node that runs each
//! pod as a local process of the built binary with its service account's token.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::temp_dir;

pub struct Cluster {
    pub dir: PathBuf,
}

/// One control plane for this test binary, torn down by a watchdog when the binary exits.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let shared = std::env::var_os("PROMIMPORT_K8S_LOCAL")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/k8s"));
        let dir = temp_dir("k8s");
        std::fs::remove_dir_all(&dir).unwrap();
        let out = Command::new(shared.join("up"))
            .arg(&dir)
            .env(
                "K8S_LOCAL_IMAGES",
                format!("promimport={}", env!("CARGO_BIN_EXE_promimport")),
            )
            .output()
            .expect("../shared/k8s/up runs (scripts/test builds it with ../shared/k8s/build)");
        assert!(
            out.status.success(),
            "k8s up: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let watchdog = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; {} {}",
            std::process::id(),
            shared.join("down").display(),
            dir.display()
        );
        // The watchdog outlives this process on purpose: it tears the cluster down after it.
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("bash")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Cluster { dir }
    })
}

impl Cluster {
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
        let rbac = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/rbac.yaml");
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
