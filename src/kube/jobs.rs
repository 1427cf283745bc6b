//! The Job that imports one window: a pure function from the import spec and the window to a
//! Job object, so what runs in the cluster can be read and tested without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource, KeyToPath,
    ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile,
    SecretEnvSource, SecretKeySelector, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::ledger::MAX_GENERATION;
use super::{LABEL_IMPORT, LABEL_MANAGED_BY, LABEL_SOURCE, LABEL_WINDOW, MANAGED_BY, source_label};
use crate::error::{Error, Result};
use crate::name_value::NameValue;
use crate::spec::{EndpointSpec, ImportSpec};
use crate::timespec::format_ms;
use crate::window::Window;

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
    // The window's key: the scheduler finds the window again from it, to the millisecond.
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "promimport".to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            "worker".to_string(),
        ),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_IMPORT.to_string(), spec.name.clone()),
        (LABEL_WINDOW.to_string(), window.key()),
        (LABEL_SOURCE.to_string(), source_label(&spec.source.url)),
    ]);
    let metadata = ObjectMeta {
        name: Some(job_name(&spec.name, window, generation)),
        labels: Some(labels.clone()),
        annotations: Some(BTreeMap::from([
            (
                "promimport.io/window-start".to_string(),
                format_ms(window.start_ms),
            ),
            (
                "promimport.io/window-end".to_string(),
                format_ms(window.end_ms),
            ),
        ])),
        // Deleting the ledger deletes the import's Jobs (and their pods) with it.
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: ledger_name.into(),
            uid: ledger_uid.into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..Default::default()
        }),
        spec: Some(worker_pod(spec, ledger_name, window)?),
    };
    Ok(Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(spec.worker.backoff_limit),
            active_deadline_seconds: Some(spec.worker.active_deadline_seconds),
            ttl_seconds_after_finished: Some(spec.worker.ttl_seconds_after_finished),
            template,
            ..Default::default()
        }),
        status: None,
    })
}

/// The worker's pod: one container of the image, non-root on a read-only root filesystem.
fn worker_pod(spec: &ImportSpec, ledger_name: &str, window: Window) -> Result<PodSpec> {
    let mut files = PodFiles::default();
    blocks_pod(spec, &mut files)?;
    for (prefix, endpoint) in [("SOURCE", &spec.source), ("DEST", &spec.destination)] {
        certificate_files(prefix, endpoint, &mut files);
    }
    let mut env = worker_env(spec, ledger_name, window);
    env.append(&mut files.env);
    let container = Container {
        name: "worker".into(),
        image: Some(spec.worker.image.clone()),
        image_pull_policy: Some(spec.worker.image_pull_policy.clone()),
        args: Some(vec!["worker".into()]),
        env: Some(env),
        // Only a blocks destination or certificates have these; other Jobs stay as they were.
        env_from: some(files.env_from),
        volume_mounts: some(files.mounts),
        resources: spec.worker.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: Some(spec.worker.service_account_name.clone()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        containers: vec![container],
        volumes: some(files.volumes),
        ..Default::default()
    })
}

/// A window's worker environment: the PROMIMPORT_* variables that `WorkerOptions::from_vars`
/// reads back, credentials as Secret references.
fn worker_env(spec: &ImportSpec, ledger_name: &str, window: Window) -> Vec<EnvVar> {
    let namespace = EnvVar {
        name: "PROMIMPORT_NAMESPACE".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.namespace".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut env = vec![
        plain("PROMIMPORT_SOURCE", &spec.source.url),
        plain("PROMIMPORT_DEST", &spec.destination.url),
        plain("PROMIMPORT_WINDOW_START", &format_ms(window.start_ms)),
        plain("PROMIMPORT_WINDOW_END", &format_ms(window.end_ms)),
        plain("PROMIMPORT_LEDGER", ledger_name),
        namespace,
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
        env.push(plain("PROMIMPORT_SET_LABEL", &pair_lines(&spec.set_labels)));
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
    if let Some(n) = spec.worker.max_read_samples_per_second {
        env.push(plain(
            "PROMIMPORT_MAX_READ_SAMPLES_PER_SECOND",
            &n.to_string(),
        ));
    }
    if let Some(n) = spec.worker.metrics_per_read {
        env.push(plain("PROMIMPORT_METRICS_PER_READ", &n.to_string()));
    }
    for (prefix, endpoint) in [("SOURCE", &spec.source), ("DEST", &spec.destination)] {
        endpoint_env(prefix, endpoint, &mut env);
    }
    if let Some(blocks) = &spec.destination.blocks {
        env.push(plain("PROMIMPORT_DEST_BLOCKS", &blocks.url));
        if let Some(tenant) = &blocks.tenant {
            env.push(plain("PROMIMPORT_TENANT", tenant));
        }
        // A bucket's block is staged in the temporary directory, on the emptyDir below.
        env.push(plain("TMPDIR", BLOCKS_STAGING));
    }
    env
}

/// Where a Job stages a block before uploading it: the root filesystem is read-only.
const BLOCKS_STAGING: &str = "/var/tmp/promimport";

/// What a pod gets beside its plain environment: the variables that name its files, variables
/// from a whole Secret, and its volumes and their mounts.
#[derive(Default)]
struct PodFiles {
    env: Vec<EnvVar>,
    env_from: Vec<EnvFromSource>,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
}

/// What a blocks destination adds to a Job's pod: its credentials as environment (`envFrom`
/// a Secret), a writable staging directory, and for `file://` the volume that holds it.
fn blocks_pod(spec: &ImportSpec, files: &mut PodFiles) -> Result<()> {
    let Some(blocks) = &spec.destination.blocks else {
        return Ok(());
    };
    if let Some(secret) = &blocks.credentials_secret {
        files.env_from.push(EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    files.volumes.push(Volume {
        name: "staging".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    files.mounts.push(mount("staging", BLOCKS_STAGING));
    if let (Some(source), Some(path)) = (&blocks.volume, blocks.url.strip_prefix("file://")) {
        let mut source = source.clone();
        if let Some(fields) = source.as_object_mut() {
            fields.insert("name".into(), "blocks".into());
        }
        // The spec checked it is an object; a misspelt or mistyped field is refused here
        // rather than silently dropped.
        let volume: Volume = serde_json::from_value(source.clone()).map_err(|e| {
            Error::invalid(
                "destination.blocks.volume",
                source.to_string(),
                format!("{e}; expected a volume source such as {{persistentVolumeClaim: {{claimName: NAME}}}}"),
            )
        })?;
        files.volumes.push(volume);
        files.mounts.push(mount("blocks", path));
    }
    Ok(())
}

/// Where a Job's certificates are mounted, a directory per Secret: `source-ca`, `dest-client`.
const CERTIFICATES: &str = "/etc/promimport";

/// Certificates and keys arrive as Secret volumes, read-only mounts beside the read-only root,
/// and the worker reads them as it reads `--dest-ca-file` and the others: a key never sits in
/// the pod's environment, and a CA bundle of any size fits.
fn certificate_files(prefix: &str, endpoint: &EndpointSpec, files: &mut PodFiles) {
    let role = prefix.to_ascii_lowercase();
    if let Some(ca) = &endpoint.ca_secret {
        let dir = files.secret_volume(&format!("{role}-ca"), &ca.name, &[(&ca.key, "ca.crt")]);
        let path = format!("{dir}/ca.crt");
        files
            .env
            .push(plain(&format!("PROMIMPORT_{prefix}_CA_FILE"), &path));
    }
    if let Some(client) = &endpoint.client_cert_secret {
        let dir = files.secret_volume(
            &format!("{role}-client"),
            &client.name,
            &[(&client.cert_key, "tls.crt"), (&client.key_key, "tls.key")],
        );
        let (cert, key) = (format!("{dir}/tls.crt"), format!("{dir}/tls.key"));
        files
            .env
            .push(plain(&format!("PROMIMPORT_{prefix}_CERT_FILE"), &cert));
        files
            .env
            .push(plain(&format!("PROMIMPORT_{prefix}_KEY_FILE"), &key));
    }
}

impl PodFiles {
    /// Mounts the Secret's `keys` (key, file name) read-only as the volume `name`; returns the
    /// directory they are in.
    fn secret_volume(&mut self, name: &str, secret: &str, keys: &[(&String, &str)]) -> String {
        let items = keys
            .iter()
            .map(|(key, path)| KeyToPath {
                key: (*key).clone(),
                path: (*path).into(),
                mode: None,
            })
            .collect();
        self.volumes.push(Volume {
            name: name.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.into()),
                items: Some(items),
                ..Default::default()
            }),
            ..Default::default()
        });
        let dir = format!("{CERTIFICATES}/{name}");
        self.mounts.push(VolumeMount {
            read_only: Some(true),
            ..mount(name, &dir)
        });
        dir
    }
}

/// A list field that is left out when empty, as the pod had it before it had any.
fn some<T>(list: Vec<T>) -> Option<Vec<T>> {
    (!list.is_empty()).then_some(list)
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

/// A map of the spec as a list variable: one `NAME=VALUE` a line, as `NameValue` parses it back.
fn pair_lines(map: &BTreeMap<String, String>) -> String {
    let lines: Vec<String> = NameValue::from_map(map)
        .iter()
        .map(ToString::to_string)
        .collect();
    lines.join("\n")
}

fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Credentials arrive as references to Secrets, never as values in the Job (certificates as
/// files: `certificate_files`).
fn endpoint_env(prefix: &str, endpoint: &EndpointSpec, env: &mut Vec<EnvVar>) {
    if !endpoint.headers.is_empty() {
        env.push(plain(
            &format!("PROMIMPORT_{prefix}_HEADER"),
            &pair_lines(&endpoint.headers),
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
    use crate::worker::options::WorkerOptions;

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
        let env: std::collections::BTreeMap<String, serde_json::Value> = container["env"]
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
        // Certificates arrive as files of a read-only Secret volume, named by a variable.
        assert_eq!(
            env["PROMIMPORT_SOURCE_CA_FILE"],
            "/etc/promimport/source-ca/ca.crt"
        );
        assert_eq!(pod["volumes"][0]["secret"]["secretName"], "prom-ca");
        assert_eq!(pod["volumes"].as_array().unwrap().len(), 1, "{pod}");
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

    /// A Job's environment as the kubelet hands it to the worker: plain values, and Secret
    /// references resolved from `secrets` (name/key -> value).
    fn job_env(job: &Job, secrets: &BTreeMap<&str, &str>) -> Vec<(String, String)> {
        let json = serde_json::to_value(job).unwrap();
        json["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| {
                let name = e["name"].as_str()?.to_string();
                if let Some(value) = e["value"].as_str() {
                    return Some((name, value.to_string()));
                }
                let reference = &e["valueFrom"]["secretKeyRef"];
                let path = format!(
                    "{}/{}",
                    reference["name"].as_str()?,
                    reference["key"].as_str()?
                );
                Some((name, secrets[path.as_str()].to_string()))
            })
            .collect()
    }

    /// What a pod's container would find in its Secret volumes: path → content.
    fn mounted_secrets(job: &Job, secrets: &BTreeMap<&str, &str>) -> BTreeMap<String, String> {
        let json = serde_json::to_value(job).unwrap();
        let pod = &json["spec"]["template"]["spec"];
        let mut files = BTreeMap::new();
        for mount in pod["containers"][0]["volumeMounts"].as_array().unwrap() {
            let volumes = pod["volumes"].as_array().unwrap();
            let volume = volumes.iter().find(|v| v["name"] == mount["name"]).unwrap();
            let secret = volume["secret"]["secretName"].as_str().unwrap();
            for item in volume["secret"]["items"].as_array().unwrap() {
                let (key, path) = (
                    item["key"].as_str().unwrap(),
                    item["path"].as_str().unwrap(),
                );
                let dir = mount["mountPath"].as_str().unwrap();
                files.insert(
                    format!("{dir}/{path}"),
                    secrets[format!("{secret}/{key}").as_str()].to_string(),
                );
            }
        }
        files
    }

    #[test]
    fn a_blocks_job_has_its_directory_its_credentials_and_a_staging_volume_and_its_worker_writes_blocks()
     {
        let spec = ImportSpec::from_yaml(
            "test",
            r#"
name: blocks
source: {url: http://prometheus:9090/api/v1/read}
destination:
  blocks:
    url: file:///var/cortex/blocks
    tenant: c-7xk2p
    credentialsSecret: bucket-keys
    volume: {persistentVolumeClaim: {claimName: cortex-blocks}}
"#,
        )
        .unwrap();
        let job = job_for_window(&spec, "promimport-blocks", "uid", window(), 0).unwrap();
        let json = serde_json::to_value(&job).unwrap();
        let pod = &json["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(container["envFrom"][0]["secretRef"]["name"], "bucket-keys");
        let volumes = pod["volumes"].as_array().unwrap();
        assert!(
            volumes.iter().any(|v| v["name"] == "blocks"
                && v["persistentVolumeClaim"]["claimName"] == "cortex-blocks")
        );
        let mounts = container["volumeMounts"].as_array().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m["name"] == "blocks" && m["mountPath"] == "/var/cortex/blocks")
        );
        assert!(
            mounts.iter().any(|m| m["mountPath"] == BLOCKS_STAGING),
            "{mounts:?}"
        );
        let settings = WorkerOptions::from_vars(job_env(&job, &BTreeMap::new()))
            .unwrap()
            .settings()
            .unwrap();
        let blocks = settings.blocks.expect("the worker writes blocks");
        assert_eq!(
            blocks.describe(),
            "file:///var/cortex/blocks (tenant c-7xk2p)"
        );
    }

    #[test]
    fn a_spec_with_blocks_is_checked_as_the_flags_are() {
        let base = "name: b\nsource: {url: http://p:9090/api/v1/read}\n";
        for (rest, needle) in [
            (
                "destination: {url: http://c/api/v1/push, blocks: {url: s3://b}}\n",
                "not both",
            ),
            (
                "destination: {blocks: {url: s3://b}}\nwindow: 1h\n",
                "invalid window \"1h\": with blocks a window is written as 2h TSDB blocks",
            ),
            ("destination: {blocks: {url: ftp://b}}\n", "s3://BUCKET"),
            (
                "destination: {blocks: {url: 'file:///d', tenant: a/b}}\n",
                "no '/'",
            ),
            (
                "destination: {blocks: {url: s3://b, volume: {emptyDir: {}}}}\n",
                "a bucket needs none",
            ),
            (
                "destination: {blocks: {url: 'file:///d', volume: cortex-pvc}}\n",
                "persistentVolumeClaim",
            ),
        ] {
            let err = ImportSpec::from_yaml("test", &format!("{base}{rest}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{rest}: {err}");
        }
    }

    /// What a worker's settings hold of everything a spec can say, secrets excepted.
    type Projection = (
        (String, Vec<String>, bool, Option<String>),
        (String, Vec<String>, bool, Option<String>),
        Vec<String>,
        (Vec<String>, Vec<String>),
        (usize, usize, Option<f64>),
        (usize, Option<f64>),
    );

    fn project(options: &WorkerOptions) -> Projection {
        let s = options.settings().unwrap();
        let endpoint = |e: &crate::endpoint::EndpointConfig| {
            (
                e.url.clone(),
                e.headers.iter().map(ToString::to_string).collect(),
                e.insecure_skip_verify,
                e.tls_server_name.clone(),
            )
        };
        (
            endpoint(&s.source),
            endpoint(&s.dest),
            s.selectors.iter().map(ToString::to_string).collect(),
            (
                s.labels.drop.clone(),
                s.labels.set.iter().map(ToString::to_string).collect(),
            ),
            (
                s.batch.max_samples,
                s.retry.retries,
                s.max_samples_per_second,
            ),
            (s.metrics_per_read, s.max_read_samples_per_second),
        )
    }

    #[test]
    fn every_field_of_a_spec_and_a_target_reaches_the_worker_alike_in_a_job_and_in_a_local_run() {
        use crate::targets::Target;
        let fields = r#"
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
"#;
        let spec = ImportSpec::from_yaml(
            "test",
            &format!(
                "name: every-field\n{fields}worker:\n  batchSamples: 1234\n  retries: 7\n  maxSamplesPerSecond: 5000\n  metricsPerRead: 3\n  maxReadSamplesPerSecond: 70000\n"
            ),
        )
        .unwrap();
        let target: Target =
            serde_saphyr::from_str(&format!("name: every-field\n{fields}")).unwrap();
        let mut from_target = target.import_spec("every-field", &spec.start, &spec.end);
        from_target.worker = spec.worker.clone();
        from_target.target = None;
        assert_eq!(
            from_target, spec,
            "a target's import carries every field of the target"
        );

        let job = job_for_window(&spec, "promimport-every-field", "uid", window(), 0).unwrap();
        let in_job = WorkerOptions::from_vars(job_env(&job, &BTreeMap::new())).unwrap();
        let local = WorkerOptions::for_spec(&spec).unwrap();
        let expected: Projection = (
            (
                "https://prometheus:9090/api/v1/read".into(),
                vec!["X-Source=s".into()],
                true,
                None,
            ),
            (
                "https://cortex/api/v1/push".into(),
                vec!["X-Other=a=b".into(), "X-Scope-OrgID=tenant".into()],
                true,
                Some("cortex-distributor".into()),
            ),
            vec!["{job=\"node\", mode!=\"idle\"}".into(), "up".into()],
            (
                vec!["prometheus_replica".into(), "prometheus".into()],
                vec!["cluster=c-1".into(), "origin=old".into()],
            ),
            (1234, 7, Some(5000.0)),
            (3, Some(70000.0)),
        );
        assert_eq!(project(&in_job), expected, "the Job's worker");
        assert_eq!(project(&local), expected, "import start --local");
    }

    #[test]
    fn every_credential_of_a_spec_reaches_the_jobs_worker_from_its_secret() {
        use crate::endpoint::Secret;
        let spec = ImportSpec::from_yaml(
            "test",
            r#"
name: credentials
source:
  url: https://prometheus:9090/api/v1/read
  bearerTokenSecret: {name: prom, key: token}
  caSecret: {name: prom-ca, key: ca.pem}
  clientCertSecret: {name: prom-client}
destination:
  url: https://cortex/api/v1/push
  basicAuth: {username: importer, passwordSecret: {name: cortex, key: password}}
  caSecret: {name: cortex-ca, key: ca.crt}
  clientCertSecret: {name: cortex-client, certKey: cert.pem, keyKey: key.pem}
"#,
        )
        .unwrap();
        let secrets = BTreeMap::from([
            ("prom/token", "source-token"),
            ("prom-ca/ca.pem", "source-ca"),
            ("prom-client/tls.crt", "source-cert"),
            ("prom-client/tls.key", "source-key"),
            ("cortex/password", "dest-password"),
            ("cortex-ca/ca.crt", "dest-ca"),
            ("cortex-client/cert.pem", "dest-cert"),
            ("cortex-client/key.pem", "dest-key"),
        ]);
        let job = job_for_window(&spec, "promimport-credentials", "uid", window(), 0).unwrap();
        let settings = WorkerOptions::from_vars(job_env(&job, &secrets))
            .unwrap()
            .settings()
            .unwrap();
        fn text(secret: &Option<Secret>) -> Option<&str> {
            secret.as_ref().map(|s| s.0.as_str())
        }
        // The files the kubelet would mount: each Secret volume's items under its mount.
        let files = mounted_secrets(&job, &secrets);
        let file = |path: &Option<std::path::PathBuf>| {
            path.as_ref().map(|p| files[p.to_str().unwrap()].as_str())
        };
        let (source, dest) = (&settings.source, &settings.dest);
        assert_eq!(
            [
                text(&source.bearer_token),
                file(&source.ca_file),
                file(&source.cert_file),
                file(&source.key_file),
                text(&dest.basic_password),
                file(&dest.ca_file),
                file(&dest.cert_file),
                file(&dest.key_file),
            ],
            [
                Some("source-token"),
                Some("source-ca"),
                Some("source-cert"),
                Some("source-key"),
                Some("dest-password"),
                Some("dest-ca"),
                Some("dest-cert"),
                Some("dest-key"),
            ]
        );
        let json = serde_json::to_value(&job).unwrap();
        let container = &json["spec"]["template"]["spec"]["containers"][0];
        assert!(
            container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["readOnly"] == true),
            "{container}"
        );
        assert_eq!(dest.basic_user.as_deref(), Some("importer"));
        assert_eq!(
            (source.basic_user.as_ref(), dest.bearer_token.as_ref()),
            (None, None)
        );
    }
}
