//! The Job that imports one window: a pure function from the import spec and the window to a
//! Job object, so what runs in the cluster can be read and tested without a cluster.

use k8s_openapi::api::batch::v1::Job;
use serde_json::{Value, json};

use super::{LABEL_IMPORT, LABEL_MANAGED_BY, LABEL_WINDOW, MANAGED_BY};
use crate::error::{Error, Result};
use crate::ledger::configmap::MAX_GENERATION;
use crate::plan::Window;
use crate::spec::{EndpointSpec, ImportSpec};
use crate::timespec::format_ms;

/// `NAME-wSTART_MS`, and `NAME-wSTART_MS-G` after the import's G-th resume: deterministic, so
/// a window never gets a second Job (the API server refuses a second create), and DNS-safe
/// within 63 characters (names are at most 40). The start alone is unique: the windows of one
/// import never share a start. The generation is there because a Job re-created under the name
/// of one deleted moments before (by `stop`, or by `resume` for a failed window) can wait five
/// minutes for its first pod: the Job controller keeps its expectations by name (seen on
/// Kubernetes 1.20).
pub fn job_name(import: &str, window: Window, generation: u32) -> String {
    debug_assert!(generation <= MAX_GENERATION);
    match generation {
        0 => format!("{import}-w{}", window.start_ms),
        g => format!("{import}-w{}-{g}", window.start_ms),
    }
}

pub fn job_for_window(
    spec: &ImportSpec,
    ledger_name: &str,
    ledger_uid: &str,
    window: Window,
    generation: u32,
) -> Result<Job> {
    let name = job_name(&spec.name, window, generation);
    // The window's key: the scheduler finds the window again from it, to the millisecond.
    let window_label = window.key();
    let labels = json!({
        "app.kubernetes.io/name": "promimport",
        "app.kubernetes.io/component": "worker",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_IMPORT: spec.name,
        LABEL_WINDOW: window_label,
    });
    let env = worker_env(spec, ledger_name, window);

    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "promimport.io/window-start": format_ms(window.start_ms),
                "promimport.io/window-end": format_ms(window.end_ms),
            },
            // Deleting the ledger deletes the import's Jobs (and their pods) with it.
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": ledger_name, "uid": ledger_uid,
            }],
        },
        "spec": {
            "backoffLimit": spec.worker.backoff_limit,
            "activeDeadlineSeconds": spec.worker.active_deadline_seconds,
            "ttlSecondsAfterFinished": spec.worker.ttl_seconds_after_finished,
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": spec.worker.service_account_name,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "containers": [{
                        "name": "worker",
                        "image": spec.worker.image,
                        "imagePullPolicy": spec.worker.image_pull_policy,
                        "args": ["worker"],
                        "env": env,
                        "resources": spec.worker.resources,
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "capabilities": { "drop": ["ALL"] },
                        },
                    }],
                },
            },
        },
    });
    serde_json::from_value(job)
        .map_err(|e| Error::Internal(format!("the Job for window {window} is malformed: {e}")))
}

/// A window's worker environment: the PROMIMPORT_* variables that `WorkerOptions::from_vars`
/// reads back, credentials and certificates as Secret references.
fn worker_env(spec: &ImportSpec, ledger_name: &str, window: Window) -> Vec<Value> {
    let mut env = vec![
        plain("PROMIMPORT_SOURCE", &spec.source.url),
        plain("PROMIMPORT_DEST", &spec.destination.url),
        plain("PROMIMPORT_WINDOW_START", &format_ms(window.start_ms)),
        plain("PROMIMPORT_WINDOW_END", &format_ms(window.end_ms)),
        plain("PROMIMPORT_LEDGER", ledger_name),
        json!({"name": "PROMIMPORT_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
        plain("RUST_LOG", "info"),
    ];
    // Lists travel one item per line: selectors contain commas.
    if !spec.selectors.is_empty() {
        env.push(plain("PROMIMPORT_MATCH", &spec.selectors.join("\n")));
    }
    if !spec.drop_labels.is_empty() {
        env.push(plain("PROMIMPORT_DROP_LABEL", &spec.drop_labels.join("\n")));
    }
    if !spec.set_labels.is_empty() {
        let lines: Vec<String> = spec
            .set_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.push(plain("PROMIMPORT_SET_LABEL", &lines.join("\n")));
    }
    if let Some(n) = spec.worker.batch_samples {
        env.push(plain("PROMIMPORT_BATCH_SAMPLES", &n.to_string()));
    }
    if let Some(n) = spec.worker.retries {
        env.push(plain("PROMIMPORT_RETRIES", &n.to_string()));
    }
    if let Some(n) = spec.worker.max_samples_per_second {
        env.push(plain("PROMIMPORT_MAX_SAMPLES_PER_SECOND", &n.to_string()));
    }
    for (prefix, endpoint) in [("SOURCE", &spec.source), ("DEST", &spec.destination)] {
        endpoint_env(prefix, endpoint, &mut env);
    }
    env
}

fn plain(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value })
}

fn secret_env(name: &str, secret: &str, key: &str) -> Value {
    json!({ "name": name, "valueFrom": { "secretKeyRef": { "name": secret, "key": key } } })
}

/// Credentials arrive as references to Secrets, never as values in the Job.
fn endpoint_env(prefix: &str, endpoint: &EndpointSpec, env: &mut Vec<Value>) {
    if !endpoint.headers.is_empty() {
        let lines: Vec<String> = endpoint
            .headers
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.push(plain(
            &format!("PROMIMPORT_{prefix}_HEADER"),
            &lines.join("\n"),
        ));
    }
    if let Some(secret) = &endpoint.bearer_token_secret {
        env.push(secret_env(
            &format!("PROMIMPORT_{prefix}_BEARER_TOKEN"),
            &secret.name,
            &secret.key,
        ));
    }
    if let Some(basic) = &endpoint.basic_auth {
        env.push(plain(
            &format!("PROMIMPORT_{prefix}_BASIC_USER"),
            &basic.username,
        ));
        env.push(secret_env(
            &format!("PROMIMPORT_{prefix}_BASIC_PASSWORD"),
            &basic.password_secret.name,
            &basic.password_secret.key,
        ));
    }
    // Certificates travel like the other credentials: as Secret references in the
    // environment, so the worker needs no mounted files on its read-only root filesystem.
    if let Some(ca) = &endpoint.ca_secret {
        env.push(secret_env(
            &format!("PROMIMPORT_{prefix}_CA"),
            &ca.name,
            &ca.key,
        ));
    }
    if let Some(client) = &endpoint.client_cert_secret {
        env.push(secret_env(
            &format!("PROMIMPORT_{prefix}_CLIENT_CERT"),
            &client.name,
            &client.cert_key,
        ));
        env.push(secret_env(
            &format!("PROMIMPORT_{prefix}_CLIENT_KEY"),
            &client.name,
            &client.key_key,
        ));
    }
    if let Some(name) = &endpoint.tls_server_name {
        env.push(plain(&format!("PROMIMPORT_{prefix}_TLS_SERVER_NAME"), name));
    }
    if endpoint.insecure_skip_verify {
        env.push(plain(
            &format!("PROMIMPORT_{prefix}_INSECURE_SKIP_VERIFY"),
            "true",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ImportSpec {
        ImportSpec::from_yaml(
            "test",
            r#"
name: rancher-history
source:
  url: http://prometheus:9090/api/v1/read
  caSecret: {name: prom-ca, key: ca.pem}
destination:
  url: http://cortex/api/v1/push
  headers: {X-Scope-OrgID: tenant}
  basicAuth: {username: importer, passwordSecret: {name: cortex, key: password}}
match: ['{job="node", mode!="idle"}', 'up']
dropLabels: [prometheus_replica]
"#,
        )
        .unwrap()
    }

    fn window() -> Window {
        Window {
            start_ms: 1_793_491_200_000,
            end_ms: 1_793_498_400_000,
        }
    }

    #[test]
    fn names_are_deterministic_dns_labels() {
        let name = job_name("rancher-history", window(), 0);
        assert_eq!(name, "rancher-history-w1793491200000");
        assert_eq!(
            job_name("rancher-history", window(), 3),
            "rancher-history-w1793491200000-3"
        );
        let longest = job_name(
            &"a".repeat(crate::spec::MAX_NAME_LEN),
            Window {
                start_ms: 9_999_999_999_999,
                end_ms: 0,
            },
            MAX_GENERATION,
        );
        assert!(longest.len() <= 63, "{longest}");
    }

    #[test]
    fn the_job_runs_hardened_with_the_window_and_no_credential_inline() {
        let job =
            job_for_window(&spec(), "promimport-rancher-history", "uid-1", window(), 0).unwrap();
        let json = serde_json::to_value(&job).unwrap();
        let pod = &json["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        assert_eq!(
            container["securityContext"]["capabilities"]["drop"][0],
            "ALL"
        );
        assert_eq!(json["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        let label = json["metadata"]["labels"]["promimport.io/window"]
            .as_str()
            .unwrap();
        assert_eq!(label, "1793491200000-1793498400000");
        assert_eq!(Window::from_key("label", label).unwrap(), window());
        let env: std::collections::BTreeMap<String, Value> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e.get("value").cloned().unwrap_or(e["valueFrom"].clone()),
                )
            })
            .collect();
        assert_eq!(env["PROMIMPORT_WINDOW_START"], "2026-11-01T00:00:00Z");
        assert_eq!(env["PROMIMPORT_WINDOW_END"], "2026-11-01T02:00:00Z");
        assert_eq!(
            env["PROMIMPORT_MATCH"],
            "{job=\"node\", mode!=\"idle\"}\nup"
        );
        assert_eq!(env["PROMIMPORT_DEST_HEADER"], "X-Scope-OrgID=tenant");
        assert_eq!(
            env["PROMIMPORT_DEST_BASIC_PASSWORD"]["secretKeyRef"]["name"],
            "cortex"
        );
        // Certificates arrive as Secret references too: no file is mounted.
        assert_eq!(
            env["PROMIMPORT_SOURCE_CA"]["secretKeyRef"]["name"],
            "prom-ca"
        );
        assert!(pod.get("volumes").is_none(), "{pod}");
    }

    proptest::proptest! {
        /// Every planned window, starts with milliseconds included, is found again from its
        /// Job's label, and its Job's name is a unique DNS label within 63 characters.
        #[test]
        fn every_planned_window_is_found_again_from_its_jobs_label(
            start in 0i64..4_000_000_000_000,
            span in 1i64..(30 * 3_600_000),
            window in crate::plan::MIN_WINDOW_MS..(6 * 3_600_000),
            generation in 0u32..=MAX_GENERATION,
        ) {
            let range = Window { start_ms: start, end_ms: start + span };
            let mut names = std::collections::BTreeSet::new();
            for planned in crate::plan::plan_windows(range, window, &[]) {
                let job = job_for_window(&spec(), "promimport-rancher-history", "uid", planned, generation).unwrap();
                let label = &job.metadata.labels.as_ref().unwrap()[super::LABEL_WINDOW];
                proptest::prop_assert_eq!(Window::from_key("label", label).unwrap(), planned);
                let name = job.metadata.name.unwrap();
                proptest::prop_assert!(name.len() <= 63, "{}", name);
                proptest::prop_assert!(names.insert(name));
            }
        }
    }

    #[test]
    fn every_field_of_a_spec_reaches_the_worker_alike_in_a_job_and_in_a_local_run() {
        use crate::worker::options::WorkerOptions;
        let spec = ImportSpec::from_yaml(
            "test",
            r#"
name: every-field
source:
  url: https://prometheus:9090/api/v1/read
  headers: {X-Source: s}
  insecureSkipVerify: true
destination:
  url: https://cortex/api/v1/push
  headers: {X-Scope-OrgID: tenant, X-Other: "a=b"}
  insecureSkipVerify: true
  # With skipping verification, a name to verify is refused when the client is built; this
  # test is about every field reaching the worker, which builds no client here.
  tlsServerName: cortex-distributor
match: ['{job="node", mode!="idle"}', 'up']
dropLabels: [prometheus_replica, prometheus]
setLabels: {origin: old, cluster: "c-1"}
worker:
  batchSamples: 1234
  retries: 7
  maxSamplesPerSecond: 5000
"#,
        )
        .unwrap();
        let job = job_for_window(&spec, "promimport-every-field", "uid", window(), 0).unwrap();
        let json = serde_json::to_value(&job).unwrap();
        let env: Vec<(String, String)> = json["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_string(),
                    e["value"].as_str()?.to_string(),
                ))
            })
            .collect();
        let in_job = WorkerOptions::from_vars(env).unwrap();
        let local = WorkerOptions::for_spec(&spec);
        let project = |options: &WorkerOptions| {
            let s = options.settings().unwrap();
            (
                (
                    s.source.url,
                    s.source.headers,
                    s.source.insecure_skip_verify,
                ),
                (
                    s.dest.url,
                    s.dest.headers,
                    s.dest.insecure_skip_verify,
                    s.dest.tls_server_name,
                ),
                s.selectors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                (s.labels.drop, s.labels.set),
                (
                    s.batch.max_samples,
                    s.retry.retries,
                    s.max_samples_per_second,
                ),
            )
        };
        let expected = (
            (
                "https://prometheus:9090/api/v1/read".to_string(),
                vec!["X-Source=s".to_string()],
                true,
            ),
            (
                "https://cortex/api/v1/push".to_string(),
                vec![
                    "X-Other=a=b".to_string(),
                    "X-Scope-OrgID=tenant".to_string(),
                ],
                true,
                Some("cortex-distributor".to_string()),
            ),
            vec![
                "{job=\"node\", mode!=\"idle\"}".to_string(),
                "up".to_string(),
            ],
            (
                vec!["prometheus_replica".to_string(), "prometheus".to_string()],
                vec![
                    ("cluster".to_string(), "c-1".to_string()),
                    ("origin".to_string(), "old".to_string()),
                ],
            ),
            (1234, 7, Some(5000.0)),
        );
        assert_eq!(project(&in_job), expected, "the Job's worker");
        assert_eq!(project(&local), expected, "import start --local");
    }
}
