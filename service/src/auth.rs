//! Token checks shared by the TCP handshake and HTTP bearer auth.

/// True when `given` matches the configured token, or no token is configured.
/// Compares in time independent of where the strings differ.
pub fn token_ok(expected: Option<&str>, given: &str) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_match_exactly() {
        assert!(token_ok(None, "anything"));
        assert!(token_ok(Some("s3cret"), "s3cret"));
        assert!(!token_ok(Some("s3cret"), "s3cre"));
        assert!(!token_ok(Some("s3cret"), "s3creT"));
        assert!(!token_ok(Some("s3cret"), ""));
    }
}
