//! RFC 2782 ordering: lowest priority first, then weighted random selection within a
//! priority. The random source is a trait so tests can script the draws (T-SRV-08..10).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// A source of uniform integers. Load balancing, not cryptography.
pub trait Draw {
    /// A uniform integer in `0..=max`.
    fn draw(&mut self, max: u32) -> u32;
}

/// SplitMix64: small, fast, and reproducible from a seed.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn from_seed(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// Seeded from the process's random hash keys (no extra dependency needed).
    pub fn from_entropy() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x6d61_696c_7372_7600);
        SplitMix(h.finish())
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Draw for SplitMix {
    fn draw(&mut self, max: u32) -> u32 {
        // The sum of 65536 weights of 65535 fits in 32 bits; modulo bias is negligible here.
        (self.next_u64() % (u64::from(max) + 1)) as u32
    }
}

/// Orders `items` as RFC 2782 says: ascending priority; within one priority, repeatedly pick
/// with probability proportional to weight. Weight-0 items go first in the arrangement in a
/// random order, so they are chosen only on a draw of 0 and all-zero sets are shuffled (T-SRV-12).
pub fn rfc2782_order<T>(
    mut items: Vec<T>,
    priority: impl Fn(&T) -> u16,
    weight: impl Fn(&T) -> u16,
    rng: &mut impl Draw,
) -> Vec<T> {
    items.sort_by_key(|t| priority(t)); // stable: keeps the given order inside a priority
    let mut out = Vec::with_capacity(items.len());
    let mut rest = items.into_iter().peekable();
    while let Some(first) = rest.next() {
        let p = priority(&first);
        let mut level = vec![first];
        while let Some(next) = rest.next_if(|t| priority(t) == p) {
            level.push(next);
        }
        order_level(level, &weight, rng, &mut out);
    }
    out
}

fn order_level<T>(
    level: Vec<T>,
    weight: &impl Fn(&T) -> u16,
    rng: &mut impl Draw,
    out: &mut Vec<T>,
) {
    let (mut zero, nonzero): (Vec<T>, Vec<T>) = level.into_iter().partition(|t| weight(t) == 0);
    shuffle(&mut zero, rng);
    let mut left: Vec<T> = zero.into_iter().chain(nonzero).collect();
    while !left.is_empty() {
        let sum: u32 = left.iter().map(|t| u32::from(weight(t))).sum();
        // A draw of 0 selects the first weight-0 item. With none left, 0 would only add to
        // the first item's share, so draw from 1 and keep shares proportional (T-SRV-11).
        let low = u32::from(left.iter().all(|t| weight(t) > 0));
        let pick = low + rng.draw(sum - low);
        let mut running = 0u32;
        let idx = left
            .iter()
            .position(|t| {
                running += u32::from(weight(t));
                running >= pick
            })
            .unwrap_or(0); // unreachable: the last running sum equals `sum` >= pick
        out.push(left.remove(idx));
    }
}

/// Fisher-Yates.
fn shuffle<T>(v: &mut [T], rng: &mut impl Draw) {
    for i in (1..v.len()).rev() {
        let j = rng.draw(i as u32) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays back fixed draws (T-SRV-08..10 give the drawn integers).
    struct Script(Vec<u32>);
    impl Draw for Script {
        fn draw(&mut self, max: u32) -> u32 {
            let v = self.0.remove(0);
            assert!(v <= max, "scripted draw {v} > {max}");
            v
        }
    }

    fn order(items: &[(&'static str, u16, u16)], rng: &mut impl Draw) -> Vec<&'static str> {
        rfc2782_order(items.to_vec(), |t| t.1, |t| t.2, rng)
            .into_iter()
            .map(|t| t.0)
            .collect()
    }

    const ABC: [(&str, u16, u16); 3] = [("A", 0, 0), ("B", 0, 1), ("C", 0, 3)];

    #[test]
    fn t_srv_07_priority_before_weight() {
        let got = order(&[("a", 10, 100), ("b", 0, 0)], &mut SplitMix::from_seed(1));
        assert_eq!(got, ["b", "a"]);
    }

    #[test]
    fn t_srv_08_draw_0_picks_weight_0() {
        assert_eq!(order(&ABC, &mut Script(vec![0, 0, 0]))[0], "A");
    }

    #[test]
    fn t_srv_09_draw_1_picks_b() {
        assert_eq!(order(&ABC, &mut Script(vec![1, 0, 0]))[0], "B");
    }

    #[test]
    fn t_srv_10_draw_2_then_0() {
        assert_eq!(order(&ABC, &mut Script(vec![2, 0, 0])), ["C", "A", "B"]);
    }

    #[test]
    fn t_srv_11_weights_1_and_3_share() {
        let mut rng = SplitMix::from_seed(42);
        let trials = 10_000;
        let b_first = (0..trials)
            .filter(|_| order(&[("a", 0, 1), ("b", 0, 3)], &mut rng)[0] == "b")
            .count();
        let share = b_first as f64 / trials as f64;
        assert!((share - 0.75).abs() < 0.02, "b first in {share}");
    }

    #[test]
    fn t_srv_12_all_zero_weights_are_shuffled() {
        let mut rng = SplitMix::from_seed(7);
        let a_first = (0..10_000)
            .filter(|_| order(&[("a", 0, 0), ("b", 0, 0)], &mut rng)[0] == "a")
            .count();
        assert!((4_800..5_200).contains(&a_first), "a first {a_first} times");
    }

    #[test]
    fn seeded_order_is_reproducible() {
        let items = [("a", 0, 5), ("b", 0, 5), ("c", 0, 5), ("d", 1, 0)];
        let one = order(&items, &mut SplitMix::from_seed(99));
        let two = order(&items, &mut SplitMix::from_seed(99));
        assert_eq!(one, two);
        assert_eq!(one[3], "d");
    }
}
