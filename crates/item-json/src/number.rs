//! DynamoDB's numbers as JSON numbers, every digit kept.

/// A DynamoDB number as a JSON number, digit for digit. DynamoDB trims
/// leading (and trailing) zeroes of the numbers it stores, so what it sends
/// is already in JSON's form and is copied as it is, once checked; only
/// another form is rewritten ([`normalize_number`]).
pub(crate) fn write_number(out: &mut Vec<u8>, n: &str) -> Result<(), ()> {
    if is_json_number(n.as_bytes()) {
        out.extend_from_slice(n.as_bytes());
    } else {
        let normalized = normalize_number(n).ok_or(())?;
        out.extend_from_slice(normalized.as_bytes());
    }
    Ok(())
}

/// Whether `n` is a JSON number exactly as [`normalize_number`] would write
/// it: `-`? (`0` | a digit 1-9 and digits) (`.` digits)? (`E` (`+`|`-`)? digits)?.
pub(crate) fn is_json_number(n: &[u8]) -> bool {
    let digits = |at: usize| at + n[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut at = usize::from(n.first() == Some(&b'-'));
    match n.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => at = digits(at),
        _ => return false,
    }
    if n.get(at) == Some(&b'.') {
        let end = digits(at + 1);
        if end == at + 1 {
            return false;
        }
        at = end;
    }
    if n.get(at) == Some(&b'E') {
        at += 1;
        if matches!(n.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let end = digits(at);
        if end == at {
            return false;
        }
        at = end;
    }
    at == n.len()
}

/// DynamoDB numbers are decimal strings that JSON may not accept as written
/// (`+1`, `.5`, `5.`, `007`). Rewrite only those forms, never the digits.
pub(crate) fn normalize_number(n: &str) -> Option<String> {
    let (sign, rest) = match n.as_bytes().first()? {
        b'-' => ("-", &n[1..]),
        b'+' => ("", &n[1..]),
        _ => ("", n),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int)
        || !frac.is_none_or(digits)
        || (int.is_empty() && frac.is_none_or(str::is_empty))
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let mut out = format!("{sign}{}", if int.is_empty() { "0" } else { int });
    if let Some(frac) = frac.filter(|f| !f.is_empty()) {
        out.push('.');
        out.push_str(frac);
    }
    if let Some(exp) = exponent {
        let (exp_sign, exp_digits) = match exp.as_bytes().first()? {
            b'-' => ("-", &exp[1..]),
            b'+' => ("+", &exp[1..]),
            _ => ("", exp),
        };
        if exp_digits.is_empty() || !digits(exp_digits) {
            return None;
        }
        out.push('E');
        out.push_str(exp_sign);
        out.push_str(exp_digits);
    }
    Some(out)
}
