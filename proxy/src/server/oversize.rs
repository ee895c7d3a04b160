//! A request message over the size the proxy decodes gets INVALID_ARGUMENT with the
//! standard details (field and limit), like every other request over a limit. tonic's
//! decoder answers OUT_OF_RANGE with its own text before any handler runs; this layer
//! rewrites that answer on its way out. No handler answers OUT_OF_RANGE, so nothing else
//! is touched.

use tonic::body::Body;
use tower::layer::util::{Identity, Stack};
use tower::util::MapResponseLayer;

use super::MAX_MESSAGE_BYTES;
use crate::BackendError;
use crate::status::to_status;

type Rewrite = fn(http::Response<Body>) -> http::Response<Body>;

/// The layer the gRPC server is built with.
pub(crate) type Layer = Stack<MapResponseLayer<Rewrite>, Identity>;

pub(crate) fn layer() -> MapResponseLayer<Rewrite> {
    MapResponseLayer::new(rewrite as Rewrite)
}

fn rewrite(mut response: http::Response<Body>) -> http::Response<Body> {
    let Some(status) = tonic::Status::from_header_map(response.headers()) else {
        return response;
    };
    if status.code() != tonic::Code::OutOfRange {
        return response;
    }
    let err = BackendError::InvalidArgument {
        field: "(message)".into(),
        message: format!(
            "the request is over the largest message the proxy decodes, {MAX_MESSAGE_BYTES} bytes ({})",
            status.message()
        ),
        limit: Some(format!("max_message_bytes={MAX_MESSAGE_BYTES}")),
    };
    let headers = response.headers_mut();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    // A status built here always encodes; if it ever did not, the original answer stands.
    let _ = to_status(&err, None).add_header(headers);
    response
}
