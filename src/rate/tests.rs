use super::*;

const W: i64 = 60_000;

fn settings() -> RateSettings {
    RateSettings {
        to: vec!["oncall".into()],
        window_ms: W,
        min_messages: 100,
        fire_above: 0.10,
        resolve_below: 0.03,
        repeat_interval_ms: 4 * W,
    }
}

fn window(n: i64, results: i64, failures: i64) -> WindowCounts {
    WindowCounts {
        start: n * W,
        results,
        failures,
        codes: vec![(Some("3019".into()), failures)],
        ..WindowCounts::default()
    }
}

/// Judges windows in turn, each just after it closes; returns the decisions.
fn run(windows: &[(i64, i64)]) -> Vec<Decision> {
    let s = settings();
    let mut state = SeriesState::default();
    windows
        .iter()
        .enumerate()
        .map(|(i, (results, failures))| {
            let w = window(i as i64, *results, *failures);
            let (d, keep, _) = judge(&s, &state, &w, (i as i64 + 1) * W + 1_000);
            state = keep;
            d
        })
        .collect()
}

#[test]
fn a_ratio_fires_above_its_threshold_and_resolves_only_under_the_lower_one() {
    use Decision::*;
    let decisions = run(&[
        (1000, 100), // exactly 10%: not above
        (1000, 101), // fires
        (1000, 50),  // 5%: under fire_above but not under resolve_below: still firing
        (1000, 31),  // 3.1%: still firing
        (1000, 29),  // 2.9%: resolved
        (1000, 50),  // 5% again: quiet (it must climb above 10% to fire)
    ]);
    assert_eq!(
        decisions,
        [Quiet, Fire, StillFiring, StillFiring, Resolve, Quiet]
    );
}

#[test]
fn a_firing_series_repeats_no_sooner_than_its_repeat_interval() {
    use Decision::*;
    // repeat_interval is four windows: fired at the end of window 0, repeated at the end of
    // window 4, then window 8.
    let decisions = run(&[(1000, 500); 9]);
    assert_eq!(
        decisions,
        [
            Fire,
            StillFiring,
            StillFiring,
            StillFiring,
            Repeat,
            StillFiring,
            StillFiring,
            StillFiring,
            Repeat
        ]
    );
}

#[test]
fn too_few_results_neither_fire_nor_repeat_and_a_quiet_or_thin_window_resolves() {
    use Decision::*;
    // 99 results at 100% failures: below min_messages, nothing fires.
    assert_eq!(run(&[(99, 99), (100, 11)]), [Quiet, Fire]);
    // Firing, then a thin window with failures keeps it firing; a window with no failure
    // (here: no traffic at all) resolves it.
    assert_eq!(
        run(&[(1000, 900), (10, 9), (0, 0)]),
        [Fire, StillFiring, Resolve]
    );
    // A thin window under the lower threshold resolves too (1 of 50 is 2%)...
    assert_eq!(run(&[(1000, 900), (50, 1)]), [Fire, Resolve]);
    // ...and a thin window over it never repeats, however long it has been.
    let firing = SeriesState {
        firing: true,
        fired_at: Some(0),
        last_sent_at: Some(0),
        ..SeriesState::default()
    };
    let (d, _, _) = judge(&settings(), &firing, &window(100, 50, 25), 100 * W);
    assert_eq!(d, StillFiring);
}

#[test]
fn the_resolved_message_counts_every_window_since_it_fired() {
    let s = settings();
    let (_, state, _) = judge(&s, &SeriesState::default(), &window(0, 1000, 400), W + 1);
    let (_, state, _) = judge(&s, &state, &window(1, 1000, 300), 2 * W + 1);
    let (d, kept, shown) = judge(&s, &state, &window(2, 1000, 10), 3 * W + 1);
    assert_eq!(d, Decision::Resolve);
    assert_eq!((shown.failures_since, shown.results_since), (710, 3000));
    assert_eq!(shown.fired_at, Some(0));
    assert_eq!(
        kept,
        SeriesState::default(),
        "a resolved series starts afresh"
    );
}

#[test]
fn silenced_results_stay_out_of_the_ratio() {
    // 1,000 silenced failures beside 1,000 successes: the window holds no counted failure.
    let mut w = window(0, 1000, 0);
    w.silenced = 1000;
    let (d, _, _) = judge(&settings(), &SeriesState::default(), &w, W + 1);
    assert_eq!(d, Decision::Quiet);
}

#[test]
fn windows_are_aligned_to_the_clock() {
    assert_eq!(window_start(299_999, 300_000), 0);
    assert_eq!(window_start(300_000, 300_000), 300_000);
    assert_eq!(window_start(-1, 300_000), -300_000);
}

#[test]
fn summaries_say_ratio_counts_and_silenced_in_both_locales() {
    let ctxs = sample_contexts();
    let firing = for_destination(
        ctxs[0].1.clone(),
        "d",
        crate::destination::console::KIND,
        crate::locale::Locale::En,
    );
    assert_eq!(
        firing["summary"],
        "🔥 Failure rate: alimtalk-failure-rate (message_type=AT, sender_key=a1b2c3d4e5): 92.6% failed over 5m (1,204 of 1,300) +312 silenced"
    );
    let ko = for_destination(
        ctxs[1].1.clone(),
        "d",
        crate::destination::console::KIND,
        crate::locale::Locale::Ko,
    );
    assert_eq!(
        ko["summary"],
        "✅ 해소: alimtalk-failure-rate (message_type=AT, sender_key=a1b2c3d4e5) 실패율 0.9% (5분), 25분 동안 발생; 총 6,400건 중 4,818건 실패 +사일런스 312건"
    );
}
