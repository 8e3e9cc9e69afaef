//! Parsers of values that both `lode node` and the client commands accept.

/// Parses a block time: whole seconds, `N` or `Ns`, from 1 to 3600.
pub fn parse_block_time(s: &str) -> Result<u64, String> {
    let digits = s.strip_suffix('s').unwrap_or(s);
    match digits.parse::<u64>() {
        Ok(n) if (1..=3600).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a block time (whole seconds from 1 to 3600, e.g. 2s)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_times_are_whole_seconds_from_1_to_3600() {
        assert_eq!(parse_block_time("2s"), Ok(2));
        assert_eq!(parse_block_time("3600"), Ok(3600));
        for bad in ["0", "0s", "3601", "1.5s", "s", ""] {
            assert!(parse_block_time(bad).is_err(), "{bad}");
        }
    }
}
