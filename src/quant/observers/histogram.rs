//! The histogram of the second pass: uniform bins laid out exactly like
//! float32 `numpy.histogram` (see the parent module's docs).

/// Uniform bins over `[first, last]`, laid out exactly like float32 `numpy.histogram`.
#[derive(Debug, Clone)]
pub(super) struct Histogram {
    pub(super) first: f32,
    pub(super) last: f32,
    /// `bins + 1` edges; bin `i` is `[edges[i], edges[i + 1])`, the last one closed.
    pub(super) edges: Vec<f32>,
    pub(super) counts: Vec<u64>,
    pub(super) seen: u64,
}

impl Histogram {
    /// `numpy.histogram(a, bins, range=(-t, t))` with float32 `a` and `t`.
    pub(super) fn symmetric(t: f32, bins: usize) -> Self {
        let (mut first, mut last) = (-t, t);
        if first == last {
            first -= 0.5;
            last += 0.5;
        }
        // NumPy 2 `linspace(first, last, bins + 1)`, all in f32.
        let delta = last - first;
        let div = bins as f32;
        let step = delta / div;
        let mut edges: Vec<f32> = (0..=bins)
            .map(|k| {
                let k = k as f32;
                let y = if step == 0.0 { k / div * delta } else { k * step };
                y + first
            })
            .collect();
        edges[bins] = last;
        Histogram { first, last, edges, counts: vec![0; bins], seen: 0 }
    }

    /// NumPy's bin index: scaled estimate, then one correction step either way.
    pub(super) fn index(&self, x: f32) -> usize {
        let n = self.counts.len();
        let f = (x - self.first) / (self.last - self.first) * n as f32;
        let mut i = (f as usize).min(n - 1);
        if i > 0 && x < self.edges[i] {
            i -= 1;
        }
        if i != n - 1 && x >= self.edges[i + 1] {
            i += 1;
        }
        i
    }
}
