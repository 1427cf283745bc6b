//! The destination's Prometheus HTTP query API (`/api/v1/query`, `/api/v1/query_range`):
//! Prometheus, Cortex and Mimir under `/prometheus`, VictoriaMetrics. `promimport query` shows
//! what landed; `verify` reads raw samples through it where there is no remote read.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::endpoint::{Endpoint, EndpointConfig};
use crate::error::{Error, Result};
use crate::timespec::format_ms;

/// One series of a result: labels, and (timestamp ms, value as the server wrote it).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSeries {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(i64, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// vector, matrix, scalar or string.
    pub kind: String,
    pub series: Vec<ResultSeries>,
}

pub struct QueryClient {
    endpoint: Endpoint,
}

impl QueryClient {
    /// `base` is what comes before `/api/v1/query`: `http://prometheus:9090`,
    /// `http://cortex/prometheus`, `http://victoria-metrics:8428`.
    pub fn new(config: &EndpointConfig) -> Result<Self> {
        let mut endpoint = config.build()?;
        let path = endpoint
            .url
            .path()
            .trim_end_matches('/')
            .trim_end_matches("/api/v1/query")
            .to_string();
        endpoint.url.set_path(&path);
        Ok(QueryClient { endpoint })
    }

    pub async fn instant(&self, expr: &str, time_ms: i64) -> Result<QueryResult> {
        self.get(
            "query",
            &[("query", expr.to_string()), ("time", seconds(time_ms))],
        )
        .await
    }

    pub async fn range(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult> {
        let params = [
            ("query", expr.to_string()),
            ("start", seconds(start_ms)),
            ("end", seconds(end_ms)),
            ("step", seconds(step_ms)),
        ];
        self.get("query_range", &params).await
    }

    async fn get(&self, api: &str, params: &[(&str, String)]) -> Result<QueryResult> {
        let mut url = self.endpoint.url.clone();
        url.set_path(&format!(
            "{}/api/v1/{api}",
            url.path().trim_end_matches('/')
        ));
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        let shown = self.endpoint.display_url();
        let response = self
            .endpoint
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| Error::query_request(shown.clone(), e))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::query_request(shown.clone(), e))?;
        let json: Value = serde_json::from_slice(&body).map_err(|_| {
            let text = crate::answer::first_line(&String::from_utf8_lossy(&body));
            Error::QueryFailed {
                url: shown.clone(),
                status,
                body: if crate::answer::tenant_missing(&text) {
                    format!("{text}; {}", crate::answer::TENANT_FIX)
                } else if status >= 400 {
                    text
                } else {
                    format!(
                        "not a Prometheus query API answer ({text}); give the API's base, e.g. \
                         http://prometheus:9090 or http://cortex/prometheus"
                    )
                },
            }
        })?;
        if json["status"] != "success" {
            return Err(Error::QueryFailed {
                url: shown,
                status,
                body: format!(
                    "{}: {}",
                    json["errorType"].as_str().unwrap_or("error"),
                    json["error"].as_str().unwrap_or("no message")
                ),
            });
        }
        parse_result(&json["data"]).ok_or_else(|| Error::QueryFailed {
            url: shown,
            status,
            body: "the answer has no result".into(),
        })
    }
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn parse_result(data: &Value) -> Option<QueryResult> {
    let kind = data["resultType"].as_str()?.to_string();
    let point = |p: &Value| -> Option<(i64, String)> {
        let t = p.get(0)?.as_f64()?;
        Some(((t * 1000.0).round() as i64, p.get(1)?.as_str()?.to_string()))
    };
    let series = match kind.as_str() {
        "scalar" | "string" => vec![ResultSeries {
            labels: BTreeMap::new(),
            samples: point(&data["result"]).into_iter().collect(),
        }],
        _ => data["result"]
            .as_array()?
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let samples = match s.get("values").and_then(Value::as_array) {
                    Some(values) => values.iter().filter_map(point).collect(),
                    None => point(&s["value"]).into_iter().collect(),
                };
                ResultSeries { labels, samples }
            })
            .collect(),
    };
    Some(QueryResult { kind, series })
}

/// A readable table: one line per sample, series by series.
pub fn render_table(result: &QueryResult) -> String {
    let mut out = format!("{:<80} {:<24} {}\n", "SERIES", "TIME", "VALUE");
    for series in &result.series {
        let labels: Vec<String> = series
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        let name = format!("{{{}}}", labels.join(", "));
        for (t, value) in &series.samples {
            out.push_str(&format!("{name:<80} {:<24} {value}\n", format_ms(*t)));
        }
    }
    out.push_str(&format!(
        "({} series, {} samples)\n",
        result.series.len(),
        result.series.iter().map(|s| s.samples.len()).sum::<usize>()
    ));
    out
}

/// The result in the shape of Prometheus' API: an instant vector's series carry one `value`,
/// a matrix's carry `values`; times as RFC 3339.
pub fn to_json(result: &QueryResult) -> Value {
    let point = |(t, v): &(i64, String)| serde_json::json!([format_ms(*t), v]);
    serde_json::json!({
        "resultType": result.kind,
        "result": result.series.iter().map(|s| match (result.kind.as_str(), s.samples.first()) {
            ("vector", Some(sample)) => serde_json::json!({ "metric": s.labels, "value": point(sample) }),
            _ => serde_json::json!({
                "metric": s.labels,
                "values": s.samples.iter().map(point).collect::<Vec<_>>(),
            }),
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_and_matrices_parse_with_millisecond_times() {
        let vector = serde_json::json!({"resultType": "vector", "result": [{"metric": {"__name__": "up", "job": "a"}, "value": [1793491200.5, "1"]}]});
        let parsed = parse_result(&vector).unwrap();
        assert_eq!(
            parsed.series[0].samples,
            vec![(1_793_491_200_500, "1".to_string())]
        );
        assert_eq!(parsed.series[0].labels["job"], "a");
        let matrix = serde_json::json!({"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "NaN"], [2, "2.5"]]}]});
        let parsed = parse_result(&matrix).unwrap();
        assert_eq!(parsed.series[0].samples.len(), 2);
        assert!(render_table(&parsed).contains("(1 series, 2 samples)"));
        assert_eq!(to_json(&parsed)["result"][0]["values"][1][1], "2.5");
        let instant = to_json(&parse_result(&vector).unwrap());
        assert_eq!(instant["result"][0]["value"][1], "1", "{instant}");
        assert!(instant["result"][0].get("values").is_none());
        assert_eq!(seconds(1_500), "1.500");
    }
}
