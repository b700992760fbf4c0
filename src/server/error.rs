//! Errors as HTTP answers: a status code and
//! `{"error": {"kind", "message", "field"?}}` (SERVER.md). Client input
//! never produces a 500: only engine faults do.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::Error;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub field: Option<String>,
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorBody)]
pub(crate) struct Body<'a> {
    error: Inner<'a>,
}

/// What went wrong: `kind` is one of SERVER.md's error kinds, `field`
/// names the offending field of a validation error.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorDetail)]
pub(crate) struct Inner<'a> {
    kind: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

/// The error answers any route may give, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only described, never built
pub(crate) enum Failures {
    /// `validation` (names the field), `bad_request` (malformed JSON, wrong
    /// types, bad ids, unknown query parameters) or `no_embedder`.
    #[response(status = 400)]
    BadRequest(Body<'static>),
    /// `unauthorized`: a token is set and the request lacks it.
    #[response(status = 401)]
    Unauthorized(Body<'static>),
    /// `read_only`: a write to a server started with `--read-only`.
    #[response(status = 403)]
    ReadOnly(Body<'static>),
    /// `not_found`: an unknown id or route.
    #[response(status = 404)]
    NotFound(Body<'static>),
    /// `method_not_allowed`.
    #[response(status = 405)]
    MethodNotAllowed(Body<'static>),
    /// `payload_too_large`: the body is over the server's limit.
    #[response(status = 413)]
    PayloadTooLarge(Body<'static>),
    /// `overloaded`: retry after the `Retry-After` seconds.
    #[response(status = 429)]
    Overloaded(Body<'static>),
    /// `internal`: an engine fault (never client input).
    #[response(status = 500)]
    Internal(Body<'static>),
    /// `closed`: the server is shutting down.
    #[response(status = 503)]
    Closed(Body<'static>),
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            field: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_string()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "validation", message)
        }
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        )
    }

    pub fn read_only() -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "the server is read-only (started with --read-only)",
        )
    }

    pub fn no_embedder() -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "no_embedder",
            "this server has no embedder: send a vector, or start it with --embedder builtin",
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match &e {
            Error::Validation(v) => ApiError {
                field: Some(v.field().to_string()),
                ..ApiError::new(StatusCode::BAD_REQUEST, "validation", message)
            },
            Error::NotFound(_) => ApiError::not_found(message),
            Error::ReadOnly => ApiError::read_only(),
            Error::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "closed",
                "the server is shutting down",
            ),
            Error::Overloaded => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                "too many requests in flight; retry shortly",
            ),
            Error::NoEmbedder => ApiError::no_embedder(),
            Error::ChangesCompacted { .. } => ApiError {
                field: Some("since".into()),
                ..ApiError::new(StatusCode::BAD_REQUEST, "validation", message)
            },
            _ => {
                tracing::error!(error = %e, "engine fault");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is over the server's limit",
                )
            }
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                kind: self.kind,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
