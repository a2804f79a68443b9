use super::*;

fn cfg() -> DeliveryConfig {
    DeliveryConfig {
        max_attempts: 5,
        max_age: Duration::from_secs(3600),
        ..DeliveryConfig::default()
    }
}

fn delivery(attempts: i64, created_at: i64) -> Delivery {
    Delivery {
        id: 1,
        destination: "d".into(),
        route: "r".into(),
        hook_id: None,
        payload: "{}".into(),
        attempts,
        created_at,
        received_at: created_at,
    }
}

#[test]
fn backoff_doubles_caps_and_jitters() {
    let (i, m) = (Duration::from_secs(1), Duration::from_secs(600));
    assert_eq!(backoff(i, m, 1, 1.0), Duration::from_secs(1));
    assert_eq!(backoff(i, m, 2, 1.0), Duration::from_secs(2));
    assert_eq!(backoff(i, m, 5, 1.0), Duration::from_secs(16));
    assert_eq!(backoff(i, m, 11, 1.0), Duration::from_secs(600));
    assert_eq!(
        backoff(i, m, 40, 1.0),
        Duration::from_secs(600),
        "no overflow"
    );
    assert_eq!(
        backoff(i, m, 5, 0.0),
        Duration::from_secs(8),
        "jitter keeps at least half"
    );
    assert_eq!(backoff(i, m, 5, 0.5), Duration::from_secs(12));
}

#[test]
fn decisions_table() {
    let now = 1_000_000;
    let d = delivery(0, now - 1_000);
    let c = cfg();
    assert_eq!(
        decide(&Verdict::Delivered, &d, Some(202), "", now, &c, 0.5),
        Attempt::Delivered {
            status: 202,
            at: now
        }
    );
    assert_eq!(
        decide(&Verdict::Retry, &d, Some(500), "rollup_error", now, &c, 1.0),
        Attempt::Retry {
            status: Some(500),
            error: "HTTP 500: rollup_error".into(),
            at: now,
            next_at: now + 1_000
        }
    );
    assert_eq!(
        decide(
            &Verdict::Throttled(Duration::from_secs(2)),
            &d,
            Some(429),
            "",
            now,
            &c,
            0.0
        ),
        Attempt::Retry {
            status: Some(429),
            error: "HTTP 429".into(),
            at: now,
            next_at: now + 2_000
        }
    );
    let Attempt::Dead { reason, .. } = decide(
        &Verdict::DeadPayload,
        &d,
        Some(400),
        "invalid_blocks",
        now,
        &c,
        0.5,
    ) else {
        panic!()
    };
    assert!(reason.starts_with("HTTP 400: invalid_blocks"), "{reason}");
    let Attempt::Dead { reason, .. } = decide(
        &Verdict::DeadDestination,
        &d,
        Some(404),
        "no_service",
        now,
        &c,
        0.5,
    ) else {
        panic!()
    };
    assert!(
        reason.contains("no_service") && reason.contains("URL"),
        "{reason}"
    );
    let Attempt::Retry { error, .. } = decide(
        &Verdict::Retry,
        &d,
        None,
        "timed out after 10s",
        now,
        &c,
        0.5,
    ) else {
        panic!()
    };
    assert_eq!(error, "timed out after 10s");
}

#[test]
fn retries_end_at_max_attempts_or_max_age() {
    let now = 10_000_000;
    let c = cfg();
    let Attempt::Dead { reason, status, .. } = decide(
        &Verdict::Retry,
        &delivery(4, now),
        Some(503),
        "",
        now,
        &c,
        0.5,
    ) else {
        panic!("fifth failure is the last")
    };
    assert_eq!(status, Some(503));
    assert!(reason.starts_with("gave up after 5 attempts"), "{reason}");
    assert!(matches!(
        decide(
            &Verdict::Retry,
            &delivery(3, now),
            Some(503),
            "",
            now,
            &c,
            0.5
        ),
        Attempt::Retry { .. }
    ));
    let old = delivery(0, now - 3_600_000);
    let Attempt::Dead { reason, .. } = decide(
        &Verdict::Throttled(Duration::from_secs(1)),
        &old,
        Some(429),
        "",
        now,
        &c,
        0.5,
    ) else {
        panic!("too old")
    };
    assert!(reason.contains("over 1h"), "{reason}");
}
