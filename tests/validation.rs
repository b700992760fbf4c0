//! Every limit of API.md's Limits table, at the limit and one past it,
//! through the public `validate()` methods. Errors must name the field.

use std::collections::BTreeMap;
use std::time::Duration;

use pulsedb::{
    CollectiveId, Config, ContextRequest, EmbeddingDimension, Error, ExperienceId, ExperienceType,
    ExperienceUpdate, InsightType, NewActivity, NewDerivedInsight, NewExperience,
    NewExperienceRelation, RecallWeights, RelationType, SearchFilter, ValidationError,
    MAX_ACTIVITY_TEXT_BYTES, MAX_CONTENT_BYTES, MAX_EMBEDDING_DIMENSION, MAX_METADATA_BYTES,
    MAX_RESULTS,
};
use serde_json::{json, Map, Value};

/// The field a validation error names (`content` for `ContentTooLarge`).
fn field(e: &ValidationError) -> String {
    match e {
        ValidationError::InvalidField { field, .. }
        | ValidationError::RequiredField { field }
        | ValidationError::TooManyItems { field, .. } => field.clone(),
        ValidationError::ContentTooLarge { .. } => "content".into(),
        other => panic!("no field in {other:?}"),
    }
}

fn fails_on(r: Result<(), ValidationError>, want: &str) {
    match r {
        Err(e) => assert_eq!(field(&e), want, "{e:?}"),
        Ok(()) => panic!("expected a violation of `{want}`"),
    }
}

/// `n` bytes of text, made of 2-byte characters where possible, so a
/// byte limit is not mistaken for a character limit.
fn bytes(n: usize) -> String {
    let mut s = "é".repeat(n / 2);
    if n % 2 == 1 {
        s.push('a');
    }
    assert_eq!(s.len(), n);
    s
}

fn exp() -> NewExperience {
    NewExperience {
        collective_id: CollectiveId::new(),
        content: "x".into(),
        ..NewExperience::default()
    }
}

/// Metadata whose compact JSON is exactly `n` bytes (`n` ≥ 16).
fn metadata_of_size(n: usize) -> Map<String, Value> {
    // {"k":"…"} is 8 bytes around the value.
    let m = json!({ "k": "v".repeat(n - 8) });
    let m = m.as_object().unwrap().clone();
    assert_eq!(serde_json::to_vec(&m).unwrap().len(), n);
    m
}

fn strings(n: usize, len: usize) -> Vec<String> {
    (0..n).map(|i| format!("{i:0>len$}")).collect()
}

// --- experiences ---------------------------------------------------------------

#[test]
fn default_experience_with_content_is_valid() {
    assert!(exp().validate().is_ok());
    let d = NewExperience::default();
    assert_eq!((d.importance, d.confidence), (0.5, 0.5));
    assert_eq!(d.source_agent, "anonymous");
}

#[test]
fn content_is_1_to_102400_bytes() {
    assert_eq!(MAX_CONTENT_BYTES, 102_400);
    let mut e = exp();
    e.content = bytes(1);
    assert!(e.validate().is_ok());
    e.content = bytes(MAX_CONTENT_BYTES);
    assert!(e.validate().is_ok());
    e.content = bytes(MAX_CONTENT_BYTES + 1);
    match e.validate().unwrap_err() {
        ValidationError::ContentTooLarge { size, max } => {
            assert_eq!((size, max), (MAX_CONTENT_BYTES + 1, MAX_CONTENT_BYTES))
        }
        other => panic!("{other:?}"),
    }
    e.content = String::new();
    fails_on(e.validate(), "content");
}

#[test]
fn scores_are_finite_in_unit_interval() {
    for (name, set) in [
        (
            "importance",
            (|e: &mut NewExperience, v| e.importance = v) as fn(&mut NewExperience, f32),
        ),
        ("confidence", |e: &mut NewExperience, v| e.confidence = v),
    ] {
        for ok in [0.0, 1.0, 0.5, -0.0] {
            let mut e = exp();
            set(&mut e, ok);
            assert!(e.validate().is_ok(), "{name} = {ok}");
        }
        for bad in [
            -f32::EPSILON,
            1.0 + f32::EPSILON,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ] {
            let mut e = exp();
            set(&mut e, bad);
            fails_on(e.validate(), name);
        }
    }
}

#[test]
fn type_payload_quality_and_strength_are_scores() {
    let success = |quality| ExperienceType::SuccessPattern {
        task_type: "t".into(),
        approach: "a".into(),
        quality,
    };
    let pref = |strength| ExperienceType::UserPreference {
        category: "c".into(),
        preference: "p".into(),
        strength,
    };
    for v in [0.0, 1.0] {
        let mut e = exp();
        e.experience_type = success(v);
        assert!(e.validate().is_ok());
        e.experience_type = pref(v);
        assert!(e.validate().is_ok());
    }
    for v in [1.0 + f32::EPSILON, -0.1, f32::NAN] {
        let mut e = exp();
        e.experience_type = success(v);
        let err = e.validate().unwrap_err();
        assert!(field(&err).contains("quality"), "{err:?}");
        e.experience_type = pref(v);
        let err = e.validate().unwrap_err();
        assert!(field(&err).contains("strength"), "{err:?}");
    }
}

#[test]
fn domain_is_at_most_50_items_of_1_to_100_bytes() {
    let mut e = exp();
    e.domain = strings(50, 100);
    assert!(e.validate().is_ok());
    e.domain = strings(51, 3);
    match e.validate().unwrap_err() {
        ValidationError::TooManyItems { field, count, max } => {
            assert_eq!((field.as_str(), count, max), ("domain", 51, 50))
        }
        other => panic!("{other:?}"),
    }
    e.domain = vec![bytes(100)];
    assert!(e.validate().is_ok());
    e.domain = vec![bytes(101)];
    fails_on(e.validate(), "domain");
    e.domain = vec![bytes(1)];
    assert!(e.validate().is_ok());
    e.domain = vec![String::new()];
    fails_on(e.validate(), "domain");
}

#[test]
fn tags_are_at_most_50_pairs_key_1_to_100_value_at_most_200() {
    let tags = |n: usize, klen: usize, vlen: usize| -> BTreeMap<String, String> {
        strings(n, klen)
            .into_iter()
            .map(|k| (k, bytes(vlen)))
            .collect()
    };
    let mut e = exp();
    e.tags = tags(50, 100, 200);
    assert!(e.validate().is_ok());
    e.tags = tags(51, 3, 0);
    fails_on(e.validate(), "tags");
    e.tags = tags(1, 1, 0);
    assert!(e.validate().is_ok(), "an empty value is allowed");
    e.tags = BTreeMap::from([(bytes(101), "v".to_string())]);
    assert!(field(&e.validate().unwrap_err()).starts_with("tags"));
    e.tags = BTreeMap::from([(String::new(), "v".to_string())]);
    assert!(field(&e.validate().unwrap_err()).starts_with("tags"));
    e.tags = BTreeMap::from([("k".to_string(), bytes(201))]);
    assert!(field(&e.validate().unwrap_err()).starts_with("tags"));
}

#[test]
fn related_files_are_at_most_100_items_of_at_most_500_bytes() {
    let mut e = exp();
    e.related_files = strings(100, 500);
    assert!(e.validate().is_ok());
    e.related_files = strings(101, 3);
    fails_on(e.validate(), "related_files");
    e.related_files = vec![bytes(501)];
    fails_on(e.validate(), "related_files");
}

#[test]
fn metadata_is_at_most_16384_bytes_of_compact_json() {
    let mut x = exp();
    x.metadata = metadata_of_size(MAX_METADATA_BYTES);
    assert!(x.validate().is_ok());
    x.metadata = metadata_of_size(MAX_METADATA_BYTES + 1);
    fails_on(x.validate(), "metadata");
    // Any JSON values, nested.
    x.metadata = json!({"n": 1, "f": 0.5, "s": "x", "b": true, "z": null, "a": [1, {"b": []}]})
        .as_object()
        .unwrap()
        .clone();
    assert!(x.validate().is_ok());
}

#[test]
fn source_agent_is_1_to_255_bytes_and_source_task_at_most_1024() {
    let mut e = exp();
    e.source_agent = bytes(255);
    assert!(e.validate().is_ok());
    e.source_agent = bytes(256);
    fails_on(e.validate(), "source_agent");
    e.source_agent = String::new();
    fails_on(e.validate(), "source_agent");
    e.source_agent = bytes(1);
    e.source_task = Some(bytes(1024));
    assert!(e.validate().is_ok());
    e.source_task = Some(bytes(1025));
    fails_on(e.validate(), "source_task");
}

#[test]
fn update_checks_only_what_it_sets_with_the_same_limits() {
    assert!(ExperienceUpdate::default().validate().is_ok());
    assert!(ExperienceUpdate::default().is_empty());
    let cases: Vec<(ExperienceUpdate, &str)> = vec![
        (
            ExperienceUpdate {
                importance: Some(1.5),
                ..Default::default()
            },
            "importance",
        ),
        (
            ExperienceUpdate {
                importance: Some(f32::NAN),
                ..Default::default()
            },
            "importance",
        ),
        (
            ExperienceUpdate {
                confidence: Some(-0.5),
                ..Default::default()
            },
            "confidence",
        ),
        (
            ExperienceUpdate {
                domain: Some(strings(51, 2)),
                ..Default::default()
            },
            "domain",
        ),
        (
            ExperienceUpdate {
                domain: Some(vec![bytes(101)]),
                ..Default::default()
            },
            "domain",
        ),
        (
            ExperienceUpdate {
                related_files: Some(strings(101, 2)),
                ..Default::default()
            },
            "related_files",
        ),
        (
            ExperienceUpdate {
                related_files: Some(vec![bytes(501)]),
                ..Default::default()
            },
            "related_files",
        ),
    ];
    for (u, want) in cases {
        assert!(!u.is_empty());
        fails_on(u.validate(), want);
    }
    let tags: BTreeMap<String, String> = strings(51, 2)
        .into_iter()
        .map(|k| (k, String::new()))
        .collect();
    fails_on(
        ExperienceUpdate {
            tags: Some(tags),
            ..Default::default()
        }
        .validate(),
        "tags",
    );
    let at_limits = ExperienceUpdate {
        importance: Some(1.0),
        confidence: Some(0.0),
        domain: Some(strings(50, 100)),
        tags: Some(
            strings(50, 100)
                .into_iter()
                .map(|k| (k, bytes(200)))
                .collect(),
        ),
        related_files: Some(strings(100, 500)),
        archived: Some(true),
        metadata: Some(metadata_of_size(MAX_METADATA_BYTES)),
    };
    assert!(at_limits.validate().is_ok());
    let over = ExperienceUpdate {
        metadata: Some(metadata_of_size(MAX_METADATA_BYTES + 1)),
        ..Default::default()
    };
    fails_on(over.validate(), "metadata");
}

// --- relations -----------------------------------------------------------------

fn rel() -> NewExperienceRelation {
    NewExperienceRelation {
        source_id: ExperienceId::new(),
        target_id: ExperienceId::new(),
        relation_type: RelationType::Supports,
        strength: 0.5,
        metadata: None,
    }
}

#[test]
fn relation_strength_metadata_and_self_links() {
    let mut r = rel();
    assert!(r.validate().is_ok());
    for ok in [0.0, 1.0] {
        r.strength = ok;
        assert!(r.validate().is_ok());
    }
    for bad in [1.0 + f32::EPSILON, -f32::EPSILON, f32::NAN, f32::INFINITY] {
        r.strength = bad;
        fails_on(r.validate(), "strength");
    }
    r.strength = 0.5;
    r.metadata = Some(bytes(10_240));
    assert!(r.validate().is_ok());
    r.metadata = Some(bytes(10_241));
    fails_on(r.validate(), "metadata");
    let mut selfish = rel();
    selfish.target_id = selfish.source_id;
    fails_on(selfish.validate(), "target_id");
}

// --- insights ------------------------------------------------------------------

fn ins() -> NewDerivedInsight {
    NewDerivedInsight {
        collective_id: CollectiveId::new(),
        content: "insight".into(),
        embedding: None,
        source_experience_ids: vec![ExperienceId::new()],
        insight_type: InsightType::Pattern,
        confidence: 0.5,
        domain: Vec::new(),
    }
}

#[test]
fn insight_content_is_1_to_51200_bytes_and_sources_1_to_100() {
    let mut i = ins();
    assert!(i.validate().is_ok());
    i.content = bytes(51_200);
    assert!(i.validate().is_ok());
    i.content = bytes(51_201);
    match i.validate().unwrap_err() {
        ValidationError::ContentTooLarge { size, max } => assert_eq!((size, max), (51_201, 51_200)),
        other => panic!("{other:?}"),
    }
    i.content = String::new();
    fails_on(i.validate(), "content");

    let mut i = ins();
    i.source_experience_ids = (0..100).map(|_| ExperienceId::new()).collect();
    assert!(i.validate().is_ok());
    i.source_experience_ids.push(ExperienceId::new());
    fails_on(i.validate(), "source_experience_ids");
    i.source_experience_ids.clear();
    fails_on(i.validate(), "source_experience_ids");

    let mut i = ins();
    i.confidence = 1.0 + f32::EPSILON;
    fails_on(i.validate(), "confidence");
    i.confidence = 1.0;
    i.domain = strings(50, 100);
    assert!(i.validate().is_ok());
    i.domain = strings(51, 1);
    fails_on(i.validate(), "domain");
    i.domain = vec![bytes(101)];
    fails_on(i.validate(), "domain");
}

// --- activities ----------------------------------------------------------------

#[test]
fn activity_agent_id_and_texts() {
    assert_eq!(MAX_ACTIVITY_TEXT_BYTES, 1024);
    let mut a = NewActivity {
        agent_id: bytes(255),
        collective_id: CollectiveId::new(),
        current_task: Some(bytes(1024)),
        context_summary: Some(bytes(1024)),
    };
    assert!(a.validate().is_ok());
    a.agent_id = bytes(256);
    fails_on(a.validate(), "agent_id");
    a.agent_id = String::new();
    fails_on(a.validate(), "agent_id");
    a.agent_id = "a".into();
    a.current_task = Some(bytes(1025));
    fails_on(a.validate(), "current_task");
    a.current_task = None;
    a.context_summary = Some(bytes(1025));
    fails_on(a.validate(), "context_summary");
}

// --- search --------------------------------------------------------------------

#[test]
fn filter_thresholds_must_be_finite() {
    assert!(SearchFilter::default().validate().is_ok());
    assert!(SearchFilter::default().exclude_archived);
    let ok = SearchFilter {
        min_importance: Some(0.0),
        min_confidence: Some(1.0),
        ..Default::default()
    };
    assert!(ok.validate().is_ok());
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let f = SearchFilter {
            min_importance: Some(bad),
            ..Default::default()
        };
        assert!(field(&f.validate().unwrap_err()).contains("min_importance"));
        let f = SearchFilter {
            min_confidence: Some(bad),
            ..Default::default()
        };
        assert!(field(&f.validate().unwrap_err()).contains("min_confidence"));
    }
}

#[test]
fn recall_weights_are_finite_non_negative_and_sum_to_one() {
    let w = |similarity, energy| RecallWeights { similarity, energy };
    for ok in [
        w(1.0, 0.0),
        w(0.0, 1.0),
        w(0.7, 0.3),
        w(0.5, 0.5 + 0.9e-4),
        w(0.5, 0.5 - 0.9e-4),
    ] {
        assert!(ok.validate("weights").is_ok(), "{ok:?}");
    }
    for bad in [
        w(0.5, 0.5 + 2e-4),
        w(0.5, 0.5 - 2e-4),
        w(1.5, -0.5),
        w(-0.0001, 1.0001),
        w(f32::NAN, 1.0),
        w(f32::INFINITY, 0.0),
        w(0.0, 0.0),
    ] {
        fails_on(bad.validate("weights"), "weights");
    }
}

#[test]
fn context_limits_are_1_to_1000() {
    assert_eq!(MAX_RESULTS, 1000);
    let base = ContextRequest::default();
    assert!(base.validate().is_ok());
    for (n, ok) in [
        (1, true),
        (MAX_RESULTS, true),
        (0, false),
        (MAX_RESULTS + 1, false),
    ] {
        let r = ContextRequest {
            max_similar: n,
            ..base.clone()
        };
        match ok {
            true => assert!(r.validate().is_ok()),
            false => fails_on(r.validate(), "max_similar"),
        }
        let r = ContextRequest {
            max_recent: n,
            ..base.clone()
        };
        match ok {
            true => assert!(r.validate().is_ok()),
            false => fails_on(r.validate(), "max_recent"),
        }
    }
    let r = ContextRequest {
        recall_weights: Some(RecallWeights {
            similarity: 0.9,
            energy: 0.9,
        }),
        ..base.clone()
    };
    fails_on(r.validate(), "recall_weights");
    let r = ContextRequest {
        filter: SearchFilter {
            min_importance: Some(f32::NAN),
            ..Default::default()
        },
        ..base
    };
    assert!(field(&r.validate().unwrap_err()).contains("min_importance"));
}

// --- config --------------------------------------------------------------------

fn config_field(c: Config) -> String {
    match c.validate() {
        Err(Error::Validation(v)) => field(&v),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn config_defaults_are_valid_and_documented() {
    let c = Config::default();
    assert!(c.validate().is_ok());
    assert_eq!(c.embedding_dimension.size(), 384);
    assert_eq!(c.max_in_flight, 1024);
    assert_eq!(c.activity.stale_threshold, Duration::from_secs(300));
    assert_eq!(c.watch.buffer_size, 1024);
    assert_eq!(c.decay.half_life, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(c.decay.freq_weight, 0.25);
    assert_eq!(EmbeddingDimension::D768.size(), 768);
}

#[test]
fn config_limits_name_the_field() {
    let d = Config::default;
    assert_eq!(MAX_EMBEDDING_DIMENSION, 4096);
    for ok in [1, 4096] {
        let c = Config {
            embedding_dimension: EmbeddingDimension::Custom(ok),
            ..d()
        };
        assert!(c.validate().is_ok(), "dimension {ok}");
    }
    for bad in [0, 4097] {
        let c = Config {
            embedding_dimension: EmbeddingDimension::Custom(bad),
            ..d()
        };
        assert_eq!(config_field(c), "embedding_dimension");
    }
    assert!(Config {
        max_in_flight: 1,
        ..d()
    }
    .validate()
    .is_ok());
    assert_eq!(
        config_field(Config {
            max_in_flight: 0,
            ..d()
        }),
        "max_in_flight"
    );
    assert_eq!(
        config_field(Config {
            max_batch_ops: 0,
            ..d()
        }),
        "max_batch_ops"
    );
    let mut c = d();
    c.watch.buffer_size = 0;
    assert_eq!(config_field(c), "watch.buffer_size");
    let mut c = d();
    c.activity.stale_threshold = Duration::ZERO;
    assert_eq!(config_field(c), "activity.stale_threshold");
    let mut c = d();
    c.decay.half_life = Duration::ZERO;
    assert_eq!(config_field(c), "decay.half_life");
    assert_eq!(
        config_field(Config {
            eventual_flush_interval: Duration::ZERO,
            ..d()
        }),
        "eventual_flush_interval"
    );
    for bad in [-0.1, f32::NAN, f32::INFINITY] {
        let mut c = d();
        c.decay.freq_weight = bad;
        assert_eq!(config_field(c), "decay.freq_weight");
    }
    let mut c = d();
    c.decay.freq_weight = 0.0;
    assert!(c.validate().is_ok());
    let mut c = d();
    c.decay.default_recall_weights = Some(RecallWeights {
        similarity: 0.2,
        energy: 0.2,
    });
    assert_eq!(config_field(c), "decay.default_recall_weights");
    let mut c = d();
    c.decay.default_recall_weights = Some(RecallWeights {
        similarity: 0.2,
        energy: 0.8,
    });
    assert!(c.validate().is_ok());

    // Index settings.
    for (m, ok) in [(2, true), (256, true), (1, false), (257, false)] {
        let mut c = d();
        c.index.hnsw_m = m;
        assert_eq!(c.validate().is_ok(), ok, "hnsw_m {m}");
        if !ok {
            assert_eq!(config_field(c), "index.hnsw_m");
        }
    }
    for (v, ok) in [(1, true), (4096, true), (0, false), (4097, false)] {
        let mut c = d();
        c.index.ef_construction = v;
        assert_eq!(c.validate().is_ok(), ok);
        if !ok {
            assert_eq!(config_field(c), "index.ef_construction");
        }
        let mut c = d();
        c.index.ef_search = v;
        assert_eq!(c.validate().is_ok(), ok);
        if !ok {
            assert_eq!(config_field(c), "index.ef_search");
        }
    }
    for (v, ok) in [
        (0.0, true),
        (1.0, true),
        (-0.01, false),
        (1.01, false),
        (f32::NAN, false),
    ] {
        let mut c = d();
        c.index.tombstone_ratio = v;
        assert_eq!(c.validate().is_ok(), ok);
        if !ok {
            assert_eq!(config_field(c), "index.tombstone_ratio");
        }
        let mut c = d();
        c.index.exact_scan_selectivity = v;
        assert_eq!(c.validate().is_ok(), ok);
        if !ok {
            assert_eq!(config_field(c), "index.exact_scan_selectivity");
        }
    }
}
