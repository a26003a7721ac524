//! Identifiers in the real API's formats (`msgbatch_01…`, `msg_01…`, `req_011C…`), drawn from a seeded generator.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The base58 alphabet the real identifiers use.
const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Deterministic identifier source: the same seed gives the same sequence of ids.
#[derive(Debug)]
pub(crate) struct IdGen {
    rng: StdRng,
}

impl IdGen {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn with_prefix(&mut self, prefix: &str, random_chars: usize) -> String {
        let mut id = String::with_capacity(prefix.len() + random_chars);
        id.push_str(prefix);
        for _ in 0..random_chars {
            let index = self.rng.random_range(0..BASE58.len());
            id.push(char::from(BASE58[index]));
        }
        id
    }

    /// `msgbatch_01` followed by 22 base58 characters.
    pub(crate) fn batch(&mut self) -> String {
        self.with_prefix("msgbatch_01", 22)
    }

    /// `msg_01` followed by 22 base58 characters.
    pub(crate) fn message(&mut self) -> String {
        self.with_prefix("msg_01", 22)
    }

    /// `req_011C` followed by 20 base58 characters.
    pub(crate) fn request(&mut self) -> String {
        self.with_prefix("req_011C", 20)
    }

    /// A random 64-bit value from the same deterministic stream (shuffles, fault draws).
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.rng.random()
    }
}

#[cfg(test)]
mod tests {
    use super::IdGen;

    #[test]
    fn ids_have_the_real_shapes() {
        let mut ids = IdGen::new(1);
        let batch = ids.batch();
        assert!(batch.starts_with("msgbatch_01"));
        assert_eq!(batch.len(), "msgbatch_".len() + 24);
        let message = ids.message();
        assert_eq!(message.len(), "msg_".len() + 24);
        let request = ids.request();
        assert!(request.starts_with("req_011C"));
        assert_eq!(request.len(), "req_".len() + 24);
        assert!(
            batch
                .bytes()
                .skip("msgbatch_01".len())
                .all(|b| super::BASE58.contains(&b))
        );
    }

    #[test]
    fn same_seed_same_ids() {
        assert_eq!(IdGen::new(7).batch(), IdGen::new(7).batch());
        assert_ne!(IdGen::new(7).batch(), IdGen::new(8).batch());
    }
}
