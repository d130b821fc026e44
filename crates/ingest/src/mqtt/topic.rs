//! Topic names, topic filters, and who may use which.

/// Whether `topic` (a name, no wildcards) matches `filter` (MQTT wildcards `+`, `#`).
/// Topics starting with `$` match only filters that name their first level.
pub(crate) fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    let mut f = filter.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether a subscription to `filter` asks for nothing beyond what `pattern` allows:
/// a `#` in the filter needs a `#` in the pattern, a `+` needs `+` or `#`.
pub(crate) fn covers(pattern: &str, filter: &str) -> bool {
    let mut p = pattern.split('/');
    let mut f = filter.split('/');
    loop {
        match (p.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(fl)) if fl != "#" => {}
            (Some(pl), Some(fl)) if pl == fl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Why a topic name cannot be published to, if it cannot.
pub(crate) fn name_error(topic: &str) -> Option<&'static str> {
    if topic.is_empty() {
        Some("the topic is empty")
    } else if topic.contains(['+', '#']) {
        Some("a topic name cannot contain the wildcards + or #")
    } else if topic.contains('\0') {
        Some("a topic name cannot contain NUL")
    } else {
        None
    }
}

/// Why a topic filter cannot be subscribed to, if it cannot. The config checks its
/// `topics` by the same rule (`berth_config::topic_filter_error`; the server's tests hold
/// the two together).
pub fn filter_error(filter: &str) -> Option<&'static str> {
    if filter.is_empty() {
        return Some("the filter is empty");
    }
    if filter.contains('\0') {
        return Some("a filter cannot contain NUL");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Some("`#` must stand alone as the last level");
        }
        if level.contains('+') && *level != "+" {
            return Some("`+` must stand alone in its level");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_mqtt_says() {
        assert!(matches("s1/inbound", "+/inbound"));
        assert!(matches("s1/inbound", "#"));
        assert!(matches("s1/inbound", "s1/#"));
        assert!(matches("s1", "s1/#"));
        assert!(!matches("s1/a/inbound", "+/inbound"));
        assert!(!matches("s1/inbound/x", "+/inbound"));
        assert!(!matches("$SYS/x", "#"));
        assert!(!matches("$SYS/x", "+/x"));
        assert!(matches("$SYS/x", "$SYS/#"));
        assert!(matches("a//b", "a/+/b"));
    }

    #[test]
    fn subscriptions_stay_inside_their_pattern() {
        assert!(covers("s1/#", "s1/+/x"));
        assert!(covers("s1/#", "s1/#"));
        assert!(covers("s1/+", "s1/a"));
        assert!(covers("s1/+", "s1/+"));
        assert!(!covers("s1/+", "s1/#"));
        assert!(!covers("s1/a", "s1/+"));
        assert!(!covers("s1/#", "s2/a"));
        assert!(!covers("s1/+", "s1/a/b"));
    }
}
