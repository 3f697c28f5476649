//! The integration suite: the real app, through the real HTTP stack, with real JWTs, on a
//! fresh database per test — SQLite always, PostgreSQL when `ENCOURS_TEST_POSTGRES_URL` is set
//! (and mandatory when `CI=true`).

mod support;

mod attacks;
mod audit;
mod auth;
mod backtest;
mod capture;
mod cli;
mod clients;
mod console;
mod contract;
mod decisions;
mod drills;
mod errors;
mod events;
mod hostile_input;
mod impact;
mod ops;
mod policies;
mod reserved;
mod shadow;

/// Declares each listed `async fn name(backend: Backend)` as one test per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            )+
        }
    };
}
