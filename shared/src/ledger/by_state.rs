//! The `by-state-shard` index: jobs by state, oldest first, without a scan and without one hot
//! partition.
//!
//! Keyed on the state alone, every job in `Submitted` would share one index partition, and an
//! index partition takes about 1,000 writes a second: a busy stack would throttle its own state
//! changes. So the partition key is `state_shard` = `"<State>#<k>"`, `k` a stable hash of the
//! job id into [`STATE_SHARDS`] buckets, written with the state on every change; a query reads
//! every shard and merges them by `state_since`. A walk through a state keeps one position per
//! shard ([`StateCursor`]), so paging stays exact across shards.

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{attr, get_n, Item};
use super::{LedgerError, STATE_INDEX};
use crate::job::{JobId, JobState};

/// Partitions per state. Eight index partitions take ~8,000 state changes a second; a change
/// here needs a backfill of `state_shard` on every item.
pub const STATE_SHARDS: u32 = 8;

/// The index partition of a job in `state`.
pub fn state_shard(id: &JobId, state: JobState) -> String {
    shard_key(state, shard_of(id))
}

pub(super) fn shard_key(state: JobState, shard: u32) -> String {
    format!("{}#{shard}", state.as_str())
}

/// FNV-1a of the id: stable across builds and platforms (unlike `std`'s hasher).
fn shard_of(id: &JobId) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id.as_str().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % STATE_SHARDS
}

/// Where one shard's walk stands.
#[derive(Debug, Clone, PartialEq)]
enum Position {
    Start,
    After(Item),
    Done,
}

/// Where a walk through one state's jobs stands, shard by shard: pass it back to continue.
#[derive(Debug, Clone, PartialEq)]
pub struct StateCursor {
    shards: Vec<Position>,
}

impl Default for StateCursor {
    fn default() -> Self {
        StateCursor {
            shards: vec![Position::Start; STATE_SHARDS as usize],
        }
    }
}

impl StateCursor {
    fn finished(&self) -> bool {
        self.shards.iter().all(|p| *p == Position::Done)
    }
}

/// The index key of an item (table key plus index keys): where a shard's query resumes.
fn index_key(item: &Item) -> Item {
    [attr::JOB_ID, attr::STATE_SHARD, attr::STATE_SINCE]
        .into_iter()
        .filter_map(|k| item.get(k).map(|v| (k.to_owned(), v.clone())))
        .collect()
}

/// One page of one shard: its items and where the shard's query stopped.
pub(super) struct ShardPage {
    pub items: Vec<Item>,
    pub last_evaluated_key: Option<Item>,
}

/// Merges the shards' pages into the oldest `limit` items (newest with `newest_first`), and
/// moves each shard's position past what was taken from it.
fn merge(
    cursor: &StateCursor,
    pages: Vec<Option<ShardPage>>,
    limit: usize,
    newest_first: bool,
) -> Result<(Vec<Item>, StateCursor), LedgerError> {
    let mut all: Vec<(u64, String, usize, usize)> = Vec::new();
    for (shard, page) in pages.iter().enumerate() {
        if let Some(page) = page {
            for (i, item) in page.items.iter().enumerate() {
                let since = get_n(item, attr::STATE_SINCE)?;
                let id = item
                    .get(attr::JOB_ID)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                all.push((since, id, shard, i));
            }
        }
    }
    all.sort();
    if newest_first {
        all.reverse();
    }
    all.truncate(limit);
    // What a shard's position moves past is a prefix of its page: if DynamoDB ordered two
    // equal timestamps differently from this sort, only the prefix is returned now and the
    // rest comes next time — never skipped.
    let mut taken: Vec<std::collections::BTreeSet<usize>> = vec![Default::default(); pages.len()];
    for (_, _, shard, i) in &all {
        taken[*shard].insert(*i);
    }
    let taken_per_shard: Vec<usize> = taken
        .iter()
        .map(|set| (0..).take_while(|i| set.contains(i)).count())
        .collect();
    all.retain(|(_, _, shard, i)| *i < taken_per_shard[*shard]);
    let mut next = cursor.clone();
    for (shard, page) in pages.iter().enumerate() {
        let Some(page) = page else { continue };
        let taken = taken_per_shard[shard];
        next.shards[shard] = if taken == page.items.len() {
            // Everything this page held was taken: resume where DynamoDB stopped.
            match &page.last_evaluated_key {
                Some(key) => Position::After(key.clone()),
                None => Position::Done,
            }
        } else if taken == 0 {
            cursor.shards[shard].clone()
        } else {
            Position::After(index_key(&page.items[taken - 1]))
        };
    }
    let items = all
        .into_iter()
        .filter_map(|(_, _, shard, i)| pages[shard].as_ref().map(|p| p.items[i].clone()))
        .collect();
    Ok((items, next))
}

impl super::Ledger {
    /// One shard's query: `state` since before `before`, after `start`.
    async fn query_shard(
        &self,
        state: JobState,
        shard: u32,
        before: Option<u64>,
        limit: i32,
        start: Option<Item>,
        newest_first: bool,
    ) -> Result<ShardPage, LedgerError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.jobs)
            .index_name(STATE_INDEX)
            .expression_attribute_names("#s", attr::STATE_SHARD)
            .expression_attribute_values(":s", AttributeValue::S(shard_key(state, shard)))
            .scan_index_forward(!newest_first)
            .limit(limit)
            .set_exclusive_start_key(start);
        query = match before {
            Some(before) => query
                .key_condition_expression("#s = :s AND #t < :t")
                .expression_attribute_names("#t", attr::STATE_SINCE)
                .expression_attribute_values(":t", AttributeValue::N(before.to_string())),
            None => query.key_condition_expression("#s = :s"),
        };
        let out = query
            .send()
            .await
            .map_err(|e| LedgerError::dynamo("Query", &e))?;
        Ok(ShardPage {
            items: out.items().to_vec(),
            last_evaluated_key: out.last_evaluated_key().cloned(),
        })
    }

    /// Up to `limit` items in `state` across every shard, in `state_since` order, from
    /// `cursor`; the cursor to continue from, or `None` when every shard is read to its end.
    pub(super) async fn walk_state(
        &self,
        state: JobState,
        before: Option<u64>,
        limit: i32,
        cursor: Option<StateCursor>,
        newest_first: bool,
    ) -> Result<(Vec<Item>, Option<StateCursor>), LedgerError> {
        let mut cursor = cursor.unwrap_or_default();
        loop {
            let mut pages = Vec::with_capacity(STATE_SHARDS as usize);
            for (shard, position) in (0..STATE_SHARDS).zip(cursor.shards.iter()) {
                pages.push(match position {
                    Position::Done => None,
                    Position::Start => Some(
                        self.query_shard(state, shard, before, limit, None, newest_first)
                            .await?,
                    ),
                    Position::After(key) => Some(
                        self.query_shard(
                            state,
                            shard,
                            before,
                            limit,
                            Some(key.clone()),
                            newest_first,
                        )
                        .await?,
                    ),
                });
            }
            let (items, next) = merge(
                &cursor,
                pages,
                usize::try_from(limit).unwrap_or(0),
                newest_first,
            )?;
            let finished = next.finished();
            // An empty page with shards left (they only returned keys) reads on.
            if !items.is_empty() || finished || next == cursor {
                return Ok((items, (!finished).then_some(next)));
            }
            cursor = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::item::{n, s};
    use std::collections::HashMap;

    fn item(id: &str, since: u64) -> Item {
        HashMap::from([
            (attr::JOB_ID.to_owned(), s(id)),
            (attr::STATE_SINCE.to_owned(), n(since)),
            (attr::STATE_SHARD.to_owned(), s("Queued#0")),
        ])
    }

    fn ids(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| i[attr::JOB_ID].as_s().unwrap().clone())
            .collect()
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let mut seen = std::collections::BTreeMap::new();
        for i in 0..800 {
            let id = JobId::parse(&format!("doc-{:040x}", i * 7919)).unwrap();
            let shard = state_shard(&id, JobState::Queued);
            assert_eq!(shard, state_shard(&id, JobState::Queued));
            *seen.entry(shard).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), STATE_SHARDS as usize, "{seen:?}");
        assert!(seen.values().all(|&n| n > 50), "{seen:?}");
    }

    #[test]
    fn merge_takes_the_oldest_across_shards_and_resumes_each_shard_exactly() {
        let cursor = StateCursor::default();
        let mut pages: Vec<Option<ShardPage>> = (0..STATE_SHARDS).map(|_| None).collect();
        pages[0] = Some(ShardPage {
            items: vec![item("a", 1), item("c", 3), item("e", 5)],
            last_evaluated_key: Some(index_key(&item("e", 5))),
        });
        pages[1] = Some(ShardPage {
            items: vec![item("b", 2), item("d", 4)],
            last_evaluated_key: None,
        });
        let (items, next) = merge(&cursor, pages, 3, false).unwrap();
        assert_eq!(ids(&items), ["a", "b", "c"]);
        assert_eq!(next.shards[0], Position::After(index_key(&item("c", 3))));
        assert_eq!(next.shards[1], Position::After(index_key(&item("b", 2))));
        // Shards that returned nothing this time keep their position (here: Start).
        assert_eq!(next.shards[2], Position::Start);
    }

    #[test]
    fn a_shard_read_to_its_end_is_done() {
        let mut pages: Vec<Option<ShardPage>> = (0..STATE_SHARDS)
            .map(|_| {
                Some(ShardPage {
                    items: vec![],
                    last_evaluated_key: None,
                })
            })
            .collect();
        pages[3] = Some(ShardPage {
            items: vec![item("x", 9)],
            last_evaluated_key: None,
        });
        let (items, next) = merge(&StateCursor::default(), pages, 10, true).unwrap();
        assert_eq!(ids(&items), ["x"]);
        assert!(next.finished());
    }
}
