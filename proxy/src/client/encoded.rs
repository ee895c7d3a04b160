//! Unary calls with messages encoded by prost and framed here: every unary call of
//! [`PrismClient`] takes this path, and [`PrismClient::call_encoded`] opens it to callers
//! that encode their own messages (methods known only at run time). Against tonic's
//! generated client it saves, per call, the codec's encode buffer and decode stream and
//! their futures: a tenth of the load generator's CPU (`reports/baseline/loadtest.md`).
//! The framing, headers and status handling are gRPC's (`PROTOCOL-HTTP2.md`): one
//! length-prefixed uncompressed message each way, the status in the trailers, or in the
//! headers of a trailers-only answer.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderMap, HeaderValue, Method, Uri};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;

use super::PrismClient;
use super::transport::UnaryError;
use crate::status::from_status;
use crate::{BackendError, BackendResult, Operation};

const GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");

/// The largest reply accepted: tonic's default decoding limit, as before this path.
const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;

/// A gRPC method path, `/package.Service/Method`, checked once.
#[derive(Debug, Clone)]
pub struct MethodPath(http::uri::PathAndQuery);

impl MethodPath {
    /// `path` must look like `/package.Service/Method`.
    pub fn parse(path: &str) -> BackendResult<MethodPath> {
        let shaped = path
            .strip_prefix('/')
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(service, method)| !service.is_empty() && !method.is_empty() && !method.contains('/'));
        if !shaped {
            return Err(BackendError::invalid(
                "method",
                format!("{path:?} is not a gRPC method path (/package.Service/Method)"),
            ));
        }
        path.parse()
            .map(MethodPath)
            .map_err(|e| BackendError::invalid("method", format!("{path:?}: {e}")))
    }

    /// The path of a Prism operation's method.
    pub fn of(op: Operation) -> &'static MethodPath {
        static PATHS: LazyLock<Vec<MethodPath>> = LazyLock::new(|| {
            Operation::ALL
                .into_iter()
                .map(|op| MethodPath(op.grpc_path().parse().expect("operation paths are valid URI paths")))
                .collect()
        });
        &PATHS[op as usize]
    }

    /// The path, as given.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PrismClient {
    /// Calls the unary method `path` with `message`, the protobuf encoding of its request,
    /// and returns the protobuf encoding of the reply. Metadata, deadline and namespace are
    /// this client's, as for the typed calls, with `metadata` added (replacing the
    /// client's values of the same keys); a non-OK status is the server's error.
    pub async fn call_encoded(
        &self,
        path: &MethodPath,
        message: &[u8],
        metadata: &MetadataMap,
    ) -> BackendResult<Bytes> {
        let body = frame(message.len(), |buf| buf.put_slice(message))?;
        self.call_framed(path, body, None, metadata).await
    }

    /// Opens the server-streaming method `path` with `message` (the protobuf encoding of
    /// its request) and returns the protobuf encodings of the messages the server sends,
    /// ending with the stream or with the error status that ended it. Metadata and
    /// namespace as for [`PrismClient::call_encoded`]; the client's deadline, if any,
    /// bounds the whole stream. Dropping the stream cancels the call.
    pub async fn server_stream_encoded(
        &self,
        path: &MethodPath,
        message: Bytes,
        metadata: &MetadataMap,
    ) -> BackendResult<BoxStream<'static, BackendResult<Bytes>>> {
        let mut grpc = match &self.origin {
            Some(origin) => tonic::client::Grpc::with_origin(self.transport.clone(), origin.clone()),
            None => tonic::client::Grpc::new(self.transport.clone()),
        };
        grpc.ready()
            .await
            .map_err(|e| BackendError::Unavailable(format!("{}: {e}", path.as_str())))?;
        let mut request = tonic::Request::new(message);
        let headers = request.metadata_mut();
        *headers = self.metadata();
        for (key, value) in metadata.iter().filter_map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => Some((k, v)),
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        }) {
            headers.insert(key.clone(), value.clone());
        }
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        // Kept here too: a server need not enforce `grpc-timeout` on its streams.
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        let stream = grpc
            .server_streaming(request, path.0.clone(), RawCodec)
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        let messages = stream.map(|message| message.map_err(|s| from_status(&s)));
        Ok(match deadline {
            None => messages.boxed(),
            Some(deadline) => {
                let method: std::sync::Arc<str> = path.as_str().into();
                futures::stream::unfold(Some(messages.boxed()), move |stream| {
                    let method = method.clone();
                    async move {
                        let mut stream = stream?;
                        match tokio::time::timeout_at(deadline, stream.next()).await {
                            Ok(Some(message)) => Some((message, Some(stream))),
                            Ok(None) => None,
                            Err(_) => Some((
                                Err(BackendError::DeadlineExceeded(format!(
                                    "{method}: the stream outlived the client's deadline"
                                ))),
                                None,
                            )),
                        }
                    }
                })
                .boxed()
            }
        })
    }

    /// A typed unary call of `op` over [`PrismClient::call_encoded`]'s path; `timeout`
    /// replaces the client's deadline for this call.
    pub(super) async fn unary<Reply: prost::Message + Default>(
        &self,
        op: Operation,
        request: impl prost::Message,
        timeout: Option<Duration>,
    ) -> BackendResult<Reply> {
        let path = MethodPath::of(op);
        // Encoded straight into the framed body: no intermediate buffer.
        let body = frame(request.encoded_len(), |buf| request.encode_raw(buf))?;
        let reply = self.call_framed(path, body, timeout, &MetadataMap::new()).await?;
        Reply::decode(reply)
            .map_err(|e| BackendError::Unavailable(format!("{}: the reply does not decode: {e}", path.as_str())))
    }

    /// Sends `body`, one framed message, and returns the reply's message.
    async fn call_framed(
        &self,
        path: &MethodPath,
        body: Bytes,
        timeout: Option<Duration>,
        metadata: &MetadataMap,
    ) -> BackendResult<Bytes> {
        let request = self.framed_request(path, timeout, metadata)?;
        let reply = self
            .transport
            .unary(request, body, MAX_REPLY_BYTES + 5)
            .await
            .map_err(|e| match e {
                // As gRPC's own clients refuse a message over their limit.
                UnaryError::TooLarge(_) => BackendError::Overloaded(format!(
                    "{}: the reply is larger than {MAX_REPLY_BYTES} bytes",
                    path.as_str()
                )),
                // Transport failures read as tonic's typed client reports them.
                UnaryError::Transport(e) => from_status(&tonic::Status::from_error(e)),
            })?;
        if reply.status != http::StatusCode::OK {
            return Err(BackendError::Unavailable(format!(
                "{}: HTTP status {} instead of a gRPC answer",
                path.as_str(),
                reply.status
            )));
        }
        // A trailers-only answer carries the status in the headers (errors, mostly).
        let status = tonic::Status::from_header_map(&reply.headers)
            .or_else(|| reply.trailers.as_ref().and_then(tonic::Status::from_header_map));
        match status {
            Some(status) if status.code() == tonic::Code::Ok => unframe(reply.data).ok_or_else(|| {
                BackendError::Unavailable(format!(
                    "{}: the reply is not one uncompressed gRPC message",
                    path.as_str()
                ))
            }),
            Some(status) => Err(from_status(&status)),
            None => Err(BackendError::Unavailable(format!(
                "{}: the reply has no grpc-status",
                path.as_str()
            ))),
        }
    }

    /// The head of a unary call of `path`: this client's headers and deadline.
    fn framed_request(
        &self,
        path: &MethodPath,
        timeout: Option<Duration>,
        metadata: &MetadataMap,
    ) -> BackendResult<http::Request<()>> {
        // The direct transport needs scheme and authority; tonic's channel adds its own.
        let uri = match &self.origin {
            Some(origin) => {
                let mut parts = origin.clone().into_parts();
                parts.path_and_query = Some(path.0.clone());
                Uri::from_parts(parts).map_err(|e| BackendError::invalid("method", e.to_string()))?
            }
            None => Uri::from(path.0.clone()),
        };
        let mut request = http::Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = self.unary_headers.clone();
        if !metadata.is_empty() {
            // Extending replaces the client's values of the same keys.
            request.headers_mut().extend(metadata.clone().into_headers());
        }
        if let Some(value) = timeout.and_then(grpc_timeout) {
            request.headers_mut().insert(GRPC_TIMEOUT, value);
        }
        Ok(request)
    }
}

/// Messages passed through as their encodings: the codec of [`PrismClient::server_stream_encoded`].
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// One uncompressed gRPC frame of a `length`-byte message that `write` puts in.
fn frame(length: usize, write: impl FnOnce(&mut BytesMut)) -> BackendResult<Bytes> {
    let prefix = u32::try_from(length)
        .map_err(|_| BackendError::invalid("message", "larger than a gRPC frame can carry (4 GiB)"))?;
    let mut framed = BytesMut::with_capacity(5 + length);
    framed.put_u8(0);
    framed.put_u32(prefix);
    write(&mut framed);
    Ok(framed.freeze())
}

/// The message of a body holding exactly one uncompressed gRPC frame.
fn unframe(mut data: Bytes) -> Option<Bytes> {
    if data.len() < 5 || data[0] != 0 {
        return None;
    }
    let length = usize::try_from(u32::from_be_bytes(data[1..5].try_into().ok()?)).ok()?;
    data.advance(5);
    (data.len() == length).then_some(data)
}

/// The headers of every unary call of a client: its metadata, then gRPC's.
pub(super) fn headers(metadata: tonic::metadata::MetadataMap, timeout: Option<Duration>) -> HeaderMap {
    let mut headers = metadata.into_headers();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    if let Some(value) = timeout.and_then(grpc_timeout) {
        headers.insert(GRPC_TIMEOUT, value);
    }
    headers
}

/// A `grpc-timeout` value (at most 8 digits and a unit), in the finest unit that fits.
fn grpc_timeout(timeout: Duration) -> Option<HeaderValue> {
    let micros = timeout.as_micros();
    let text = if micros < 100_000_000 {
        format!("{micros}u")
    } else if timeout.as_millis() < 100_000_000 {
        format!("{}m", timeout.as_millis())
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    };
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths_are_checked() {
        assert!(MethodPath::parse("/prism.keyvalue.v1.KeyValueBasic/Get").is_ok());
        for bad in ["", "/", "Get", "/Service", "/Service/", "//Get", "/a/b/c", "/a/b c"] {
            assert!(MethodPath::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            MethodPath::of(Operation::KvGet).as_str(),
            "/prism.keyvalue.v1.KeyValueBasic/Get"
        );
    }

    #[test]
    fn one_frame_unframes_and_anything_else_does_not() {
        let frame = |flag: u8, length: u32, body: &[u8]| {
            let mut b = vec![flag];
            b.extend_from_slice(&length.to_be_bytes());
            b.extend_from_slice(body);
            Bytes::from(b)
        };
        assert_eq!(unframe(frame(0, 3, b"abc")), Some(Bytes::from_static(b"abc")));
        assert_eq!(unframe(frame(0, 0, b"")), Some(Bytes::new()));
        assert_eq!(unframe(frame(1, 3, b"abc")), None, "compressed");
        assert_eq!(unframe(frame(0, 4, b"abc")), None, "short");
        assert_eq!(unframe(frame(0, 2, b"abc")), None, "two messages or trailing bytes");
        assert_eq!(unframe(Bytes::from_static(b"\0\0")), None, "no prefix");
    }
}
