//! `promimport query`: PromQL against the destination's query API.

use std::time::Duration;

use crate::cli::QueryArgs;
use crate::endpoint::EndpointConfig;
use crate::error::{Error, Result};
use crate::query::{QueryClient, render_table, to_json};
use crate::timespec::{now_ms, parse_duration, parse_time};

use super::json_output;

/// Runs an instant query (at --at, default now) or a range query (--range START END STEP).
pub async fn query(args: QueryArgs) -> Result<i32> {
    let json = json_output(&args.output)?;
    let client = QueryClient::new(&EndpointConfig {
        role: "--dest",
        url: args.dest.clone(),
        headers: args.dest_header.clone(),
        bearer_token_file: args.dest_bearer_token_file.clone(),
        basic_user: args.dest_basic_user.clone(),
        basic_password_file: args.dest_basic_password_file.clone(),
        ca_file: args.dest_ca_file.clone(),
        cert_file: args.dest_cert_file.clone(),
        key_file: args.dest_key_file.clone(),
        tls_server_name: args.dest_tls_server_name.clone(),
        insecure_skip_verify: args.dest_insecure_skip_verify,
        connect_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(120),
        ..Default::default()
    })?;
    let now = now_ms();
    let result = match args.range.as_deref() {
        Some([start, end, step]) => {
            let start = parse_time("--range START", start, now)?;
            let end = parse_time("--range END", end, now)?;
            let step_ms = i64::try_from(parse_duration("--range STEP", step)?.as_millis())
                .map_err(|_| Error::invalid("--range STEP", step, "too long"))?;
            client.range(&args.expr, start, end, step_ms).await?
        }
        Some(other) => {
            return Err(Error::invalid(
                "--range",
                other.join(" "),
                "give START END STEP",
            ));
        }
        None => {
            let at = match args.at.as_deref() {
                Some(t) => parse_time("--at", t, now)?,
                None => now,
            };
            client.instant(&args.expr, at).await?
        }
    };
    if json {
        let text = serde_json::to_string_pretty(&to_json(&result))
            .map_err(|e| Error::Internal(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", render_table(&result));
    }
    Ok(0)
}
