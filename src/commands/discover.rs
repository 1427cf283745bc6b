//! `promimport discover`: the Prometheus servers of a cluster, with in-cluster read URLs.

use crate::cli::DiscoverArgs;
use crate::error::{Error, Result};
use crate::kube::discovery;

use super::{client, json_output};

/// Lists `monitoring.coreos.com/v1` Prometheus objects as a table or JSON.
pub async fn discover(args: DiscoverArgs) -> Result<i32> {
    let json = json_output(&args.output)?;
    let found = discovery::discover(client(&args.kube).await?, args.namespace.as_deref()).await?;
    if json {
        let text =
            serde_json::to_string_pretty(&found).map_err(|e| Error::Internal(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", discovery::render_table(&found));
    }
    Ok(0)
}
