//! Choosing a deployment for one attempt: the strategy over the eligible candidates.

use super::*;

/// The outcome of choosing a deployment for one attempt.
pub(super) enum Pick {
    /// Deployment index; whether this request already tried it.
    Chosen(usize, bool),
    /// No deployment passes the residency filter.
    NoneCompliant,
    /// Compliant deployments exist but every circuit is open.
    AllOpen,
}

/// A set of deployment indices; no allocation up to 128 deployments.
pub(super) enum Bits {
    Inline([u64; 2]),
    Heap(Vec<u64>),
}

impl Bits {
    pub(super) fn new(n: usize) -> Self {
        if n <= 128 {
            Self::Inline([0; 2])
        } else {
            Self::Heap(vec![0; n.div_ceil(64)])
        }
    }

    pub(super) fn words(&self) -> &[u64] {
        match self {
            Self::Inline(w) => w,
            Self::Heap(w) => w,
        }
    }

    pub(super) fn set(&mut self, i: usize) {
        let w = match self {
            Self::Inline(w) => &mut w[..],
            Self::Heap(w) => &mut w[..],
        };
        w[i / 64] |= 1 << (i % 64);
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words().iter().enumerate().flat_map(|(wi, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(wi * 64 + b)
            })
        })
    }
}

/// The strategy's choice among a set of candidates, accumulated in one pass (weighted
/// selection draws one random number afterwards, over the recorded set).
pub(super) struct Best {
    pub(super) strategy: Strategy,
    pub(super) members: Bits,
    pub(super) chosen: Option<usize>,
    pub(super) total_weight: u64,
    pub(super) zero_weight: u32,
    pub(super) score: f64,
}

impl Best {
    pub(super) fn new(strategy: Strategy, n: usize) -> Self {
        Self {
            strategy,
            members: Bits::new(if strategy == Strategy::Weighted { n } else { 0 }),
            chosen: None,
            total_weight: 0,
            zero_weight: 0,
            score: f64::INFINITY,
        }
    }

    pub(super) fn offer(&mut self, i: usize, d: &Deployment) {
        let score = match self.strategy {
            Strategy::Ordered => {
                if self.chosen.is_none() {
                    self.chosen = Some(i);
                }
                return;
            }
            Strategy::Weighted => {
                self.members.set(i);
                match d.weight {
                    0 => self.zero_weight += 1,
                    w => self.total_weight += u64::from(w),
                }
                return;
            }
            Strategy::LeastLatency => f64::from_bits(d.state.ewma_us.load(Ordering::Relaxed)),
            Strategy::LeastBusy => f64::from(d.state.in_flight.load(Ordering::Relaxed)),
        };
        if score < self.score {
            self.score = score;
            self.chosen = Some(i);
        }
    }

    pub(super) fn finish(&self, deployments: &[Deployment]) -> Option<usize> {
        if self.strategy != Strategy::Weighted {
            return self.chosen;
        }
        if self.total_weight > 0 {
            let mut r = fastrand::u64(0..self.total_weight);
            for i in self.members.iter() {
                let w = u64::from(deployments[i].weight);
                if r < w {
                    return Some(i);
                }
                r -= w;
            }
            None
        } else if self.zero_weight > 0 {
            // Only standby (weight 0) deployments are left: uniformly among them.
            let k = fastrand::u32(0..self.zero_weight) as usize;
            self.members.iter().nth(k)
        } else {
            None
        }
    }
}

impl Inner {
    pub(super) fn now_ms(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.epoch)
            .as_millis() as u64
            + 1
    }

    pub(super) fn resolve(&self, model: &str) -> Result<usize, Error> {
        let target = self.aliases.get(model).map_or(model, String::as_str);
        self.by_name.get(target).copied().ok_or_else(|| {
            let mut known: Vec<&str> = self
                .by_name
                .keys()
                .chain(self.aliases.keys())
                .map(String::as_str)
                .collect();
            known.sort_unstable();
            Error::invalid_request(format!(
                "router `{}`: unknown model or alias `{model}` (known: {})",
                self.name,
                known.join(", ")
            ))
            .with_code("model_not_found")
        })
    }

    pub(super) fn select(
        &self,
        g: &Group,
        req: &ChatRequest,
        tried: &[(usize, usize)],
        gi: usize,
    ) -> Pick {
        let now_ms = self.now_ms();
        let n = g.deployments.len();
        let mut fresh = Best::new(self.strategy, n);
        let mut again = Best::new(self.strategy, n);
        let mut compliant = false;
        for (i, d) in g.deployments.iter().enumerate() {
            // The residency label (set by a residency policy) binds every attempt, whatever
            // the router's own configured filter says.
            if !aegis_contracts::residency_allows(&req.ctx.labels, d.region()) {
                continue;
            }
            if let Some(f) = &self.filter
                && !f(d, req)
            {
                continue;
            }
            compliant = true;
            if let Health::Open = d.state.health(now_ms) {
                continue;
            }
            if tried.contains(&(gi, i)) {
                again.offer(i, d);
            } else {
                fresh.offer(i, d);
            }
        }
        match (fresh.finish(&g.deployments), again.finish(&g.deployments)) {
            (Some(i), _) => Pick::Chosen(i, false),
            (None, Some(i)) => Pick::Chosen(i, true),
            (None, None) if compliant => Pick::AllOpen,
            (None, None) => Pick::NoneCompliant,
        }
    }

    pub(super) fn remaining(&self, deadline: Option<Instant>) -> Option<Duration> {
        deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub(super) fn attempt_deadline(&self, deadline: Option<Instant>) -> Option<Duration> {
        match (self.attempt_timeout, self.remaining(deadline)) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }
}
