//! The dry run's digests (`bizrelay route`): a group of hooks held in memory is turned into
//! the [`DueGroup`] the store would hand the dispatcher when the window closes, and flushed
//! with the dispatcher's own [`build_flush`], so the preview is what would be sent.

use crate::config::Loaded;
use crate::digest;
use crate::route::Route;
use crate::store::{DueGroup, Flush, GroupTiming, StoredHook};

use super::plan::{Report, build_flush, group_settings, parse_members};

/// The digest a grouped route would send now for these members (its first of the group);
/// `None` for a route that does not group.
pub fn preview_flush(
    loaded: &Loaded,
    route: &Route,
    group_key: &str,
    members: &[StoredHook],
    now: i64,
) -> Option<(Flush, Report)> {
    let settings = group_settings(route)?;
    let parsed = parse_members(members);
    let list: Vec<digest::Member<'_>> = parsed
        .iter()
        .map(|(i, hook)| digest::Member {
            envelope: &members[*i].envelope,
            hook,
            received_at: members[*i].received_at,
        })
        .collect();
    let tally = digest::tally(&list);
    let samples: Vec<StoredHook> = parsed
        .iter()
        .take(settings.max_items)
        .map(|(i, _)| members[*i].clone())
        .collect();
    let group = DueGroup {
        route: route.name.clone(),
        group_key: group_key.to_string(),
        settings,
        timing: GroupTiming {
            started_at: tally.first_at.unwrap_or(now),
            total: 0,
            pending: members.len() as i64,
            last_flush_at: None,
            next_flush_at: None,
            resolve_at: None,
        },
        token: 0,
        tally,
        samples,
        silenced: 0,
    };
    Some(build_flush(loaded, &group, now))
}
