//! axum's extractors with SERVER.md's JSON errors as their rejections.

use axum::extract::{FromRequest, FromRequestParts};

use super::ApiError;

/// A JSON body; malformed JSON or wrong types are `bad_request`, a body
/// over the limit `payload_too_large`.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// Path parameters; a bad UUID is `bad_request`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query parameters; unknown or malformed ones are `bad_request`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);
