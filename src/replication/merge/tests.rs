use proptest::prelude::*;

use super::*;
use crate::replication::hlc::Hlc;

fn origin(n: u8) -> InstanceId {
    InstanceId::from_bytes([n; 16])
}

fn v(millis: u64, o: u8) -> Version {
    Version {
        hlc: Hlc { millis, counter: 0 },
        origin: origin(o),
    }
}

fn cid(n: u8) -> CollectiveId {
    CollectiveId::from_bytes([n; 16])
}

fn xid(n: u8) -> ExperienceId {
    ExperienceId::from_bytes([n; 16])
}

fn rid(n: u8) -> RelationId {
    RelationId::from_bytes([n; 16])
}

fn iid(n: u8) -> InsightId {
    InsightId::from_bytes([n; 16])
}

fn collective(n: u8, version: Version) -> Change<u32> {
    Change::Collective {
        id: cid(n),
        name: format!("c{}", n % 2),
        version,
        state: 0,
    }
}

fn experience(n: u8, c: u8, version: Version, state: u32) -> Change<u32> {
    Change::Experience {
        id: xid(n),
        collective: cid(c),
        version,
        state,
    }
}

fn relation(n: u8, source: u8, target: u8, version: Version) -> Change<u32> {
    Change::Relation {
        id: rid(n),
        collective: cid(1),
        source: xid(source),
        target: xid(target),
        relation_type: RelationType::Supports,
        version,
        state: 0,
    }
}

fn insight(n: u8, sources: &[u8], version: Version) -> Change<u32> {
    Change::Insight {
        id: iid(n),
        collective: cid(1),
        sources: sources.iter().map(|s| xid(*s)).collect(),
        version,
        state: 0,
    }
}

fn x_deleted(n: u8, version: Version) -> Change<u32> {
    Change::ExperienceDeleted {
        id: xid(n),
        collective: home(n),
        version,
    }
}

/// The collective of experience `n` (ids never move): 0..6 in collective 1,
/// the rest in collective 2.
fn home(n: u8) -> CollectiveId {
    cid(if n < 6 { 1 } else { 2 })
}

fn replica(changes: &[Change<u32>]) -> Replica<u32> {
    let mut r = Replica::new();
    for c in changes {
        r.apply(c.clone());
    }
    r
}

#[test]
fn the_newest_version_wins_and_older_ones_change_nothing() {
    let mut r = replica(&[collective(1, v(1, 1)), experience(5, 1, v(10, 1), 100)]);
    assert!(!r.apply(experience(5, 1, v(9, 2), 90)), "older");
    assert!(!r.apply(experience(5, 1, v(10, 1), 100)), "the same again");
    assert!(
        r.apply(experience(5, 1, v(10, 2), 102)),
        "same reading, greater origin"
    );
    assert_eq!(r.view().experiences[&xid(5)].1.state, 102);
}

#[test]
fn deletes_are_final_whatever_the_version_of_a_racing_update() {
    let mut r = replica(&[collective(1, v(1, 1)), experience(5, 1, v(10, 1), 1)]);
    assert!(r.apply(x_deleted(5, v(11, 2))));
    assert!(
        !r.apply(experience(5, 1, v(99, 1), 2)),
        "a later update stays dead"
    );
    assert!(!r.apply(Change::Reinforced {
        id: xid(5),
        collective: cid(1),
        origin: origin(1),
        count: 3
    }));
    assert!(r.view().experiences.is_empty());
    // The update first, then the delete: the same end.
    let other = replica(&[
        collective(1, v(1, 1)),
        experience(5, 1, v(10, 1), 1),
        experience(5, 1, v(99, 1), 2),
        x_deleted(5, v(11, 2)),
    ]);
    assert_eq!(other, r);
}

#[test]
fn reinforcements_merge_per_instance_and_add_up() {
    let mut r = replica(&[collective(1, v(1, 1)), experience(5, 1, v(2, 1), 0)]);
    let count = |o, n| Change::Reinforced {
        id: xid(5),
        collective: cid(1),
        origin: origin(o),
        count: n,
    };
    assert!(r.apply(count(1, 2)));
    assert!(r.apply(count(2, 3)));
    assert!(
        !r.apply(count(1, 1)),
        "a smaller count of the same instance"
    );
    let before = r.clone();
    assert!(!r.apply(count(3, 0)), "a zero count adds nothing");
    assert_eq!(r, before);
    // An update of the record keeps the counters.
    assert!(r.apply(experience(5, 1, v(3, 2), 7)));
    assert_eq!(r.view().experiences[&xid(5)].2, 5);
}

#[test]
fn relations_wait_for_both_ends_go_with_either_and_collapse_to_the_smallest_id() {
    let mut r = replica(&[collective(1, v(1, 1)), experience(5, 1, v(2, 1), 0)]);
    r.apply(relation(9, 5, 6, v(3, 1)));
    assert!(
        r.view().relations.is_empty(),
        "held back: 6 has not arrived"
    );
    r.apply(experience(6, 1, v(4, 2), 0));
    assert_eq!(r.view().relations.len(), 1);
    // The same (source, target, type) created concurrently elsewhere.
    r.apply(relation(3, 5, 6, v(3, 2)));
    let shown: Vec<RelationId> = r.view().relations.keys().copied().collect();
    assert_eq!(shown, vec![rid(3)]);
    r.apply(x_deleted(6, v(5, 1)));
    assert!(r.view().relations.is_empty());
    assert!(
        !r.apply(relation(4, 5, 6, v(6, 1))),
        "an end is gone: dropped"
    );
}

#[test]
fn insights_wait_for_their_sources_and_outlive_them() {
    let mut r = replica(&[collective(1, v(1, 1)), experience(5, 1, v(2, 1), 0)]);
    r.apply(insight(1, &[5, 6], v(3, 1)));
    assert!(r.view().insights.is_empty(), "held back: 6 unknown");
    // Known as deleted is known: the insight shows, as on one node.
    r.apply(x_deleted(6, v(4, 2)));
    assert_eq!(r.view().insights.len(), 1);
    r.apply(x_deleted(5, v(5, 2)));
    assert_eq!(r.view().insights.len(), 1);
}

#[test]
fn a_deleted_collective_takes_everything_and_refuses_later_changes() {
    let mut r = replica(&[
        collective(1, v(1, 1)),
        experience(5, 1, v(2, 1), 0),
        relation(9, 5, 5, v(3, 1)),
        insight(1, &[5], v(3, 1)),
        Change::Activity {
            agent: "a".into(),
            collective: cid(1),
            version: v(3, 1),
            state: Some(1),
        },
    ]);
    assert!(r.apply(Change::CollectiveDeleted {
        id: cid(1),
        version: v(4, 2)
    }));
    assert!(!r.apply(experience(6, 1, v(9, 1), 0)));
    assert!(!r.apply(collective(1, v(9, 1))));
    let view = r.view();
    assert!(view.collectives.is_empty() && view.experiences.is_empty());
    assert!(view.relations.is_empty() && view.insights.is_empty() && view.activities.is_empty());
}

#[test]
fn a_name_resolves_to_the_oldest_collective_bearing_it() {
    let r = replica(&[
        collective(7, v(2, 2)),
        collective(3, v(1, 1)),
        collective(5, v(1, 1)),
    ]);
    // c3, c5 and c7 are named "c1", "c1", "c1" (odd ids).
    assert_eq!(r.resolve("c1"), Some(cid(3)));
    assert_eq!(r.resolve("nope"), None);
}

/// The ends of relation `n` (an entity never changes what it links):
/// relations 0 and 1 share theirs, as concurrent duplicates do; 3 links
/// an experience to itself.
const ENDS: [(u8, u8); 6] = [(0, 1), (0, 1), (1, 2), (3, 3), (4, 5), (2, 0)];
/// The sources of insight `n`.
const SOURCES: [&[u8]; 3] = [&[0], &[1, 2], &[3, 4, 5]];

/// One write of a simulated node.
#[derive(Debug, Clone)]
enum Op {
    Collective(u8),
    DeleteCollective(u8),
    Experience(u8, u32),
    DeleteExperience(u8),
    Reinforce(u8),
    Relation(u8),
    DeleteRelation(u8),
    Insight(u8),
    DeleteInsight(u8),
    Activity(u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    // Relations and insights link experiences 0..6 of collective 1.
    let any_x = 0u8..8;
    prop_oneof![
        3 => (1u8..3).prop_map(Op::Collective),
        1 => (1u8..3).prop_map(Op::DeleteCollective),
        6 => (any_x.clone(), any::<u32>()).prop_map(|(n, s)| Op::Experience(n, s)),
        2 => any_x.clone().prop_map(Op::DeleteExperience),
        3 => any_x.prop_map(Op::Reinforce),
        3 => (0u8..6).prop_map(Op::Relation),
        1 => (0u8..6).prop_map(Op::DeleteRelation),
        2 => (0u8..3).prop_map(Op::Insight),
        1 => (0u8..3).prop_map(Op::DeleteInsight),
        2 => (0u8..2, any::<bool>()).prop_map(|(a, on)| Op::Activity(a, on)),
    ]
}

/// The changes three nodes emit for their writes: each node's own clock,
/// its own reinforcement counters.
fn emitted(writes: &[(u8, Op)]) -> Vec<Change<u32>> {
    let mut clocks = [0u64; 3];
    let mut counts: BTreeMap<(u8, u8), u64> = BTreeMap::new();
    let mut out = Vec::new();
    for (node, op) in writes {
        let n = *node as usize;
        clocks[n] += 1;
        let version = Version {
            hlc: Hlc {
                millis: clocks[n],
                counter: 0,
            },
            origin: origin(*node),
        };
        let c = cid(1);
        out.push(match op.clone() {
            Op::Collective(id) => collective(id, version),
            Op::DeleteCollective(id) => Change::CollectiveDeleted {
                id: cid(id),
                version,
            },
            Op::Experience(id, state) => Change::Experience {
                id: xid(id),
                collective: home(id),
                version,
                state,
            },
            Op::DeleteExperience(id) => x_deleted(id, version),
            Op::Reinforce(id) => {
                let count = counts.entry((*node, id)).or_default();
                *count += 1;
                Change::Reinforced {
                    id: xid(id),
                    collective: home(id),
                    origin: origin(*node),
                    count: *count,
                }
            }
            Op::Relation(id) => {
                let (s, t) = ENDS[id as usize];
                relation(id, s, t, version)
            }
            Op::DeleteRelation(id) => Change::RelationDeleted {
                id: rid(id),
                collective: c,
                version,
            },
            Op::Insight(id) => insight(id, SOURCES[id as usize], version),
            Op::DeleteInsight(id) => Change::InsightDeleted {
                id: iid(id),
                collective: c,
                version,
            },
            Op::Activity(agent, on) => Change::Activity {
                agent: format!("agent{agent}"),
                collective: c,
                version,
                state: on.then_some(clocks[n] as u32),
            },
        });
    }
    out
}

fn scenario() -> impl Strategy<Value = (Vec<Change<u32>>, Vec<Change<u32>>)> {
    proptest::collection::vec((0u8..3, op()), 1..60).prop_flat_map(|writes| {
        let changes = emitted(&writes);
        let n = changes.len();
        let dupes = proptest::collection::vec(0..n, 0..n);
        (Just(changes.clone()), Just(changes), dupes).prop_flat_map(|(ordered, all, dupes)| {
            let mut mixed = all;
            mixed.extend(dupes.iter().map(|i| ordered[*i].clone()));
            (Just(ordered), Just(mixed).prop_shuffle())
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any order, with duplicates, ends in the same state and view.
    #[test]
    fn any_order_with_duplicates_converges((ordered, shuffled) in scenario()) {
        let a = replica(&ordered);
        let b = replica(&shuffled);
        prop_assert_eq!(a.view(), b.view());
        prop_assert_eq!(&a, &b);
    }

    /// Once everything is applied, nothing changes any more: echoes end.
    #[test]
    fn applying_again_changes_nothing((ordered, shuffled) in scenario()) {
        let mut r = replica(&ordered);
        for c in shuffled {
            prop_assert!(!r.apply(c.clone()), "{:?} changed an up-to-date replica", c);
        }
    }

    /// `apply` says whether the state changed, exactly.
    #[test]
    fn apply_answers_whether_the_state_changed((_ordered, shuffled) in scenario()) {
        let mut r = Replica::new();
        for c in shuffled {
            let before = r.clone();
            let changed = r.apply(c.clone());
            prop_assert_eq!(changed, r != before, "{:?}", c);
        }
    }
}
