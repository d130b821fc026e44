//! [`Workflows`]: the handle for starting and managing workflows.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_queue::{Live, Queues};
use berth_store::{JobState, NewWorkflow, Workflow, WorkflowFilter};
use serde_json::Value;

use crate::def::WorkflowDef;
use crate::error::{Result, WorkflowError};

/// The configured workflows over the queues. Cheap to clone.
#[derive(Clone)]
pub struct Workflows {
    queues: Queues,
    /// Replaced whole by a reload; runs already started keep the steps they were
    /// started with (the store holds them).
    defs: Live<BTreeMap<String, Arc<WorkflowDef>>>,
}

impl Workflows {
    /// The workflows `defs`, run through `queues` (whose specs must include each step's
    /// queue).
    pub fn new(queues: Queues, defs: Vec<WorkflowDef>) -> Self {
        Self {
            queues,
            defs: Live::new(by_name(defs)),
        }
    }

    /// Replaces the definitions (a reload): runs started from now on take the new ones.
    pub fn set_defs(&self, defs: Vec<WorkflowDef>) {
        self.defs.set(by_name(defs));
    }

    /// One workflow's definition, or an error naming the configured ones.
    pub fn def(&self, name: &str) -> Result<Arc<WorkflowDef>> {
        let defs = self.defs.get();
        defs.get(name).cloned().ok_or_else(|| {
            let (suggestion, known) =
                berth_queue::error::did_you_mean(name, defs.keys(), "workflow");
            WorkflowError::Unknown {
                name: name.to_string(),
                suggestion,
                known,
            }
        })
    }

    /// A new run of workflow `name`, ready for the store (a schedule fires it in its own
    /// transaction).
    pub fn instance(&self, name: &str, input: Value, started_by: &str) -> Result<NewWorkflow> {
        Ok(self
            .def(name)?
            .instance(input, started_by, self.queues.now()))
    }

    /// Starts workflow `name` with `input`.
    pub async fn start(&self, name: &str, input: Value, started_by: &str) -> Result<Workflow> {
        Ok(self.start_keyed(name, input, started_by, None).await?.0)
    }

    /// Starts workflow `name` with `input`, unless one started with `unique_key` still
    /// runs: then that one, and `true` (a duplicate).
    pub async fn start_keyed(
        &self,
        name: &str,
        input: Value,
        started_by: &str,
        unique_key: Option<String>,
    ) -> Result<(Workflow, bool)> {
        // The store announces the root steps' queues after the commit.
        let mut new = self.instance(name, input, started_by)?;
        new.unique_key = unique_key;
        let now = self.queues.now();
        let id = self.queues.store().workflow_start(new, now).await?;
        let w = self.get(id).await?;
        // A new workflow was made now; a running one with the key was made before.
        let duplicate = w.created_at != now;
        if duplicate {
            tracing::info!(
                workflow = name,
                id,
                started_by,
                "a workflow with this unique key runs: not started again"
            );
        } else {
            tracing::info!(workflow = name, id, started_by, "workflow started");
        }
        Ok((w, duplicate))
    }

    /// One workflow with its steps.
    pub async fn get(&self, id: i64) -> Result<Workflow> {
        self.queues
            .store()
            .workflow(id)
            .await?
            .ok_or_else(|| berth_store::StoreError::NotFound(format!("no workflow {id}")).into())
    }

    /// Workflows, newest first.
    pub async fn list(&self, filter: WorkflowFilter) -> Result<Vec<Workflow>> {
        Ok(self.queues.store().workflows(filter).await?)
    }

    /// Cancels a running workflow; its steps running here stop at once.
    pub async fn cancel(&self, id: i64) -> Result<Workflow> {
        let w = self
            .queues
            .store()
            .workflow_cancel(id, self.queues.now())
            .await?;
        self.stop_steps(&w);
        Ok(w)
    }

    /// Runs a failed or cancelled workflow again from its failed steps, with a fresh time
    /// limit.
    pub async fn retry(&self, id: i64) -> Result<Workflow> {
        let now = self.queues.now();
        let w = self.get(id).await?;
        let deadline = self
            .defs
            .get()
            .get(&w.name)
            .and_then(|d| d.timeout)
            .map(|t| now.plus(t));
        let w = self
            .queues
            .store()
            .workflow_retry(id, deadline, now)
            .await?;
        Ok(w)
    }

    /// Fails the workflows past their time limit. Returns their ids.
    pub async fn expire(&self, now: berth_store::Timestamp) -> Result<Vec<i64>> {
        let ids = self.queues.store().workflow_expire(now).await?;
        for id in &ids {
            tracing::warn!(workflow = id, "workflow timed out");
            if let Ok(w) = self.get(*id).await {
                self.stop_steps(&w);
            }
        }
        Ok(ids)
    }

    /// Stops the steps of an ended workflow that still run in this process (their jobs
    /// are cancelled in the store; this spares waiting for the next heartbeat).
    fn stop_steps(&self, w: &Workflow) {
        for s in w
            .steps
            .iter()
            .filter(|s| s.state == Some(JobState::Cancelled))
        {
            self.queues.abort_job(s.job_id);
        }
    }
}

fn by_name(defs: Vec<WorkflowDef>) -> BTreeMap<String, Arc<WorkflowDef>> {
    defs.into_iter()
        .map(|d| (d.name.clone(), Arc::new(d)))
        .collect()
}
