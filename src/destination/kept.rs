//! Whether a destination kept the native histograms it accepted. Some answer 2xx to histogram
//! samples and store nothing: Cortex without `enable_native_histograms` (its default, Opni's
//! too) and VictoriaMetrics 1.79, seen here. No answer code tells; only reading one back does.
//! So after the first window that wrote histograms, one of them is asked for, through the
//! destination's remote read API next to its write URL (or VictoriaMetrics' export API).

use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::proto::Label;
use crate::proto::label_matcher::Type;
use crate::remote_read::{ReadLimits, ReadPart, SourceReader};
use crate::retry::RetryPolicy;

#[derive(Debug, Clone, PartialEq)]
pub enum HistogramCheck {
    Kept,
    /// Accepted and not stored; what was asked, for the message.
    Dropped(String),
    /// The destination could not be asked; why.
    Unconfirmed(String),
}

/// Where a destination's remote read API is, from its remote write URL: Cortex and Mimir
/// push at `/api/v1/push` and read at `/prometheus/api/v1/read`, Prometheus writes at
/// `/api/v1/write` and reads at `/api/v1/read`.
pub fn read_url(write: &reqwest::Url) -> Option<reqwest::Url> {
    let path = write.path().trim_end_matches('/');
    let read = if let Some(base) = path.strip_suffix("/api/v1/push") {
        format!("{base}/prometheus/api/v1/read")
    } else if let Some(base) = path.strip_suffix("/api/prom/push") {
        format!("{base}/api/prom/api/v1/read")
    } else {
        format!("{}/api/v1/read", path.strip_suffix("/api/v1/write")?)
    };
    let mut url = write.clone();
    url.set_path(&read);
    Some(url)
}

/// Asks the destination for one histogram sample it accepted: `labels` as written, at `t`.
pub async fn check(endpoint: &Endpoint, labels: &[Label], t: i64) -> HistogramCheck {
    let Some(url) = read_url(&endpoint.url) else {
        return HistogramCheck::Unconfirmed(format!(
            "promimport cannot tell where {} serves reads",
            endpoint.display_url()
        ));
    };
    let asked = format!("{} at {}", crate::relabel::render(labels), t);
    let reader = SourceReader::new(
        Endpoint {
            url: url.clone(),
            client: endpoint.client.clone(),
        },
        ReadLimits {
            max_frame_bytes: 16 << 20,
            max_samples_response_bytes: 64 << 20,
        },
        RetryPolicy {
            retries: 2,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        },
    );
    let matchers: Vec<_> = labels
        .iter()
        .map(|l| crate::proto::LabelMatcher {
            r#type: Type::Eq as i32,
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect();
    let found = async {
        let mut stream = reader.open(t, t + 1, &matchers).await?;
        let mut found = false;
        while let Some(part) = stream.next().await? {
            found |= match part {
                ReadPart::Chunked(response) => response
                    .chunked_series
                    .iter()
                    .flat_map(|s| &s.chunks)
                    .any(|c| c.r#type == 2 || c.r#type == 3),
                ReadPart::Samples(result) => {
                    result.timeseries.iter().any(|s| !s.histograms.is_empty())
                }
            };
        }
        crate::error::Result::Ok(found)
    }
    .await;
    match found {
        Ok(true) => HistogramCheck::Kept,
        Ok(false) => HistogramCheck::Dropped(format!("{} holds no {asked}", url)),
        Err(crate::error::Error::SourceStatus { status, .. }) if (400..500).contains(&status) => {
            exported(endpoint, labels, t, &asked).await
        }
        Err(e) => HistogramCheck::Unconfirmed(format!("reading {url} failed: {e}")),
    }
}

/// VictoriaMetrics serves no remote read; its export API says whether it holds a series.
async fn exported(endpoint: &Endpoint, labels: &[Label], t: i64, asked: &str) -> HistogramCheck {
    let mut url = endpoint.url.clone();
    let Some(base) = url
        .path()
        .trim_end_matches('/')
        .strip_suffix("/api/v1/write")
    else {
        return HistogramCheck::Unconfirmed(format!(
            "{} has no remote read API to ask",
            endpoint.display_url()
        ));
    };
    url.set_path(&format!("{base}/api/v1/export"));
    let selector = crate::relabel::render(labels);
    // VictoriaMetrics takes seconds with a fraction.
    let seconds = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let mut request = url.clone();
    request
        .query_pairs_mut()
        .append_pair("match[]", &selector)
        .append_pair("start", &seconds(t))
        .append_pair("end", &seconds(t + 1));
    let answer = endpoint.client.get(request).send().await;
    match answer {
        Ok(response) if response.status().is_success() => match response.text().await {
            Ok(body) if body.trim().is_empty() => {
                HistogramCheck::Dropped(format!("{url} (its export API) holds no {asked}"))
            }
            Ok(_) => HistogramCheck::Kept,
            Err(e) => HistogramCheck::Unconfirmed(format!("reading {url} failed: {e}")),
        },
        Ok(response) => HistogramCheck::Unconfirmed(format!(
            "neither a remote read API nor an export API answered next to {} ({url}: {})",
            endpoint.display_url(),
            response.status()
        )),
        Err(e) => HistogramCheck::Unconfirmed(format!("reading {url} failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_url_sits_next_to_the_write_url() {
        let read = |w: &str| read_url(&reqwest::Url::parse(w).unwrap()).map(|u| u.to_string());
        assert_eq!(
            read("https://cortex:8080/api/v1/push").as_deref(),
            Some("https://cortex:8080/prometheus/api/v1/read")
        );
        assert_eq!(
            read("http://gw/tenant-a/api/prom/push").as_deref(),
            Some("http://gw/tenant-a/api/prom/api/v1/read")
        );
        assert_eq!(
            read("http://prom:9090/api/v1/write?x=1").as_deref(),
            Some("http://prom:9090/api/v1/read?x=1")
        );
        assert_eq!(read("http://somewhere/ingest"), None);
    }
}
