//! Number literals: digits, their value, and which decimals are their own canonical form.

pub(super) fn skip_digits(src: &[u8], mut i: usize) -> usize {
    while src.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// The value of at most 19 decimal digits.
pub(super) fn digits_value(digits: &[u8]) -> u64 {
    digits.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0'))
}

/// Whether the decimal literal `int.fraction` (no exponent) is written in ECMAScript form as
/// itself, less the fraction's trailing zeros (and the `.` when nothing is left of it, and the
/// sign of a zero).
///
/// It is when it has at most 15 significant digits (`f64::DIGITS`: distinct such decimals are
/// distinct doubles, so no shorter decimal rounds to the same double and the shortest round trip
/// gives these digits back) and ECMAScript prints it without an exponent (from 1e-6 up to 1e21;
/// 15 digits stay below 1e15).
pub(super) fn short_decimal(int: &[u8], fraction: &[u8]) -> bool {
    let kept = fraction.len() - fraction.iter().rev().take_while(|&&d| d == b'0').count();
    if int == b"0" {
        let zeros = fraction.iter().take_while(|&&d| d == b'0').count();
        kept == 0 || (zeros <= 5 && kept - zeros <= 15)
    } else {
        int.len() + kept <= 15
    }
}
