//! TLS to a real Prometheus served over HTTPS: verification is on by default, a CA file makes
//! it pass, and skipping it is explicit and warned about.

use promimport_test_support as common;

use common::*;

#[test]
fn tls_is_verified_by_default_passes_with_the_ca_and_skipping_it_is_warned_about() {
    let dir = temp_dir("tls");
    let certificates = certificates(&dir);
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            certificates.cert.display(),
            certificates.key.display()
        ),
    )
    .unwrap();
    let history = dir.join("history.om");
    write_history(&history, 2, true);
    let https = start_prometheus_with(
        "tls-src",
        PrometheusOptions {
            history: Some(&history),
            ..PrometheusOptions::default()
        },
        &[&format!("--web.config.file={}", web.display())],
    );
    let sink = prometheus_sink("tls-sink");
    let source = format!("https://127.0.0.1:{}/api/v1/read", https.port);
    let import = |extra: &[&str]| {
        let state = temp_dir("tls-state");
        Run::new(&source, &sink.url("/api/v1/write"))
            .between(BASE_MS, BASE_MS + 2 * HOUR_MS)
            .flags(&[
                "--retries",
                "0",
                "--window-attempts",
                "1",
                "--parallel",
                "1",
            ])
            .state(&state)
            .flags(extra)
            .exec()
    };

    let (code, log) = import(&[]);
    assert_eq!(code, Some(1), "{log}");
    // Said as what it is, with the flag that fixes it; a certificate problem is not retried.
    assert!(
        log.contains(&format!("source {source}: TLS certificate problem"))
            && log.contains("UnknownIssuer")
            && log.contains("--source-ca-file"),
        "the reason is the certificate: {log}"
    );

    let ca = certificates.ca.clone();
    let (code, log) = import(&["--source-ca-file", ca.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("verification is OFF"), "{log}");

    let (code, log) = import(&["--source-insecure-skip-verify"]);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("TLS certificate verification is OFF"), "{log}");
}
