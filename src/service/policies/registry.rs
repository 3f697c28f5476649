//! The active policy set of this process, reloaded when the database's generation moves.
//!
//! Every activation bumps `policy_generation` in its transaction. Each evaluation reads that
//! one number (a primary-key lookup) and reloads the active versions only when it changed, so
//! an activation reaches every worker of every server process before their next decision.
//! Compiled ASTs are cached by sha256 in the engine, so a reload never recompiles a version
//! this process has seen.

use std::sync::{Arc, RwLock};

use crate::audit::to_canonical_json;
use crate::policy::{PolicyEngine, Stage, Trigger};
use crate::service::ServiceError;
use crate::service::evaluate::PolicyRef;
use crate::store::AnyConnection;
use crate::store::policies::{self as table, VersionRow};

/// The stages of both pipelines at one generation.
#[derive(Debug, Default)]
pub struct ActiveSet {
    pub generation: i64,
    pub credit_request: Vec<Stage>,
    pub client_event: Vec<Stage>,
    /// The `credit_request` stages' versions in canonical JSON, as every decision's audit
    /// payload lists them: written once per generation rather than once per decision.
    pub credit_request_refs: String,
}

impl ActiveSet {
    pub fn stages(&self, trigger: Trigger) -> &[Stage] {
        match trigger {
            Trigger::CreditRequest => &self.credit_request,
            Trigger::ClientEvent => &self.client_event,
        }
    }
}

/// Which pipelines a stage stored with this trigger name belongs to.
pub fn runs_in(trigger_name: &str, trigger: Trigger) -> bool {
    trigger_name == "both" || trigger_name == trigger.as_str()
}

pub struct PolicyRegistry {
    engine: PolicyEngine,
    current: RwLock<Arc<ActiveSet>>,
}

impl PolicyRegistry {
    pub fn new(engine: PolicyEngine) -> Self {
        Self {
            engine,
            current: RwLock::new(Arc::new(ActiveSet {
                generation: -1,
                ..ActiveSet::default()
            })),
        }
    }

    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    /// The active set as of the database's current generation.
    pub fn active(&self, conn: &mut AnyConnection) -> Result<Arc<ActiveSet>, ServiceError> {
        let generation = table::generation(conn)?;
        if let Ok(current) = self.current.read()
            && current.generation == generation
        {
            return Ok(Arc::clone(&current));
        }
        let mut set = ActiveSet {
            generation,
            ..ActiveSet::default()
        };
        let mut ordered = Vec::new();
        for (policy, version) in table::active_set(conn)? {
            ordered.push((policy.position, policy.trigger_name, self.stage(&version)?));
        }
        ordered.sort_by_key(|(position, _, _)| *position);
        for (_, trigger_name, stage) in ordered {
            if runs_in(&trigger_name, Trigger::CreditRequest) {
                set.credit_request.push(stage.clone());
            }
            if runs_in(&trigger_name, Trigger::ClientEvent) {
                set.client_event.push(stage);
            }
        }
        set.credit_request_refs = to_canonical_json(&PolicyRef::of_stages(&set.credit_request))
            .map_err(|e| ServiceError::Internal(format!("policy versions: {e}")))?;
        let set = Arc::new(set);
        if let Ok(mut current) = self.current.write() {
            *current = Arc::clone(&set);
        }
        Ok(set)
    }

    /// A stored version as a pipeline stage (compiled once per process, by sha256).
    pub fn stage(&self, version: &VersionRow) -> Result<Stage, ServiceError> {
        let compiled = match self.engine.cached(&version.sha256) {
            Some(compiled) => compiled,
            None => self.engine.compile(&version.source).map_err(|e| {
                ServiceError::Internal(format!(
                    "stored policy {} v{} does not compile: {e}",
                    version.policy, version.version
                ))
            })?,
        };
        let number = u32::try_from(version.version)
            .map_err(|_| ServiceError::Internal(format!("bad version {}", version.version)))?;
        Ok(Stage::new(&version.policy, number, compiled))
    }
}
