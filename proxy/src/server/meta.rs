//! gRPC service describing a namespace (what it serves, its limits).

use prism_proto::meta::v1::{self as pb, meta_server};
use tonic::{Request, Response, Status};

use crate::Operation;

pub struct MetaService;

#[tonic::async_trait]
impl meta_server::Meta for MetaService {
    async fn describe_namespace(
        &self,
        _request: Request<pb::DescribeNamespaceRequest>,
    ) -> Result<Response<pb::DescribeNamespaceResponse>, Status> {
        let ns = super::namespace::admitted()?;
        let limits = ns.limits;
        let response = pb::DescribeNamespaceResponse {
            namespace: ns.name.clone(),
            backend: ns.backend.kind.to_string(),
            interfaces: ns.backend.interfaces().iter().map(|i| i.as_str().to_string()).collect(),
            limits: Some(pb::Limits {
                max_key_bytes: limits.max_key_bytes,
                max_value_bytes: limits.max_value_bytes,
                max_batch_entries: limits.max_batch_entries,
                max_in_flight: limits.max_in_flight,
                max_message_bytes: limits.max_message_bytes,
                max_response_bytes: limits.max_response_bytes,
            }),
        };
        ns.run(Operation::MetaDescribe, async move { Ok(response) }).await
    }
}
