//! A readiness probe's round trip: `PING` to one server, or to every
//! primary of a cluster (by address, from the slot map a node gives), so
//! that a dead primary shows before a replica takes over.

use redis::Value;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};

use super::backoff::Backoff;
use super::slots::{self, Primary, Range, SLOTS};
use super::{Connection, Target, store_error};
use crate::error::StoreError;

/// `PING` where every counter may live; on a cluster, the slot map it
/// asks for is the backoff's too.
pub(super) async fn ping(
    connection: Connection,
    target: &Target,
    backoff: &Backoff,
) -> Result<(), StoreError> {
    match connection {
        Connection::Node(mut node) => redis::cmd("PING")
            .query_async::<Value>(&mut node)
            .await
            .map(drop)
            .map_err(|e| store_error(&e, target)),
        Connection::Cluster(cluster) => every_primary(cluster, target, backoff).await,
    }
}

async fn every_primary(
    mut cluster: ClusterConnection,
    target: &Target,
    backoff: &Backoff,
) -> Result<(), StoreError> {
    let map = slots::fetch(&mut cluster, target).await?;
    backoff.set_map(map.clone());
    let primaries = primaries(&map)?;
    let addresses: Option<Vec<(String, u16)>> = primaries
        .into_iter()
        .map(|primary| match primary.address {
            (Some(host), port) => Some((host, port)),
            (None, _) => None,
        })
        .collect();
    // A map that leaves a host to the client: every primary as the client
    // knows them (it may answer for a dead one from another node, until it
    // learns of the failure).
    let Some(addresses) = addresses else {
        return cluster
            .route_command(
                redis::cmd("PING"),
                RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                )),
            )
            .await
            .map(drop)
            .map_err(|e| store_error(&e, target));
    };
    // By address: a node the client has no connection to is an error
    // (routed by slot, it would answer from another node).
    let pings = addresses.into_iter().map(|(host, port)| {
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

/// Each primary in the slot map, once; every slot must be served.
fn primaries(map: &[Range]) -> Result<Vec<Primary>, StoreError> {
    let mut primaries: Vec<Primary> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut covered = 0;
    // The ranges do not overlap (`slots::parse`).
    for range in map {
        covered += usize::from(range.end - range.start) + 1;
        if seen.insert(&range.primary) {
            primaries.push(range.primary.clone());
        }
    }
    if covered < usize::from(SLOTS) {
        return Err(StoreError::Unavailable(format!(
            "the cluster serves {covered} of {SLOTS} slots"
        )));
    }
    Ok(primaries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::slots::tests::range;

    fn primaries(map: &Value) -> Result<Vec<(String, u16)>, StoreError> {
        let primaries = super::primaries(&slots::parse(map)?)?;
        Ok(primaries
            .into_iter()
            .map(|p| (p.address.0.unwrap_or_default(), p.address.1))
            .collect())
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
        // Overlapping ranges (a lying node) are no map.
        let overlapping = Value::Array(vec![range(0, 10_000, 7000), range(0, 16_383, 7002)]);
        let error = primaries(&overlapping).unwrap_err().to_string();
        assert!(error.contains("unexpected CLUSTER SLOTS answer"), "{error}");
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
