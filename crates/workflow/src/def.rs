//! A workflow's definition, as the server built it from `[workflow.NAME]`.

use std::time::Duration;

use berth_store::{NewStep, NewWorkflow, Timestamp};
use serde_json::Value;

/// The queue a workflow's step runs on.
pub fn step_queue(workflow: &str, step: &str) -> String {
    format!("workflow.{workflow}.{step}")
}

/// One step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDef {
    /// Its name, unique in the workflow.
    pub name: String,
    /// The steps that must finish first.
    pub parents: Vec<String>,
    /// Whether its failure lets its children run (with a null result from it).
    pub optional: bool,
    /// Attempts allowed.
    pub max_attempts: u32,
}

/// A workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDef {
    /// Its name.
    pub name: String,
    /// The whole workflow fails if it has not finished this long after it started.
    pub timeout: Option<Duration>,
    /// Its steps.
    pub steps: Vec<StepDef>,
}

impl WorkflowDef {
    /// A new run of this workflow, as the store takes it.
    pub fn instance(&self, input: Value, started_by: &str, now: Timestamp) -> NewWorkflow {
        NewWorkflow {
            name: self.name.clone(),
            input,
            steps: self
                .steps
                .iter()
                .map(|s| NewStep {
                    name: s.name.clone(),
                    queue: step_queue(&self.name, &s.name),
                    kind: s.name.clone(),
                    parents: s.parents.clone(),
                    optional: s.optional,
                    max_attempts: s.max_attempts,
                    priority: 0,
                })
                .collect(),
            deadline: self.timeout.map(|t| now.plus(t)),
            started_by: started_by.to_string(),
            unique_key: None,
        }
    }
}
