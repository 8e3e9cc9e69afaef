//! Link shapes and the named WAN profiles (`lan`, `wan`, `bad`, or `delay=…,jitter=…,…`).

use std::fmt;
use std::time::Duration;

use super::NetlabError;

/// Largest delay or jitter a link takes (a typo like `delay=4000s` is refused).
const MAX_DELAY: Duration = Duration::from_secs(10);

/// How one host's cable to the switch behaves. Delay, jitter and loss apply to packets the
/// switch forwards *to* the host, so a one-way trip from A to B sees B's figures and a round
/// trip sees both; bandwidth limits both directions of the cable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkShape {
    /// Mean one-way delay.
    pub delay: Duration,
    /// Each packet's delay is drawn uniformly from delay ± jitter (never below zero).
    pub jitter: Duration,
    /// Packets dropped, in parts per million.
    pub loss_ppm: u32,
    /// Bandwidth cap in kbit/s each way, if any.
    pub rate_kbit: Option<u32>,
}

impl LinkShape {
    /// Whether packets to this host must pass through the delayer (delay or loss).
    pub fn needs_delayer(&self) -> bool {
        !self.delay.is_zero() || self.loss_ppm > 0
    }
}

impl fmt::Display for LinkShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delay {}±{} ms, loss {:.1}%, ",
            self.delay.as_millis(),
            self.jitter.as_millis(),
            f64::from(self.loss_ppm) / 10_000.0
        )?;
        match self.rate_kbit {
            Some(k) if k >= 1000 && k % 1000 == 0 => write!(f, "{} Mbit/s", k / 1000),
            Some(k) => write!(f, "{k} kbit/s"),
            None => write!(f, "unlimited"),
        }
    }
}

/// A WAN profile: one shape for every host, and optionally a slower last host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WanProfile {
    /// Its name (`lan`, `wan`, `bad`, or the explicit text).
    pub name: String,
    /// Every host's link.
    pub link: LinkShape,
    /// Bandwidth of the last host's link, if it is the slow one (`bad`: 1 Mbit/s).
    pub slow_last_kbit: Option<u32>,
}

impl WanProfile {
    /// No shaping.
    pub fn lan() -> WanProfile {
        WanProfile {
            name: "lan".into(),
            link: LinkShape::default(),
            slow_last_kbit: None,
        }
    }

    /// ≈80 ms round trip (40 ± 10 ms each way), 1% loss.
    pub fn wan() -> WanProfile {
        WanProfile {
            name: "wan".into(),
            link: LinkShape {
                delay: Duration::from_millis(40),
                jitter: Duration::from_millis(10),
                loss_ppm: 10_000,
                rate_kbit: None,
            },
            slow_last_kbit: None,
        }
    }

    /// ≈300 ms round trip (150 ± 40 ms each way), 5% loss, the last host at 1 Mbit/s.
    pub fn bad() -> WanProfile {
        WanProfile {
            name: "bad".into(),
            link: LinkShape {
                delay: Duration::from_millis(150),
                jitter: Duration::from_millis(40),
                loss_ppm: 50_000,
                rate_kbit: None,
            },
            slow_last_kbit: Some(1000),
        }
    }

    /// Parses `lan`, `wan`, `bad`, or `delay=40ms,jitter=10ms,loss=1%,rate=1mbit` (any
    /// subset of those keys; missing ones are zero / unlimited).
    pub fn parse(text: &str) -> Result<WanProfile, NetlabError> {
        match text {
            "lan" => return Ok(WanProfile::lan()),
            "wan" => return Ok(WanProfile::wan()),
            "bad" => return Ok(WanProfile::bad()),
            _ => {}
        }
        let mut link = LinkShape::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                NetlabError::Profile(format!(
                    "--wan: {part:?} is neither lan, wan, bad nor KEY=VALUE (delay, jitter, loss, rate)"
                ))
            })?;
            match key.trim() {
                "delay" => link.delay = parse_duration(key, value)?,
                "jitter" => link.jitter = parse_duration(key, value)?,
                "loss" => link.loss_ppm = parse_loss(value)?,
                "rate" => link.rate_kbit = Some(parse_rate(value)?),
                other => {
                    return Err(NetlabError::Profile(format!(
                        "--wan: unknown key {other:?} (expected delay, jitter, loss or rate)"
                    )))
                }
            }
        }
        if text.trim().is_empty() {
            return Err(NetlabError::Profile("--wan: empty profile".into()));
        }
        Ok(WanProfile {
            name: text.to_string(),
            link,
            slow_last_kbit: None,
        })
    }

    /// The shapes of hosts 1..=n.
    pub fn shapes(&self, n: usize) -> Vec<LinkShape> {
        (1..=n)
            .map(|i| {
                let mut s = self.link;
                if i == n && n > 1 {
                    if let Some(k) = self.slow_last_kbit {
                        s.rate_kbit = Some(k);
                    }
                }
                s
            })
            .collect()
    }
}

fn parse_duration(key: &str, value: &str) -> Result<Duration, NetlabError> {
    let v = value.trim();
    let bad = || NetlabError::Profile(format!("--wan: {key}={v:?} is not a duration like 40ms or 1s"));
    let d = if let Some(ms) = v.strip_suffix("ms") {
        Duration::from_millis(ms.trim().parse().map_err(|_| bad())?)
    } else if let Some(us) = v.strip_suffix("us") {
        Duration::from_micros(us.trim().parse().map_err(|_| bad())?)
    } else if let Some(s) = v.strip_suffix('s') {
        Duration::from_secs(s.trim().parse().map_err(|_| bad())?)
    } else {
        return Err(bad());
    };
    if d > MAX_DELAY {
        return Err(NetlabError::Profile(format!(
            "--wan: {key}={v} is over the {} s limit",
            MAX_DELAY.as_secs()
        )));
    }
    Ok(d)
}

fn parse_loss(value: &str) -> Result<u32, NetlabError> {
    let v = value.trim();
    let bad = || NetlabError::Profile(format!("--wan: loss={v:?} is not a percentage like 1% or 0.5%"));
    let pct: f64 = v.strip_suffix('%').unwrap_or(v).trim().parse().map_err(|_| bad())?;
    if !(0.0..=100.0).contains(&pct) {
        return Err(bad());
    }
    // In range 0..=1_000_000 by the check above.
    Ok((pct * 10_000.0).round() as u32)
}

fn parse_rate(value: &str) -> Result<u32, NetlabError> {
    let v = value.trim().to_ascii_lowercase();
    let bad = || NetlabError::Profile(format!("--wan: rate={v:?} is not a rate like 1mbit or 500kbit"));
    let (num, mult) = if let Some(n) = v.strip_suffix("mbit") {
        (n, 1000)
    } else if let Some(n) = v.strip_suffix("kbit") {
        (n, 1)
    } else {
        return Err(bad());
    };
    let n: u32 = num.trim().parse().map_err(|_| bad())?;
    let k = n.checked_mul(mult).ok_or_else(bad)?;
    if k == 0 {
        return Err(bad());
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_profiles_and_explicit_ones_parse() {
        assert_eq!(
            WanProfile::parse("wan").expect("wan").link.delay,
            Duration::from_millis(40)
        );
        let bad = WanProfile::parse("bad").expect("bad");
        let shapes = bad.shapes(5);
        assert_eq!(shapes[4].rate_kbit, Some(1000));
        assert_eq!(shapes[0].rate_kbit, None);
        let p = WanProfile::parse("delay=40ms,jitter=10ms,loss=1%,rate=2mbit").expect("explicit");
        assert_eq!(p.link.delay, Duration::from_millis(40));
        assert_eq!(p.link.jitter, Duration::from_millis(10));
        assert_eq!(p.link.loss_ppm, 10_000);
        assert_eq!(p.link.rate_kbit, Some(2000));
        assert!(!WanProfile::lan().link.needs_delayer());
        assert!(p.link.needs_delayer());
    }

    #[test]
    fn bad_profiles_get_one_line_errors() {
        for (text, needle) in [
            ("moon", "neither lan"),
            ("delay=40", "duration"),
            ("loss=200%", "percentage"),
            ("rate=fast", "rate"),
            ("speed=1", "unknown key"),
            ("delay=1000s", "limit"),
        ] {
            let e = WanProfile::parse(text).expect_err(text).to_string();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
