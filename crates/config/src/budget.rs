//! The `[budget.NAME]` tables: a spending limit per calendar day or month, charged per
//! request or by what the service reports, that the gateway enforces on the routes that
//! name it.

use std::collections::BTreeMap;

use crate::diagnostic::Diagnostics;
use crate::section::{Invalid, Section};

/// One `[budget.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetConfig {
    /// The table key.
    pub name: String,
    /// `limit`: what may be spent per period (any unit: dollars, tokens, …).
    pub limit: f64,
    /// `period` (default `"month"`).
    pub period: BudgetPeriod,
    /// `timezone` (default `"UTC"`): where the day or month begins.
    pub timezone: String,
    /// `cost_per_request` (default 0): charged when a request is let through.
    pub cost_per_request: f64,
    /// `cost_header`: a response header in which the service reports what the request
    /// cost, charged after the response.
    pub cost_header: Option<String>,
    /// `status` (default 402): 402 or 429, for requests refused once the budget is spent.
    pub status: u16,
}

/// `period`: calendar-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPeriod {
    /// `"day"`: from midnight to midnight.
    Day,
    /// `"month"`: from the first of the month, 00:00.
    Month,
}

pub(crate) fn budgets(
    section: &Section<'_, '_>,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, BudgetConfig> {
    let mut out = BTreeMap::new();
    for (name, table) in section.named_tables("budget", "nlu", d) {
        if let Some(b) = budget(name, &table, d) {
            out.insert(name.to_owned(), b);
        }
    }
    out
}

fn budget(name: &str, section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Option<BudgetConfig> {
    const POSITIVE: &str = "a number greater than zero, such as 10.0";
    let limit = section.number("limit", POSITIVE, |n| n.is_finite() && n > 0.0, d);
    if section.get("limit").is_none() {
        d.error(
            section.span(),
            format!("missing `limit` in [budget.{name}]: expected a line such as `limit = 10.0`"),
        );
    }
    let period = section
        .string("period", "period", d, |text| match text {
            "day" => Ok(BudgetPeriod::Day),
            "month" => Ok(BudgetPeriod::Month),
            _ => Err(Invalid::Expected("expected \"day\" or \"month\"".into())),
        })
        .unwrap_or(BudgetPeriod::Month);
    let timezone = section.time_zone(d);
    let cost_per_request = section
        .number(
            "cost_per_request",
            "a number of zero or more, such as 0.002",
            |n| n.is_finite() && n >= 0.0,
            d,
        )
        .unwrap_or(0.0);
    let cost_header = section.string("cost_header", "header name", d, |text| {
        let valid = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        valid.then(|| text.to_ascii_lowercase()).ok_or_else(|| {
            Invalid::Expected("expected an HTTP header name such as \"X-Cost\"".into())
        })
    });
    if section.get("cost_per_request").is_none() && section.get("cost_header").is_none() {
        d.error(
            section.span(),
            format!(
                "[budget.{name}] charges nothing: expected `cost_per_request = 0.002`, \
                 `cost_header = \"X-Cost\"` (what the service reports), or both"
            ),
        );
    }
    let status = match section.integer("status", 400..=499, d) {
        Some(code @ (402 | 429)) => code as u16,
        Some(_) => {
            let span = section
                .get("status")
                .map(|v| v.span())
                .unwrap_or_else(|| section.span());
            d.error(span, "invalid `status` for a budget: expected 402 or 429");
            402
        }
        None => 402,
    };
    section.finish(d);
    Some(BudgetConfig {
        name: name.to_owned(),
        limit: limit?,
        period,
        timezone,
        cost_per_request,
        cost_header,
        status,
    })
}
