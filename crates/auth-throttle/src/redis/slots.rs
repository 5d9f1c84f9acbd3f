//! A Redis Cluster's hash slots: a key's slot, and the slot map a node
//! gives (`CLUSTER SLOTS`): which primary serves which slots.

use redis::Value;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use super::{Target, store_error};
use crate::error::StoreError;

/// How many hash slots a cluster has.
pub(super) const SLOTS: u16 = 16_384;

/// The hash slot of `key`: CRC16 (XMODEM) of its hash tag (what is between
/// the first `{` and the next `}`, when not empty), else of the whole key,
/// modulo [`SLOTS`].
pub(super) fn slot_of(key: &str) -> u16 {
    let key = key.as_bytes();
    let tag = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty());
    crc16::State::<crc16::XMODEM>::calculate(tag.unwrap_or(key)) % SLOTS
}

/// Slots `start..=end`, served by `primary`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Range {
    pub(super) start: u16,
    pub(super) end: u16,
    pub(super) primary: Primary,
}

/// A primary as the map names it: two ranges of one node are equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Primary {
    /// Host and port; no host when the map leaves it to the client (empty,
    /// NULL or a wildcard: the node that answered; `?`: unknown).
    pub(super) address: (Option<String>, u16),
    /// The node id, when the map gives it.
    pub(super) id: Option<String>,
}

impl Range {
    pub(super) fn contains(&self, slot: u16) -> bool {
        (self.start..=self.end).contains(&slot)
    }
}

/// The slot map, from a node the client picks.
pub(super) async fn fetch(
    cluster: &mut ClusterConnection,
    target: &Target,
) -> Result<Vec<Range>, StoreError> {
    let map = cluster
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await
        .map_err(|e| store_error(&e, target))?;
    parse(&map)
}

/// The ranges of a `CLUSTER SLOTS` answer (`[[start, end, [host, port,
/// id?], replicas...], ...]`), each checked, in slot order, none
/// overlapping another (a slot has one primary; so no answer makes more
/// than [`SLOTS`] ranges). Whether they cover every slot is the caller's
/// question.
pub(super) fn parse(map: &Value) -> Result<Vec<Range>, StoreError> {
    let unexpected = || StoreError::Unavailable("unexpected CLUSTER SLOTS answer".to_owned());
    let Value::Array(ranges) = map else {
        return Err(unexpected());
    };
    if ranges.len() > usize::from(SLOTS) {
        return Err(unexpected());
    }
    let mut ranges = ranges
        .iter()
        .map(|range| {
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
            if start > end || end >= SLOTS {
                return Err(unexpected());
            }
            let text = |value: &Value| match value {
                Value::BulkString(bytes) => String::from_utf8(bytes.clone())
                    .map(Some)
                    .map_err(|_| unexpected()),
                Value::Nil => Ok(None),
                _ => Err(unexpected()),
            };
            let (host, port, id) = match primary.as_slice() {
                [host, Value::Int(port), rest @ ..] => (
                    text(host)?.filter(|h| !matches!(h.as_str(), "" | "?" | "0.0.0.0" | "::")),
                    u16::try_from(*port).map_err(|_| unexpected())?,
                    rest.first().map(text).transpose()?.flatten(),
                ),
                _ => return Err(unexpected()),
            };
            let primary = Primary {
                address: (host, port),
                id,
            };
            Ok(Range {
                start,
                end,
                primary,
            })
        })
        .collect::<Result<Vec<Range>, StoreError>>()?;
    ranges.sort_unstable_by_key(|range| range.start);
    if ranges.windows(2).any(|pair| pair[0].end >= pair[1].start) {
        return Err(unexpected());
    }
    Ok(ranges)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    /// `start..=end` served by 10.0.0.1:`port`, replicated on `port + 1`.
    pub(in crate::redis) fn range(start: i64, end: i64, port: i64) -> Value {
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
    fn a_keys_slot_is_the_one_the_cluster_client_routes_it_to() {
        let keys = [
            "auth-throttle:{abc}:rule",
            "p:{}:r",
            "p:{a}{b}",
            "p:{",
            "p:}{x}",
            "no tag",
            "",
            "{user1000}.following",
            "foo{}{bar}",
            "foo{{bar}}zap",
            "foo{bar}{zap}",
        ];
        for key in keys
            .iter()
            .copied()
            .map(str::to_owned)
            .chain((0..2_000).map(|n| format!("auth-throttle:{{{:x}}}:r", n * 7_919)))
        {
            assert_eq!(Slot::new(slot_of(&key)), Some(Slot::for_key(&key)), "{key}");
        }
        // Redis's documented example.
        assert_eq!(slot_of("123456789"), 12_739);
    }

    #[test]
    fn ranges_are_checked() {
        // In slot order, whatever the answer's.
        let map = Value::Array(vec![range(5_461, 16_383, 7002), range(0, 5_460, 7000)]);
        let ranges = parse(&map).unwrap();
        assert_eq!(ranges.len(), 2);
        assert_eq!(
            ranges[1].primary.address,
            (Some("10.0.0.1".to_owned()), 7002)
        );
        // A host left to the client (NULL, empty, unknown): none; the node
        // id tells the primaries apart.
        let node = |host: Value, id: &str| {
            Value::Array(vec![
                Value::Int(0),
                Value::Int(16_383),
                Value::Array(vec![host, Value::Int(7000), Value::BulkString(id.into())]),
            ])
        };
        for host in [
            Value::Nil,
            Value::BulkString(b"".to_vec()),
            Value::BulkString(b"?".to_vec()),
        ] {
            let ranges = parse(&Value::Array(vec![node(host, "abc")])).unwrap();
            assert_eq!(ranges[0].primary.address, (None, 7000));
            assert_eq!(ranges[0].primary.id.as_deref(), Some("abc"));
        }
        assert!(ranges[0].contains(5_460) && !ranges[0].contains(5_461));
        for bad in [
            Value::Nil,
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![range(20_000, 20_001, 7000)]),
            Value::Array(vec![range(10, 5, 7000)]),
            Value::Array(vec![range(0, 5, 70_000)]),
            // A slot served twice (a lying node): a map of overlapping
            // ranges would make each failure's work grow with it.
            Value::Array(vec![range(0, 10_000, 7000), range(10_000, 16_383, 7002)]),
            Value::Array(vec![range(0, 16_383, 7000), range(0, 16_383, 7000)]),
            Value::Array(vec![range(0, 0, 7000); 16_385]),
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
    }
}
