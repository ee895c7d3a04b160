//! Every operation the proxy serves, named as in metrics and load scenarios.

use super::Interface;

/// One gRPC method of the interfaces (plus `Meta/DescribeNamespace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is named by `as_str`
pub enum Operation {
    KvSet,
    KvGet,
    KvDelete,
    KvExists,
    KvSetWithTtl,
    KvExpire,
    KvTtl,
    KvPersist,
    KvScan,
    KvCount,
    KvBatchSet,
    KvBatchGet,
    KvBatchDelete,
    PubsubPublish,
    PubsubSubscribe,
    PubsubUnsubscribe,
    QueueEnqueue,
    QueueReceive,
    QueueAck,
    QueueNack,
    TsAppend,
    TsAppendColumns,
    TsQuery,
    TsAggregate,
    MetaDescribe,
}

impl Operation {
    /// In declaration order, so `op as usize` indexes it.
    pub const ALL: [Operation; 25] = [
        Operation::KvSet,
        Operation::KvGet,
        Operation::KvDelete,
        Operation::KvExists,
        Operation::KvSetWithTtl,
        Operation::KvExpire,
        Operation::KvTtl,
        Operation::KvPersist,
        Operation::KvScan,
        Operation::KvCount,
        Operation::KvBatchSet,
        Operation::KvBatchGet,
        Operation::KvBatchDelete,
        Operation::PubsubPublish,
        Operation::PubsubSubscribe,
        Operation::PubsubUnsubscribe,
        Operation::QueueEnqueue,
        Operation::QueueReceive,
        Operation::QueueAck,
        Operation::QueueNack,
        Operation::TsAppend,
        Operation::TsAppendColumns,
        Operation::TsQuery,
        Operation::TsAggregate,
        Operation::MetaDescribe,
    ];

    /// The name in metrics, spans and load scenarios (`keyvalue.get`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::KvSet => "keyvalue.set",
            Operation::KvGet => "keyvalue.get",
            Operation::KvDelete => "keyvalue.delete",
            Operation::KvExists => "keyvalue.exists",
            Operation::KvSetWithTtl => "keyvalue.set_with_ttl",
            Operation::KvExpire => "keyvalue.expire",
            Operation::KvTtl => "keyvalue.ttl",
            Operation::KvPersist => "keyvalue.persist",
            Operation::KvScan => "keyvalue.scan",
            Operation::KvCount => "keyvalue.count",
            Operation::KvBatchSet => "keyvalue.batch_set",
            Operation::KvBatchGet => "keyvalue.batch_get",
            Operation::KvBatchDelete => "keyvalue.batch_delete",
            Operation::PubsubPublish => "pubsub.publish",
            Operation::PubsubSubscribe => "pubsub.subscribe",
            Operation::PubsubUnsubscribe => "pubsub.unsubscribe",
            Operation::QueueEnqueue => "queue.enqueue",
            Operation::QueueReceive => "queue.receive",
            Operation::QueueAck => "queue.ack",
            Operation::QueueNack => "queue.nack",
            Operation::TsAppend => "timeseries.append",
            Operation::TsAppendColumns => "timeseries.append_columns",
            Operation::TsQuery => "timeseries.query",
            Operation::TsAggregate => "timeseries.aggregate",
            Operation::MetaDescribe => "meta.describe_namespace",
        }
    }

    /// The interface the operation belongs to; `None` for `meta.describe_namespace`,
    /// which every namespace serves.
    pub fn interface(self) -> Option<Interface> {
        use Operation::*;
        Some(match self {
            KvSet | KvGet | KvDelete | KvExists => Interface::KeyvalueBasic,
            KvSetWithTtl | KvExpire | KvTtl | KvPersist => Interface::KeyvalueTtl,
            KvScan | KvCount => Interface::KeyvalueScan,
            KvBatchSet | KvBatchGet | KvBatchDelete => Interface::KeyvalueBatch,
            PubsubPublish | PubsubSubscribe | PubsubUnsubscribe => Interface::PubsubBasic,
            QueueEnqueue | QueueReceive | QueueAck | QueueNack => Interface::QueueBasic,
            TsAppend | TsAppendColumns | TsQuery | TsAggregate => Interface::TimeseriesBasic,
            MetaDescribe => return None,
        })
    }

    /// The HTTP/2 path of the operation's gRPC method: `/<package>.<Service>/<Method>`.
    pub fn grpc_path(self) -> String {
        use Operation::*;
        use prism_proto::{
            keyvalue::v1 as kv, meta::v1 as meta, pubsub::v1 as ps, queue::v1 as q, timeseries::v1 as ts,
        };
        let (service, method) = match self {
            KvSet => (kv::key_value_basic_server::SERVICE_NAME, "Set"),
            KvGet => (kv::key_value_basic_server::SERVICE_NAME, "Get"),
            KvDelete => (kv::key_value_basic_server::SERVICE_NAME, "Delete"),
            KvExists => (kv::key_value_basic_server::SERVICE_NAME, "Exists"),
            KvSetWithTtl => (kv::key_value_ttl_server::SERVICE_NAME, "SetWithTtl"),
            KvExpire => (kv::key_value_ttl_server::SERVICE_NAME, "Expire"),
            KvTtl => (kv::key_value_ttl_server::SERVICE_NAME, "Ttl"),
            KvPersist => (kv::key_value_ttl_server::SERVICE_NAME, "Persist"),
            KvScan => (kv::key_value_scan_server::SERVICE_NAME, "Scan"),
            KvCount => (kv::key_value_scan_server::SERVICE_NAME, "Count"),
            KvBatchSet => (kv::key_value_batch_server::SERVICE_NAME, "BatchSet"),
            KvBatchGet => (kv::key_value_batch_server::SERVICE_NAME, "BatchGet"),
            KvBatchDelete => (kv::key_value_batch_server::SERVICE_NAME, "BatchDelete"),
            PubsubPublish => (ps::pub_sub_basic_server::SERVICE_NAME, "Publish"),
            PubsubSubscribe => (ps::pub_sub_basic_server::SERVICE_NAME, "Subscribe"),
            PubsubUnsubscribe => (ps::pub_sub_basic_server::SERVICE_NAME, "Unsubscribe"),
            QueueEnqueue => (q::queue_basic_server::SERVICE_NAME, "Enqueue"),
            QueueReceive => (q::queue_basic_server::SERVICE_NAME, "Receive"),
            QueueAck => (q::queue_basic_server::SERVICE_NAME, "Ack"),
            QueueNack => (q::queue_basic_server::SERVICE_NAME, "Nack"),
            TsAppend => (ts::time_series_basic_server::SERVICE_NAME, "Append"),
            TsAppendColumns => (ts::time_series_basic_server::SERVICE_NAME, "AppendColumns"),
            TsQuery => (ts::time_series_basic_server::SERVICE_NAME, "Query"),
            TsAggregate => (ts::time_series_basic_server::SERVICE_NAME, "Aggregate"),
            MetaDescribe => (meta::meta_server::SERVICE_NAME, "DescribeNamespace"),
        };
        format!("/{service}/{method}")
    }

    /// The operation named `name` (as [`Operation::as_str`] spells it).
    pub fn parse(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::{Interface, Operation};

    /// Each operation has its own path, and the path names a method the generated code
    /// serves (the method names are checked end to end by every e2e test).
    #[test]
    fn every_operation_has_its_own_path() {
        let paths: std::collections::HashSet<String> = Operation::ALL.into_iter().map(Operation::grpc_path).collect();
        assert_eq!(paths.len(), Operation::ALL.len());
        for op in Operation::ALL {
            assert!(op.grpc_path().starts_with("/prism."), "{op:?}");
        }
    }

    #[test]
    fn all_is_in_index_order() {
        for (i, op) in Operation::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{op:?}");
        }
    }

    /// Names are `<interface family>.<method>` and every interface has operations.
    #[test]
    fn names_parse_back_and_every_interface_has_operations() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.as_str()), Some(op));
            if let Some(interface) = op.interface() {
                let family = interface.as_str().split('_').next().unwrap_or_default();
                assert!(op.as_str().starts_with(family), "{op:?} in {interface}");
            }
        }
        for interface in Interface::ALL {
            assert!(
                Operation::ALL.iter().any(|op| op.interface() == Some(interface)),
                "{interface}"
            );
        }
    }
}
