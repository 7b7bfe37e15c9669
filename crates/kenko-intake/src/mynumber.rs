//! My Number (個人番号): 12 digits, the last a check digit computed as the Ordinance of the
//! Ministry of Internal Affairs and Communications No. 85 of 2014 (section 5) prescribes.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A syntactically valid My Number. Zeroized on drop; its `Debug` never shows the digits.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct MyNumber([u8; 12]);

impl std::fmt::Debug for MyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MyNumber(<redacted>)")
    }
}

/// Why a string is not a My Number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MyNumberError {
    #[error("expected 12 ASCII digits")]
    Malformed,
    #[error("the check digit does not match the first 11 digits")]
    CheckDigit,
}

impl MyNumber {
    /// Parses 12 ASCII digits (the caller has already NFKC-normalised full-width digits).
    pub fn parse(s: &str) -> Result<Self, MyNumberError> {
        let b = s.as_bytes();
        if b.len() != 12 || !b.iter().all(u8::is_ascii_digit) {
            return Err(MyNumberError::Malformed);
        }
        let mut digits = [0u8; 12];
        for (d, c) in digits.iter_mut().zip(b) {
            *d = c - b'0';
        }
        let n = MyNumber(digits);
        if check_digit(&n.0[..11]) != n.0[11] {
            return Err(MyNumberError::CheckDigit);
        }
        Ok(n)
    }

    /// The 12 digits as ASCII, for encryption and keyed hashing. The caller zeroizes the copy.
    pub fn ascii(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        for (o, d) in out.iter_mut().zip(&self.0) {
            *o = b'0' + d;
        }
        out
    }

    /// Builds a valid number from 11 digits (0–9 each) by appending the check digit; used by
    /// the synthetic data generator.
    pub fn from_first_11(first: [u8; 11]) -> Self {
        let mut digits = [0u8; 12];
        digits[..11].copy_from_slice(&first);
        digits[11] = check_digit(&first);
        MyNumber(digits)
    }
}

/// The check digit for the first 11 digits (values 0–9): with P(n) the n-th digit counted from
/// the right (n = 1..=11) and Q(n) = n + 1 for n <= 6, n - 5 for n >= 7, the digit is
/// 11 - (sum of P(n)Q(n) mod 11), or 0 when the remainder is 0 or 1.
pub fn check_digit(first11: &[u8]) -> u8 {
    debug_assert_eq!(first11.len(), 11);
    let sum: u32 = (1..=11u32)
        .map(|n| {
            let p = u32::from(first11[11 - n as usize]);
            let q = if n <= 6 { n + 1 } else { n - 5 };
            p * q
        })
        .sum();
    let r = sum % 11;
    if r <= 1 {
        0
    } else {
        (11 - r) as u8
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn known_valid_numbers_pass() {
        // Published examples of valid check digits (synthetic, not anyone's number).
        assert!(MyNumber::parse("123456789018").is_ok());
        assert!(MyNumber::parse("000000000000").is_ok());
    }

    #[test]
    fn a_changed_digit_fails_the_check() {
        assert_eq!(
            MyNumber::parse("123456789017").unwrap_err(),
            MyNumberError::CheckDigit
        );
        assert_eq!(
            MyNumber::parse("123456789118").unwrap_err(),
            MyNumberError::CheckDigit
        );
    }

    #[test]
    fn wrong_shapes_are_malformed() {
        for s in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            "１２３４５６７８９０１８",
        ] {
            assert_eq!(
                MyNumber::parse(s).unwrap_err(),
                MyNumberError::Malformed,
                "{s:?}"
            );
        }
    }

    #[test]
    fn from_first_11_round_trips() {
        for seed in 0..200u32 {
            let mut d = [0u8; 11];
            let mut x = seed.wrapping_mul(2654435761);
            for v in d.iter_mut() {
                *v = (x % 10) as u8;
                x /= 7;
                x = x.wrapping_add(seed);
            }
            let n = MyNumber::from_first_11(d);
            let ascii = n.ascii();
            assert!(MyNumber::parse(std::str::from_utf8(&ascii).unwrap()).is_ok());
        }
    }

    #[test]
    fn debug_does_not_show_digits() {
        let n = MyNumber::parse("123456789018").unwrap();
        assert!(!format!("{n:?}").contains("1234"));
    }
}
