//! The descriptors of a server's services from its gRPC reflection service, so a caller
//! can build messages for methods it has no `.proto` for (the load generator's
//! `grpc.unary`, as `grpcurl` and `ghz` do). `grpc.reflection.v1` is asked first, then
//! `v1alpha` for servers that only have the older one.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use prost_types::FileDescriptorProto;

use super::PrismClient;
use crate::status::from_status;
use crate::{BackendError, BackendResult};

/// Files asked for at most: a bound on what a server can make the client fetch.
const MAX_FILES: usize = 1000;

/// One reflection request, by either protocol version.
enum Ask {
    Symbol(String),
    File(String),
}

/// Generates the call of one reflection version: its types live in their own modules.
macro_rules! ask_with {
    ($name:ident, $module:path) => {
        async fn $name(client: &PrismClient, ask: &Ask) -> Result<Vec<Vec<u8>>, tonic::Status> {
            use $module::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
            };
            let mut reflection = match &client.origin {
                Some(origin) => ServerReflectionClient::with_origin(client.transport.clone(), origin.clone()),
                None => ServerReflectionClient::new(client.transport.clone()),
            };
            let message_request = match ask {
                Ask::Symbol(s) => MessageRequest::FileContainingSymbol(s.clone()),
                Ask::File(f) => MessageRequest::FileByFilename(f.clone()),
            };
            let mut request = tonic::Request::new(futures::stream::iter([ServerReflectionRequest {
                host: String::new(),
                message_request: Some(message_request),
            }]));
            *request.metadata_mut() = client.metadata();
            let mut replies = reflection.server_reflection_info(request).await?.into_inner();
            match replies.message().await?.and_then(|r| r.message_response) {
                Some(MessageResponse::FileDescriptorResponse(files)) => Ok(files.file_descriptor_proto),
                Some(MessageResponse::ErrorResponse(e)) => Err(tonic::Status::new(
                    tonic::Code::from(e.error_code),
                    e.error_message,
                )),
                other => Err(tonic::Status::internal(format!(
                    "expected file descriptors, got {other:?}"
                ))),
            }
        }
    };
}

ask_with!(ask_v1, tonic_reflection::pb::v1);
ask_with!(ask_v1alpha, tonic_reflection::pb::v1alpha);

impl PrismClient {
    /// The files that define `symbols` (full names such as `package.Service`) and every
    /// file they import, each once (services often share a file), from the server's
    /// reflection service; NOT_FOUND when the server does not know a symbol,
    /// UNIMPLEMENTED when it has no reflection.
    pub async fn reflect(&self, symbols: &[&str]) -> BackendResult<Vec<FileDescriptorProto>> {
        let symbol = symbols.join(", ");
        let mut v1 = true;
        let mut files: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
        let mut wanted: Vec<Ask> = symbols.iter().map(|s| Ask::Symbol(s.to_string())).collect();
        let mut asked = BTreeSet::new();
        while let Some(ask) = wanted.pop() {
            if asked.len() >= MAX_FILES {
                return Err(BackendError::Overloaded(format!(
                    "reflection of {symbol}: more than {MAX_FILES} files"
                )));
            }
            if let Ask::File(name) = &ask {
                asked.insert(name.clone());
            }
            let mut reply = if v1 {
                ask_v1(self, &ask).await
            } else {
                ask_v1alpha(self, &ask).await
            };
            if v1 && matches!(&reply, Err(s) if s.code() == tonic::Code::Unimplemented) {
                v1 = false;
                reply = ask_v1alpha(self, &ask).await;
            }
            for encoded in reply.map_err(|s| from_status(&s))? {
                let file = FileDescriptorProto::decode(encoded.as_slice()).map_err(|e| {
                    BackendError::Unavailable(format!(
                        "reflection of {symbol}: a file descriptor does not decode: {e}"
                    ))
                })?;
                files.insert(file.name().to_string(), file);
            }
            // Servers may send imports along or not: ask for those still missing.
            for name in files.values().flat_map(|f| f.dependency.iter()) {
                if !files.contains_key(name)
                    && !asked.contains(name)
                    && !wanted.iter().any(|w| matches!(w, Ask::File(n) if n == name))
                {
                    wanted.push(Ask::File(name.clone()));
                }
            }
        }
        Ok(files.into_values().collect())
    }
}
