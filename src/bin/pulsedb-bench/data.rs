//! The workload's data, deterministic from the seed: clustered unit vectors,
//! ~200-byte contents with a topic tag and a domain, and the exact top-k
//! they are judged against.

use std::collections::BTreeMap;

use pulsedb::{ExperienceId, NewExperience};

/// splitmix64 with Box–Muller gaussians: deterministic from the seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub(crate) fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    pub(crate) fn gaussian(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

pub(crate) struct Data {
    centres: Vec<Vec<f32>>,
    sigma: f64,
    dim: usize,
}

impl Data {
    pub(crate) fn new(dim: usize, rng: &mut Rng) -> Data {
        let centres = (0..100)
            .map(|_| {
                let mut c: Vec<f32> = (0..dim).map(|_| rng.gaussian() as f32).collect();
                normalize(&mut c);
                c
            })
            .collect();
        Data {
            centres,
            sigma: 0.03 * (384.0 / dim as f64).sqrt(),
            dim,
        }
    }

    pub(crate) fn vector(&self, rng: &mut Rng) -> Vec<f32> {
        let c = &self.centres[rng.below(self.centres.len())];
        let mut v: Vec<f32> = (0..self.dim)
            .map(|i| c[i] + (self.sigma * rng.gaussian()) as f32)
            .collect();
        normalize(&mut v);
        v
    }
}

pub(crate) const TOPICS: usize = 10;
pub(crate) const DOMAINS: [&str; 5] = ["build", "testing", "deploy", "database", "network"];

/// One generated experience and what the harness remembers of it.
pub(crate) struct Item {
    pub(crate) new: NewExperience,
    pub(crate) topic: usize,
}

pub(crate) fn item(
    data: &Data,
    rng: &mut Rng,
    collective: pulsedb::CollectiveId,
    i: usize,
) -> Item {
    let topic = rng.below(TOPICS);
    let domain = DOMAINS[rng.below(DOMAINS.len())];
    let embedding = data.vector(rng);
    let mut content = format!(
        "Experience {i}: while working on {domain} the agent found that topic-{topic} needs care; "
    );
    while content.len() < 200 {
        content.push_str("retry with backoff and check the logs. ");
    }
    content.truncate(200);
    Item {
        new: NewExperience {
            collective_id: collective,
            content,
            embedding: Some(embedding),
            importance: rng.unit() as f32,
            domain: vec![domain.to_string()],
            tags: BTreeMap::from([("topic".to_string(), format!("t{topic}"))]),
            source_agent: format!("agent-{}", i % 64),
            ..NewExperience::default()
        },
        topic,
    }
}

pub(crate) fn exact_top_k(
    stored: &[(ExperienceId, Vec<f32>, usize)],
    q: &[f32],
    k: usize,
    topic: Option<usize>,
) -> Vec<ExperienceId> {
    let mut scored: Vec<(f32, ExperienceId)> = stored
        .iter()
        .filter(|(_, _, t)| topic.is_none_or(|want| *t == want))
        .map(|(id, v, _)| (v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), *id))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

pub(crate) fn recall(found: &[ExperienceId], truth: &[ExperienceId]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let hits = found.iter().filter(|id| truth.contains(id)).count();
    hits as f64 / truth.len() as f64
}
