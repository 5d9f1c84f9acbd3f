//! A readiness probe's round trip: `PING` to one server, or to every
//! primary of a cluster (by address, from the slot map a node gives), so
//! that a dead primary shows before a replica takes over.

use redis::Value;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use super::{Connection, Target, store_error};
use crate::error::StoreError;

/// Slots a cluster serves when every one is covered.
const SLOTS: u64 = 16_384;

/// `PING` where every counter may live.
pub(super) async fn ping(connection: Connection, target: &Target) -> Result<(), StoreError> {
    match connection {
        Connection::Node(mut node) => redis::cmd("PING")
            .query_async::<Value>(&mut node)
            .await
            .map(drop)
            .map_err(|e| store_error(&e, target)),
        Connection::Cluster(cluster) => every_primary(cluster, target).await,
    }
}

async fn every_primary(mut cluster: ClusterConnection, target: &Target) -> Result<(), StoreError> {
    let map = cluster
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await
        .map_err(|e| store_error(&e, target))?;
    // By address: a node the client has no connection to is an error
    // (routed by slot, it would answer from another node).
    let pings = primaries(&map)?.into_iter().map(|(host, port)| {
        let mut cluster = cluster.clone();
        async move {
            cluster
                .route_command(
                    redis::cmd("PING"),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
                )
                .await
                .map(drop)
                .map_err(|e| store_error(&e, target))
        }
    });
    futures_util::future::join_all(pings)
        .await
        .into_iter()
        .collect()
}

/// Each primary's host and port in a `CLUSTER SLOTS` answer (`[[start,
/// end, [host, port, id?], replicas...], ...]`), once; every slot must be
/// served.
fn primaries(map: &Value) -> Result<Vec<(String, u16)>, StoreError> {
    let unexpected = || StoreError::Unavailable("unexpected CLUSTER SLOTS answer".to_owned());
    let Value::Array(ranges) = map else {
        return Err(unexpected());
    };
    let mut primaries: Vec<(String, u16)> = Vec::new();
    // Each slot once: overlapping ranges cover nothing twice.
    let mut served = vec![false; SLOTS as usize];
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err(unexpected());
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(primary))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return Err(unexpected());
        };
        let (Ok(start), Ok(end)) = (u16::try_from(*start), u16::try_from(*end)) else {
            return Err(unexpected());
        };
        if start > end || u64::from(end) >= SLOTS {
            return Err(unexpected());
        }
        served[usize::from(start)..=usize::from(end)].fill(true);
        let address = match primary.as_slice() {
            [Value::BulkString(host), Value::Int(port), ..] => {
                let host = String::from_utf8(host.clone()).map_err(|_| unexpected())?;
                (host, u16::try_from(*port).map_err(|_| unexpected())?)
            }
            _ => return Err(unexpected()),
        };
        if !primaries.contains(&address) {
            primaries.push(address);
        }
    }
    let covered = served.iter().filter(|&&s| s).count();
    if covered < SLOTS as usize {
        return Err(StoreError::Unavailable(format!(
            "the cluster serves {covered} of {SLOTS} slots"
        )));
    }
    Ok(primaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: i64, end: i64, port: i64) -> Value {
        let node = |port| {
            Value::Array(vec![
                Value::BulkString(b"10.0.0.1".to_vec()),
                Value::Int(port),
            ])
        };
        Value::Array(vec![
            Value::Int(start),
            Value::Int(end),
            node(port),
            node(port + 1),
        ])
    }

    #[test]
    fn one_slot_of_each_primary_and_every_slot_served() {
        let map = Value::Array(vec![
            range(0, 5_460, 7000),
            range(5_461, 10_922, 7002),
            range(10_923, 12_000, 7004),
            range(12_001, 16_383, 7000),
        ]);
        let found = primaries(&map).unwrap();
        let ports: Vec<u16> = found.iter().map(|(_, port)| *port).collect();
        assert_eq!(ports, [7000, 7002, 7004]);
        assert!(found.iter().all(|(host, _)| host == "10.0.0.1"));

        let short = Value::Array(vec![range(0, 5_460, 7000), range(5_461, 10_922, 7002)]);
        let error = primaries(&short).unwrap_err().to_string();
        assert!(error.contains("10923 of 16384 slots"), "{error}");
        // Overlapping ranges (a lying node) cover each slot once.
        let overlapping = Value::Array(vec![range(0, 10_000, 7000), range(0, 10_000, 7002)]);
        let error = primaries(&overlapping).unwrap_err().to_string();
        assert!(error.contains("10001 of 16384 slots"), "{error}");
        for bad in [
            Value::Nil,
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![range(20_000, 20_001, 7000)]),
            Value::Array(vec![range(10, 5, 7000)]),
        ] {
            assert!(primaries(&bad).is_err(), "{bad:?}");
        }
    }
}
