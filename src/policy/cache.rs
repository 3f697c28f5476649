//! Compilation and the compiled-AST cache keyed by the source's sha256, so
//! evaluation never parses.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rhai::{AST, ASTFlags, ASTNode, Engine, Expr, Scope, Stmt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::engine::position;
use super::tables::share_tables;

/// Sources above this size are refused before parsing.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;
/// Names scripts may read; declared at compile time so that strict variables
/// reject typos there. They are plain variables here, not constants, so the
/// optimiser cannot fold placeholder values into the AST.
const SCRIPT_GLOBALS: [&str; 4] = ["request", "event", "client", "decision"];

/// A policy source that does not compile; positions are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}{}", at(*line, *column))]
pub struct CompileError {
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
}

fn at(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

/// A compiled policy: cheap to clone, `Send + Sync`, shareable between threads.
#[derive(Clone)]
pub struct CompiledPolicy {
    sha256: Arc<str>,
    pub(crate) ast: Arc<AST>,
}

impl CompiledPolicy {
    /// Hex sha256 of the source this was compiled from.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

impl fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// Hex sha256 of a policy source, the key of versions and of the cache.
pub fn sha256_hex(source: &str) -> String {
    hex::encode(Sha256::digest(source.as_bytes()))
}

pub(crate) fn compile_with(engine: &Engine, source: &str) -> Result<CompiledPolicy, CompileError> {
    compile_hashed(engine, source, sha256_hex(source))
}

fn compile_hashed(
    engine: &Engine,
    source: &str,
    sha256: String,
) -> Result<CompiledPolicy, CompileError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(CompileError {
            line: None,
            column: None,
            message: format!("policy source is larger than {MAX_SOURCE_BYTES} bytes"),
        });
    }
    let mut scope = Scope::new();
    for name in SCRIPT_GLOBALS {
        scope.push(name, ());
    }
    let ast = engine.compile_with_scope(&scope, source).map_err(|err| {
        let (line, column) = position(err.position());
        CompileError {
            line,
            column,
            message: err.err_type().to_string(),
        }
    })?;
    Ok(CompiledPolicy {
        sha256: sha256.into(),
        ast: Arc::new(share_tables(unread_constants_to_unit(ast))),
    })
}

/// A policy's thresholds are top-level constants (`const DAYS_PAST_DUE = [...]`).
/// The optimiser copies their literal value into every place that reads them,
/// but still runs the declaration, which copies the value into the scope on
/// every evaluation (about 6 000 instructions for a table of five lines) for
/// nothing. A declaration whose name no expression reads any more keeps its
/// place (variables are found by their offset in the scope) but declares `()`.
fn unread_constants_to_unit(ast: AST) -> AST {
    let is_literal_constant = |stmt: &Stmt| match stmt {
        Stmt::Var(x, flags, _) => {
            flags.contains(ASTFlags::CONSTANT) && x.1.is_constant() && !matches!(x.1, Expr::Unit(_))
        }
        _ => false,
    };
    if !ast.statements().iter().any(is_literal_constant) {
        return ast;
    }
    let mut read: Vec<rhai::ImmutableString> = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::Variable(x, ..))) = path.last() {
            read.push(x.1.clone());
        }
        true
    });
    let statements: Vec<Stmt> = ast
        .statements()
        .iter()
        .map(|stmt| match stmt {
            Stmt::Var(x, flags, pos) if is_literal_constant(stmt) && !read.contains(&x.0.name) => {
                let mut decl = x.clone();
                decl.1 = Expr::Unit(x.1.position());
                Stmt::Var(decl, *flags, *pos)
            }
            other => other.clone(),
        })
        .collect();
    AST::new(statements, ast.shared_lib().clone())
}

/// Compiled policies by sha256, shared by all workers. Bounded: the oldest
/// entry goes first (stages keep their own handle, so eviction only costs a
/// recompile the next time that source is loaded).
#[derive(Debug)]
pub(crate) struct PolicyCache {
    capacity: usize,
    inner: RwLock<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    by_sha: HashMap<Arc<str>, CompiledPolicy>,
    order: VecDeque<Arc<str>>,
}

impl PolicyCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: RwLock::default(),
        }
    }

    pub(crate) fn get(&self, sha256: &str) -> Option<CompiledPolicy> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.by_sha.get(sha256).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.by_sha.len()
    }

    /// The cached policy for `source`, compiling it on a miss.
    pub(crate) fn get_or_compile(
        &self,
        engine: &Engine,
        source: &str,
    ) -> Result<CompiledPolicy, CompileError> {
        let sha256 = sha256_hex(source);
        if let Some(hit) = self.get(&sha256) {
            return Ok(hit);
        }
        // Compile outside the lock: a concurrent miss compiles twice, harmlessly.
        let compiled = compile_hashed(engine, source, sha256)?;
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(hit) = inner.by_sha.get(compiled.sha256()) {
            return Ok(hit.clone());
        }
        while inner.by_sha.len() >= self.capacity {
            match inner.order.pop_front() {
                Some(oldest) => inner.by_sha.remove(&oldest),
                None => break,
            };
        }
        inner.order.push_back(Arc::clone(&compiled.sha256));
        inner
            .by_sha
            .insert(Arc::clone(&compiled.sha256), compiled.clone());
        Ok(compiled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::engine::{Limits, build};

    fn engine() -> Engine {
        build(&Limits::default())
    }

    #[test]
    fn sha256_is_hex_of_source() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn compile_error_has_line_and_column() {
        let source = "let a = 1;\nlet b = 2;\nlet c = a + * b;\n";
        let err = compile_with(&engine(), source).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert_eq!(err.column, Some(13));
        assert!(!err.message.contains("line"), "{err:?}");
        assert!(err.to_string().ends_with("(line 3, column 13)"), "{err}");
    }

    #[test]
    fn undefined_variable_is_a_compile_error() {
        let err = compile_with(&engine(), "let x = 1;\nif clinet.credit_limit > 0 {}").unwrap_err();
        assert_eq!((err.line, err.column), (Some(2), Some(4)));
        assert!(err.message.contains("clinet"), "{err:?}");
        compile_with(
            &engine(),
            "client.credit_limit + request.amount + event.x + decision.limit",
        )
        .unwrap();
    }

    #[test]
    fn eval_is_disabled_at_compile_time() {
        let err = compile_with(&engine(), "eval(\"decline(\\\"X\\\", \\\"y\\\")\")").unwrap_err();
        assert!(err.message.contains("eval"), "{err:?}");
    }

    #[test]
    fn oversized_source_is_refused() {
        let source = "1;".repeat(MAX_SOURCE_BYTES);
        assert!(compile_with(&engine(), &source).is_err());
    }

    #[test]
    fn cache_hits_by_sha_and_evicts_oldest() {
        let engine = engine();
        let cache = PolicyCache::new(2);
        let a = cache.get_or_compile(&engine, "1").unwrap();
        let again = cache.get_or_compile(&engine, "1").unwrap();
        assert!(Arc::ptr_eq(&a.ast, &again.ast), "a hit must not recompile");
        assert!(cache.get(a.sha256()).is_some());
        cache.get_or_compile(&engine, "2").unwrap();
        cache.get_or_compile(&engine, "3").unwrap();
        assert_eq!(cache.len(), 2);
        assert!(cache.get(a.sha256()).is_none());
        assert!(cache.get_or_compile(&engine, "if {").is_err());
        assert_eq!(cache.len(), 2);
    }
}
