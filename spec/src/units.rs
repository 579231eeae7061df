//! Durations (`1m30s`), byte sizes (`200m`) and file modes (`0440`), parsed
//! as Docker Compose parses them and printed as it prints them.

use serde::{Serialize, Serializer};

/// A duration in nanoseconds; printed in Go's notation (`1m30s`, `1h0m0s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub i64);

impl Duration {
    /// True for a zero duration (left out of the output).
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    /// As a standard library duration (negative values become zero).
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0.max(0) as u64)
    }

    /// Parses `1h30m`, `10s`, `1.5s`, `100ms`, `2d`, `1w` (units may be combined).
    pub fn parse(s: &str) -> Option<Duration> {
        let (neg, mut rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        if rest == "0" {
            return Some(Duration(0));
        }
        if rest.is_empty() {
            return None;
        }
        let mut total: f64 = 0.0;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if num_end == 0 {
                return None;
            }
            let n: f64 = rest[..num_end].parse().ok()?;
            rest = &rest[num_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale: f64 = match &rest[..unit_end] {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                "d" => 86400e9,
                "w" => 7.0 * 86400e9,
                _ => return None,
            };
            rest = &rest[unit_end..];
            total += n * scale;
        }
        if total > i64::MAX as f64 {
            return None;
        }
        let n = total.round() as i64;
        Some(Duration(if neg { -n } else { n }))
    }
}

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0;
        if n == 0 {
            return f.write_str("0s");
        }
        if n < 0 {
            f.write_str("-")?;
        }
        let u = n.unsigned_abs();
        const SEC: u64 = 1_000_000_000;
        if u < SEC {
            let (unit, div) = if u < 1_000 {
                ("ns", 1)
            } else if u < 1_000_000 {
                ("µs", 1_000)
            } else {
                ("ms", 1_000_000)
            };
            return write!(f, "{}{unit}", fraction(u, div));
        }
        let hours = u / (3600 * SEC);
        let minutes = (u % (3600 * SEC)) / (60 * SEC);
        let secs = u % (60 * SEC);
        if hours > 0 {
            write!(f, "{hours}h{minutes}m")?;
        } else if minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        write!(f, "{}s", fraction(secs, SEC))
    }
}

fn fraction(v: u64, div: u64) -> String {
    let whole = v / div;
    let frac = v % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size in bytes; printed as a string of digits, as Docker Compose does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnitBytes(pub i64);

impl UnitBytes {
    /// Parses `200m`, `1.5g`, `512kb`, `100` (binary multiples, case-insensitive).
    pub fn parse(s: &str) -> Option<UnitBytes> {
        let s = s.trim();
        let num_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = s[..num_end].parse().ok()?;
        let unit = s[num_end..].trim_start_matches(' ').to_ascii_lowercase();
        let unit = unit.strip_suffix('b').unwrap_or(&unit);
        let unit = unit.strip_suffix('i').unwrap_or(unit);
        let mul: f64 = match unit {
            "" => 1.0,
            "k" => 1024.0,
            "m" => 1024.0 * 1024.0,
            "g" => 1024.0 * 1024.0 * 1024.0,
            "t" => 1024f64.powi(4),
            "p" => 1024f64.powi(5),
            _ => return None,
        };
        Some(UnitBytes((n * mul) as i64))
    }
}

impl Serialize for UnitBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A file mode; printed in octal with a leading zero (`"0440"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0{:o}", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_in_go_notation() {
        let cases = [
            ("10s", "10s"),
            ("60s", "1m0s"),
            ("120s", "2m0s"),
            ("1m30s", "1m30s"),
            ("1h", "1h0m0s"),
            ("1.5s", "1.5s"),
            ("100ms", "100ms"),
            ("1d", "24h0m0s"),
            ("0", "0s"),
            ("1500us", "1.5ms"),
        ];
        for (input, want) in cases {
            assert_eq!(Duration::parse(input).unwrap().to_string(), want, "{input}");
        }
        assert!(Duration::parse("10").is_none());
        assert!(Duration::parse("abc").is_none());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(UnitBytes::parse("50M"), Some(UnitBytes(52428800)));
        assert_eq!(UnitBytes::parse("20m"), Some(UnitBytes(20971520)));
        assert_eq!(UnitBytes::parse("1kb"), Some(UnitBytes(1024)));
        assert_eq!(UnitBytes::parse("1.5g"), Some(UnitBytes(1610612736)));
        assert_eq!(UnitBytes::parse("10000"), Some(UnitBytes(10000)));
        assert_eq!(UnitBytes::parse("12x"), None);
    }
}
