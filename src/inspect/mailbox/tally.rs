//! Counting, message by message, what a mailbox gives away. Every finding comes from
//! `inspect::email` (the parser) and `inspect::leaks` (the rules); this only adds them up,
//! in memory bounded by caps on the distinct values kept.

use std::collections::{BTreeMap, HashMap};

use super::{
    source::Message, Correspondent, Count, Kinds, LeakCount, Malformed, Month, Options, Survey,
    JSON_VERSION,
};
use crate::inspect::{
    email::{self, EmailFacts},
    is_email,
    leaks::{self, Leak},
};

/// Distinct values kept per counter (addresses, file names, ...); more are counted as
/// "others".
const MAX_DISTINCT: usize = 1000;
/// Correspondents kept apart; the rest are added up as "(others)".
const MAX_CORRESPONDENTS: usize = 20_000;
/// Problem messages named one by one; the rest are only counted.
const MAX_NAMED: usize = 1000;
/// Values shown per leak in a report.
const TOP_DETAILS: usize = 5;

/// Values and how often each was seen.
#[derive(Debug, Default)]
struct Counter {
    seen: HashMap<String, u64>,
    others: u64,
}

impl Counter {
    fn add(&mut self, value: &str) {
        if let Some(n) = self.seen.get_mut(value) {
            *n += 1;
        } else if self.seen.len() < MAX_DISTINCT {
            self.seen.insert(value.to_string(), 1);
        } else {
            self.others += 1;
        }
    }

    fn top(&self, n: usize) -> Vec<Count> {
        let mut all: Vec<Count> = self
            .seen
            .iter()
            .map(|(value, count)| Count {
                value: value.clone(),
                count: *count,
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        all.truncate(n);
        if self.others > 0 {
            all.push(Count {
                value: "(others)".into(),
                count: self.others,
            });
        }
        all
    }
}

/// Messages per kind of leak, with the values seen.
#[derive(Debug, Default)]
struct LeakSet {
    kinds: BTreeMap<&'static str, (u64, Counter)>,
}

impl LeakSet {
    /// Counts one message's leaks: each kind once, every value.
    fn add(&mut self, found: &[Leak]) {
        let mut counted: Vec<&str> = Vec::new();
        for leak in found {
            let (messages, values) = self.kinds.entry(leak.kind()).or_default();
            if !counted.contains(&leak.kind()) {
                *messages += 1;
                counted.push(leak.kind());
            }
            for d in leak.details() {
                values.add(&d);
            }
        }
    }

    /// Most first; shares of `over` messages (`not_encrypted` of `all`).
    fn counts(&self, over: u64, all: u64) -> Vec<LeakCount> {
        let mut out: Vec<LeakCount> = self
            .kinds
            .iter()
            .map(|(kind, (messages, values))| {
                let base = if *kind == "not_encrypted" { all } else { over };
                LeakCount {
                    kind: kind.to_string(),
                    label: leaks::label(kind).to_string(),
                    messages: *messages,
                    share: if base == 0 {
                        0.0
                    } else {
                        *messages as f64 / base as f64
                    },
                    details: values.top(TOP_DETAILS),
                }
            })
            .collect();
        let rank = |k: &str| {
            leaks::KINDS
                .iter()
                .position(|x| *x == k)
                .unwrap_or(usize::MAX)
        };
        out.sort_by(|a, b| {
            b.messages
                .cmp(&a.messages)
                .then_with(|| rank(&a.kind).cmp(&rank(&b.kind)))
        });
        out
    }
}

/// One correspondent's mail so far.
#[derive(Debug, Default)]
struct Sender {
    messages: u64,
    encrypted: u64,
    leaks: LeakSet,
    software: Counter,
    how: Counter,
}

impl Sender {
    fn add(&mut self, how: &str, encrypted: bool, found: &[Leak]) {
        self.messages += 1;
        self.how.add(how);
        for leak in found.iter().filter(|l| l.kind() == "sender_software") {
            leak.details().iter().for_each(|d| self.software.add(d));
        }
        if encrypted {
            self.encrypted += 1;
            self.leaks.add(found);
        } else {
            self.leaks.add(&[Leak::NotEncrypted]);
        }
    }

    fn finish(&self, who: String, mine: bool) -> Correspondent {
        let leaks = self.leaks.counts(self.encrypted, self.messages);
        let changes = leaks
            .iter()
            .map(|l| {
                if mine {
                    leaks::my_setting(&l.kind)
                } else {
                    leaks::their_change(&l.kind)
                }
            })
            .filter(|c| !c.is_empty())
            .take(if mine { usize::MAX } else { 2 })
            .map(str::to_string)
            .collect();
        Correspondent {
            who,
            messages: self.messages,
            encrypted: self.encrypted,
            how: self.how.top(TOP_DETAILS),
            leaks,
            software: self.software.top(TOP_DETAILS),
            changes,
        }
    }

    /// How much their mail leaks: every leak of every message.
    fn score(&self) -> u64 {
        self.leaks.kinds.values().map(|(n, _)| n).sum()
    }
}

/// The running count over a whole survey.
pub struct Tally {
    by_domain: bool,
    me: Vec<String>,
    messages: u64,
    bytes: u64,
    kinds: Kinds,
    containers: Counter,
    leaks: LeakSet,
    months: BTreeMap<String, Month>,
    senders: HashMap<String, Sender>,
    mine: Option<Sender>,
    malformed: Vec<Malformed>,
    partly_read: Vec<String>,
}

impl Tally {
    pub fn new(options: &Options) -> Tally {
        Tally {
            by_domain: options.by_domain,
            me: options.me.iter().map(|a| a.trim().to_lowercase()).collect(),
            messages: 0,
            bytes: 0,
            kinds: Kinds::default(),
            containers: Counter::default(),
            leaks: LeakSet::default(),
            months: BTreeMap::new(),
            senders: HashMap::new(),
            mine: None,
            malformed: Vec::new(),
            partly_read: Vec::new(),
        }
    }

    pub fn messages(&self) -> u64 {
        self.messages
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// A message that could not be read at all.
    pub fn unreadable(&mut self, location: String, why: String) {
        self.messages += 1;
        self.malformed(location, why);
    }

    fn malformed(&mut self, location: String, why: String) {
        self.kinds.malformed += 1;
        if self.malformed.len() < MAX_NAMED {
            self.malformed.push(Malformed { location, why });
        }
    }

    /// Counts one message; `all_mine`: it is the user's own (from a Sent folder).
    pub fn add(&mut self, m: &Message, all_mine: bool) {
        self.messages += 1;
        self.bytes += m.size;
        if m.partly_read() && self.partly_read.len() < MAX_NAMED {
            self.partly_read.push(m.location.clone());
        }
        if !is_email(&m.bytes) {
            return self.malformed(m.location.clone(), "no header fields at its start".into());
        }
        let facts = email::read(&m.bytes);
        if let Some((part, why)) = facts.unreadable.first() {
            return self.malformed(m.location.clone(), format!("part {part}: {why}"));
        }
        let found = leaks::of_email(&facts);
        let kind = self.count_kind(&facts);
        let encrypted = kind.starts_with("PGP/MIME") || kind.starts_with("inline");
        let mut how = kind.to_string();
        if encrypted {
            self.leaks.add(&found);
            let mut containers: Vec<&str> = facts
                .encrypted
                .iter()
                .filter_map(|e| e.container.as_ref().map(|c| c.kind.as_str()))
                .collect();
            containers.sort_unstable();
            containers.dedup();
            containers.iter().for_each(|k| self.containers.add(k));
            how = format!("{kind}, {}", containers.join(" + "));
        }
        self.count_month(&facts, encrypted, &found);
        let from = facts.from.as_deref().map(address);
        let mine = all_mine || from.as_ref().is_some_and(|a| self.me.contains(a));
        if mine {
            self.mine
                .get_or_insert_with(Sender::default)
                .add(&how, encrypted, &found);
        } else {
            self.sender(from).add(&how, encrypted, &found);
        }
    }

    /// Counts the message's kind, and names it.
    fn count_kind(&mut self, facts: &EmailFacts) -> &'static str {
        let has = |p: &str| facts.parts.iter().any(|part| part.protection == p);
        if has("pgp-mime") {
            self.kinds.pgp_mime += 1;
            "PGP/MIME"
        } else if has("inline-pgp") {
            self.kinds.inline += 1;
            "inline PGP"
        } else if facts.signed {
            self.kinds.signed_only += 1;
            "signed only"
        } else {
            self.kinds.clear += 1;
            "clear"
        }
    }

    fn count_month(&mut self, facts: &EmailFacts, encrypted: bool, found: &[Leak]) {
        let month = facts
            .date
            .as_deref()
            .and_then(month_of)
            .unwrap_or_else(|| "unknown".into());
        let entry = self.months.entry(month.clone()).or_insert(Month {
            month,
            messages: 0,
            encrypted: 0,
            subject_in_clear: 0,
            leaking: 0,
        });
        entry.messages += 1;
        if encrypted {
            entry.encrypted += 1;
            entry.subject_in_clear += u64::from(found.contains(&Leak::SubjectInClear));
            entry.leaking += u64::from(!found.is_empty());
        }
    }

    fn sender(&mut self, from: Option<String>) -> &mut Sender {
        let mut who = from.unwrap_or_else(|| "(no From)".into());
        if self.by_domain {
            who = who
                .rsplit_once('@')
                .map_or(who.clone(), |(_, d)| d.to_string());
        }
        if !self.senders.contains_key(&who) && self.senders.len() >= MAX_CORRESPONDENTS {
            who = "(others)".into();
        }
        self.senders.entry(who).or_default()
    }

    pub fn finish(self, mailboxes: Vec<String>) -> Survey {
        let encrypted = self.kinds.pgp_mime + self.kinds.inline;
        let mut senders: Vec<(&String, &Sender)> = self.senders.iter().collect();
        senders.sort_by(|(a, x), (b, y)| {
            y.score()
                .cmp(&x.score())
                .then_with(|| y.messages.cmp(&x.messages))
                .then_with(|| a.cmp(b))
        });
        let me_name = if self.me.is_empty() {
            "the Sent folder".to_string()
        } else {
            self.me.join(", ")
        };
        Survey {
            version: JSON_VERSION,
            mailboxes,
            messages: self.messages,
            bytes: self.bytes,
            encrypted,
            containers: self.containers.top(MAX_DISTINCT),
            leaks: self.leaks.counts(encrypted, self.messages),
            months: self.months.into_values().collect(),
            correspondents: senders
                .into_iter()
                .map(|(who, s)| s.finish(who.clone(), false))
                .collect(),
            me: self.mine.as_ref().map(|s| s.finish(me_name, true)),
            kinds: self.kinds,
            malformed: self.malformed,
            partly_read: self.partly_read,
        }
    }
}

/// The address in a From field ("Alice <Alice@Example.org>" -> "alice@example.org").
pub fn address(from: &str) -> String {
    let inner = match (from.rfind('<'), from.rfind('>')) {
        (Some(a), Some(b)) if a < b => &from[a + 1..b],
        _ => from
            .split_whitespace()
            .find(|w| w.contains('@'))
            .unwrap_or(from),
    };
    inner.trim().trim_matches(['"', '<', '>']).to_lowercase()
}

/// "2026-11" from an RFC 5322 date ("Mon, 23 Nov 2026 10:00:00 +0200").
pub fn month_of(date: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let words: Vec<String> = date
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let month = words
        .iter()
        .find_map(|w| MONTHS.iter().position(|m| w.starts_with(m) && w.len() <= 9))?;
    let year: u32 = words
        .iter()
        .find(|w| w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()?;
    (1970..=9999)
        .contains(&year)
        .then(|| format!("{year}-{:02}", month + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_months_are_read_as_written() {
        assert_eq!(address("Alice <Alice@Example.org>"), "alice@example.org");
        assert_eq!(address("bob@example.org (Bob)"), "bob@example.org");
        assert_eq!(
            month_of("Mon, 23 Nov 2026 10:00:00 +0200").as_deref(),
            Some("2026-11")
        );
        assert_eq!(
            month_of("2 Jan 2025 01:02:03 -0000").as_deref(),
            Some("2025-01")
        );
        assert_eq!(month_of("yesterday"), None);
    }

    #[test]
    fn a_counter_keeps_a_bounded_number_of_values() {
        let mut c = Counter::default();
        for i in 0..MAX_DISTINCT + 10 {
            c.add(&i.to_string());
        }
        c.add("0");
        let top = c.top(2);
        assert_eq!(top[0].value, "0");
        assert_eq!(top[0].count, 2);
        assert_eq!(top.last().map(|t| t.count), Some(10));
    }
}
