//! `berth gateway`: the gateway's listeners and its routes' counts.

use std::process::ExitCode;

use super::Ctx;
use crate::output;

/// Prints the listeners and a table of routes.
pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let gateway = ctx.client()?.get("/v1/gateway").await?;
    if ctx.json {
        output::json(&gateway);
        return Ok(ExitCode::SUCCESS);
    }
    let scheme = if gateway["tls"] == true {
        "https"
    } else {
        "http"
    };
    for addr in gateway["listen"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        outln!("listening on {scheme}://{}", output::cell(addr));
    }
    if let Some(http) = gateway["http"].as_str() {
        outln!("redirecting http://{http} to https");
    }
    outln!();
    let rows: Vec<Vec<String>> = gateway["routes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            vec![
                output::cell(&r["route"]),
                output::cell(&r["target"]),
                output::cell(&r["requests"]),
                output::cell(&r["status_2xx"]),
                output::cell(&r["status_3xx"]),
                output::cell(&r["status_4xx"]),
                output::cell(&r["status_5xx"]),
                format!("{:.1} ms", r["mean_ms"].as_f64().unwrap_or(0.0)),
            ]
        })
        .collect();
    output::table(
        &[
            "ROUTE", "TARGET", "REQUESTS", "2XX", "3XX", "4XX", "5XX", "MEAN",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
