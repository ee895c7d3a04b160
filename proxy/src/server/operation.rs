//! Every operation the proxy serves, named as in metrics and load scenarios.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    TsQuery,
    TsAggregate,
    MetaDescribe,
}

impl Operation {
    /// In declaration order, so `op as usize` indexes it.
    pub const ALL: [Operation; 24] = [
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
        Operation::TsQuery,
        Operation::TsAggregate,
        Operation::MetaDescribe,
    ];

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
            Operation::TsQuery => "timeseries.query",
            Operation::TsAggregate => "timeseries.aggregate",
            Operation::MetaDescribe => "meta.describe_namespace",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Operation;

    #[test]
    fn all_is_in_index_order() {
        for (i, op) in Operation::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{op:?}");
        }
    }
}
