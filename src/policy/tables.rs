//! Scorecard tables handed to `points_from`/`points_under` by reference.
//!
//! The optimiser inlines a table constant (`const DAYS_PAST_DUE = [...]`) as
//! a literal argument, and rhai clones every argument: each use copied and
//! then dropped the whole array of maps (about 3 600 instructions a table,
//! six tables per scoring run: 6 % of a default pipeline). After compiling,
//! a literal table argument of these two calls is replaced by a
//! [`SharedTable`] built once, whose clone is a reference count. The lookup
//! and its errors are the same; a script that defines its own `points_from`
//! or `points_under` keeps its literal arrays.

use std::sync::Arc;

use rhai::{AST, Array, Dynamic, Engine, Expr, FnCallExpr, Stmt, StmtBlock};

/// The functions whose literal table argument is shared.
const TABLE_FUNCTIONS: [&str; 2] = ["points_from", "points_under"];

/// A literal table, shared by every evaluation of the policy.
#[derive(Debug, Clone)]
pub(crate) struct SharedTable(pub Arc<Array>);

pub(crate) fn register(engine: &mut Engine) {
    // Scripts never hold one (it only ever is an argument of the two
    // lookups), but a name in messages should still read as a table.
    engine.register_type_with_name::<SharedTable>("array");
}

/// `ast` with the literal tables of `points_from`/`points_under` calls
/// shared (top-level statements; script functions are left as they are).
pub(crate) fn share_tables(ast: AST) -> AST {
    let overridden = ast
        .iter_functions()
        .any(|f| f.params.len() == 2 && TABLE_FUNCTIONS.contains(&f.name));
    if overridden {
        return ast;
    }
    let mut statements = ast.statements().to_vec();
    let mut shared = 0;
    statements.iter_mut().for_each(|s| stmt(s, &mut shared));
    if shared == 0 {
        return ast;
    }
    AST::new(statements, ast.shared_lib().clone())
}

fn block(block: &mut StmtBlock, shared: &mut usize) {
    block
        .statements_mut()
        .iter_mut()
        .for_each(|s| stmt(s, shared));
}

/// Walks the statements that can hold a call; others are left untouched
/// (sharing is an optimisation, missing one changes nothing).
fn stmt(stmt: &mut Stmt, shared: &mut usize) {
    match stmt {
        Stmt::If(x, _) | Stmt::While(x, _) | Stmt::Do(x, ..) | Stmt::TryCatch(x, _) => {
            expr(&mut x.expr, shared);
            block(&mut x.body, shared);
            block(&mut x.branch, shared);
        }
        Stmt::For(x, _) => {
            expr(&mut x.2.expr, shared);
            block(&mut x.2.body, shared);
        }
        Stmt::Var(x, ..) => expr(&mut x.1, shared),
        Stmt::Assignment(x) => expr(&mut x.1.rhs, shared),
        Stmt::FnCall(x, _) => call(x, shared),
        Stmt::Block(x) => block(x, shared),
        Stmt::Expr(x) => expr(x, shared),
        Stmt::Return(Some(x), ..) | Stmt::BreakLoop(Some(x), ..) => expr(x, shared),
        _ => {}
    }
}

fn expr(expr_: &mut Expr, shared: &mut usize) {
    match expr_ {
        Expr::FnCall(x, _) | Expr::MethodCall(x, _) => call(x, shared),
        Expr::Dot(x, ..) | Expr::Index(x, ..) => {
            expr(&mut x.lhs, shared);
            expr(&mut x.rhs, shared);
        }
        Expr::And(x, _) | Expr::Or(x, _) | Expr::Coalesce(x, _) => {
            x.iter_mut().for_each(|e| expr(e, shared));
        }
        Expr::Array(x, _) | Expr::InterpolatedString(x, _) => {
            x.iter_mut().for_each(|e| expr(e, shared));
        }
        Expr::Map(x, _) => x.0.iter_mut().for_each(|(_, e)| expr(e, shared)),
        Expr::Stmt(x) => block(x, shared),
        _ => {}
    }
}

fn call(call: &mut FnCallExpr, shared: &mut usize) {
    call.args.iter_mut().for_each(|e| expr(e, shared));
    if call.op_token.is_some()
        || call.args.len() != 2
        || !TABLE_FUNCTIONS.contains(&call.name.as_str())
    {
        return;
    }
    let table = &mut call.args[1];
    // A literal is evaluated as one operation whatever its form, so the
    // operation count (kept in the trace) does not change.
    if let Some(array) = table
        .get_literal_value(None)
        .and_then(|v| v.try_cast::<Array>())
    {
        let position = table.start_position();
        *table = Expr::DynamicConstant(
            Box::new(Dynamic::from(SharedTable(Arc::new(array)))),
            position,
        );
        *shared += 1;
    }
}

#[cfg(test)]
mod tests {
    use rhai::ASTNode;

    use super::*;
    use crate::policy::compile;

    /// How many shared tables the compiled policy holds.
    fn shared_in(source: &str) -> usize {
        let policy = compile(source).unwrap();
        let mut count = 0;
        policy.ast.walk(&mut |path: &[ASTNode]| {
            if let Some(ASTNode::Expr(Expr::DynamicConstant(v, _))) = path.last() {
                count += usize::from(v.is::<SharedTable>());
            }
            true
        });
        count
    }

    #[test]
    fn literal_tables_of_the_lookups_are_shared() {
        let scoring = include_str!("../../policies/scoring.rhai");
        assert_eq!(shared_in(scoring), 6);
        let source = "const T = [#{ from: 1, points: 2 }];\n\
            let t = T; let f = [];\n\
            if true { f.add_factor(\"X\", points_under(0, T) + points_from(1, T)); }\n\
            points_from(1, t); points_from(1, [#{ from: 1, points: t.len() }]);";
        assert_eq!(shared_in(source), 2, "only literal tables");
        let own = format!("fn points_from(v, t) {{ 1 }}\n{source}");
        assert_eq!(shared_in(&own), 0, "a script's own helper gets arrays");
    }
}
