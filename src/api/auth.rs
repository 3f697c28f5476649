//! The bearer-token extractor: `Authed<ClientsWrite>` in a handler's arguments means
//! "401 without a valid token, 403 without the `clients:write` scope", checked before the
//! body is read.

use std::future::{Ready, ready};
use std::marker::PhantomData;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::error::ApiError;
use crate::AppState;
use crate::auth::Claims;

/// A scope a handler requires.
pub trait Scope {
    const NAME: &'static str;
}

macro_rules! scopes {
    ($($ty:ident = $name:literal),+ $(,)?) => {
        $(
            #[doc = concat!("The `", $name, "` scope.")]
            pub struct $ty;
            impl Scope for $ty {
                const NAME: &'static str = $name;
            }
        )+
    };
}

scopes!(
    ClientsRead = "clients:read",
    ClientsWrite = "clients:write",
    EventsWrite = "events:write",
    AuditRead = "audit:read",
    PoliciesRead = "policies:read",
    PoliciesWrite = "policies:write",
    PoliciesActivate = "policies:activate",
    DecisionsWrite = "decisions:write",
    DecisionsRead = "decisions:read",
    ReviewsWrite = "reviews:write",
);

/// The verified claims of a caller holding scope `S`.
pub struct Authed<S> {
    pub claims: Claims,
    _scope: PhantomData<S>,
}

impl<S> Authed<S> {
    /// Who acted, as recorded in the audit log.
    pub fn actor(&self) -> String {
        self.claims.sub.clone()
    }
}

impl<S: Scope> FromRequest for Authed<S> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|claims| {
            if claims.has_scope(S::NAME) {
                Ok(Self {
                    claims,
                    _scope: PhantomData,
                })
            } else {
                Err(ApiError::Forbidden(format!(
                    "this operation needs the `{}` scope",
                    S::NAME
                )))
            }
        }))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Claims, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing `Authorization: Bearer <token>`".into()))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not ASCII".into()))?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(ApiError::Unauthorized(
                "the Authorization header must be `Bearer <token>`".into(),
            ));
        }
    };
    state.keys.verify(token).map_err(ApiError::Unauthorized)
}
