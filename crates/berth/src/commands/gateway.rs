//! `berth gateway`: the gateway's listeners and its routes' counts.

use std::process::ExitCode;

use berth_api::types::GatewayStatus;

use super::Ctx;
use crate::output;

/// Prints the listeners and a table of routes.
pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let gateway: GatewayStatus = ctx.client()?.get("/v1/gateway").await?;
    if ctx.json {
        output::json(&gateway);
        return Ok(ExitCode::SUCCESS);
    }
    let scheme = if gateway.tls { "https" } else { "http" };
    for addr in &gateway.listen {
        outln!("listening on {scheme}://{addr}");
    }
    if let Some(http) = &gateway.http {
        outln!("redirecting http://{http} to https");
    }
    outln!();
    let rows: Vec<Vec<String>> = gateway
        .routes
        .iter()
        .map(|r| {
            vec![
                r.route.clone(),
                r.target.clone(),
                r.requests.to_string(),
                r.status_2xx.to_string(),
                r.status_3xx.to_string(),
                r.status_4xx.to_string(),
                r.status_5xx.to_string(),
                format!("{:.1} ms", r.mean_ms),
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
