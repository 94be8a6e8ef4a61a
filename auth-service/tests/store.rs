//! The `UserStore` contract, run against every backend: SQLite always,
//! PostgreSQL when a server is reachable (and always in CI).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::time::Duration;

use auth_service::Error;
use auth_service::store::{
    NewSession, NewUser, NextRefreshToken, Rotation, SweepCutoffs, SweepReport, UserRecord, UserStore,
};
use auth_service::throttle::{LoginAttempt, LoginThrottle};
use bookstore_testing::TestDatabase;

fn new_user(name: &str) -> NewUser {
    NewUser {
        public_id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        name_key: name.to_lowercase(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        admin: false,
        created_at: 1_700_000_000_000_000,
    }
}

async fn created_users_are_found_by_name_key_and_public_id(store: &dyn UserStore) {
    let created = store.create_user(new_user("Alice")).await.unwrap();
    assert!(created.id > 0);
    let by_name = store.find_user_by_name_key("alice").await.unwrap().unwrap();
    assert_eq!(by_name, created);
    let by_id = store.find_user_by_public_id(&created.public_id).await.unwrap().unwrap();
    assert_eq!(by_id, created);
    assert!(store.find_user_by_name_key("bob").await.unwrap().is_none());
}

async fn a_taken_name_key_is_already_exists(store: &dyn UserStore) {
    store.create_user(new_user("Alice")).await.unwrap();
    let error = store.create_user(new_user("ALICE")).await.unwrap_err();
    assert!(matches!(error, Error::AlreadyExists(_)), "{error:?}");
}

async fn users_list_in_id_order_after_a_cursor(store: &dyn UserStore) {
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d"] {
        ids.push(store.create_user(new_user(name)).await.unwrap().id);
    }
    let first: Vec<i64> = store.list_users(0, 2).await.unwrap().iter().map(|user| user.id).collect();
    assert_eq!(first, ids[..2]);
    let rest: Vec<i64> = store.list_users(ids[1], 10).await.unwrap().iter().map(|user| user.id).collect();
    assert_eq!(rest, ids[2..]);
}

async fn set_admin_flips_the_flag_or_is_not_found(store: &dyn UserStore) {
    store.create_user(new_user("carol")).await.unwrap();
    assert!(store.set_admin("carol", true).await.unwrap().admin);
    assert!(store.find_user_by_name_key("carol").await.unwrap().unwrap().admin);
    assert!(!store.set_admin("carol", false).await.unwrap().admin);
    assert!(matches!(store.set_admin("nobody", true).await.unwrap_err(), Error::NotFound(_)));
}

const NOW: i64 = 1_700_000_000_000_000;
const LATER: i64 = NOW + 3_600_000_000;

fn new_session(id: &str, user_id: i64, token_hash: &str) -> NewSession {
    NewSession {
        id: id.to_owned(),
        user_id,
        refresh_token_hash: token_hash.to_owned(),
        created_at: NOW,
        refresh_expires_at: LATER,
    }
}

fn next_token(hash: &str, now: i64) -> NextRefreshToken {
    NextRefreshToken { hash: hash.to_owned(), now, expires_at: LATER }
}

async fn a_refresh_token_rotates_once_and_is_then_spent(store: &dyn UserStore) {
    let user = store.create_user(new_user("erin")).await.unwrap();
    store.create_session(new_session("s1", user.id, "h1")).await.unwrap();
    assert_eq!(store.find_active_session_user("s1").await.unwrap(), Some(user.clone()));

    let rotated = store.rotate_refresh_token("h1", next_token("h2", NOW + 1)).await.unwrap();
    assert_eq!(rotated, Rotation::Rotated { session_id: "s1".into(), user: user.clone() });
    let again = store.rotate_refresh_token("h1", next_token("h3", NOW + 2)).await.unwrap();
    assert_eq!(again, Rotation::AlreadySpent { session_id: "s1".into(), rotated_at: NOW + 1 });
    let unknown = store.rotate_refresh_token("nope", next_token("h4", NOW + 2)).await.unwrap();
    assert_eq!(unknown, Rotation::Invalid);
    let expired = store.rotate_refresh_token("h2", next_token("h5", LATER + 1)).await.unwrap();
    assert_eq!(expired, Rotation::Invalid);
    assert!(matches!(
        store.rotate_refresh_token("h2", next_token("h6", NOW + 3)).await.unwrap(),
        Rotation::Rotated { .. }
    ));
    assert_eq!(store.session_of_refresh_token("h1").await.unwrap().as_deref(), Some("s1"));
}

async fn a_revoked_session_refreshes_no_more_and_enters_the_feed(store: &dyn UserStore) {
    let user = store.create_user(new_user("frank")).await.unwrap();
    store.create_session(new_session("s1", user.id, "h1")).await.unwrap();
    store.create_session(new_session("s2", user.id, "h2")).await.unwrap();

    assert!(store.revoke_session("s1", NOW + 10, LATER).await.unwrap());
    assert!(!store.revoke_session("s1", NOW + 11, LATER).await.unwrap(), "ending an ended session");

    assert_eq!(store.rotate_refresh_token("h1", next_token("h3", NOW + 12)).await.unwrap(), Rotation::Invalid);
    assert_eq!(store.find_active_session_user("s1").await.unwrap(), None);
    assert!(store.find_active_session_user("s2").await.unwrap().is_some());
    let feed = store.list_revocations(0, 0, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!((feed[0].kind.as_str(), feed[0].subject.as_str()), ("session", "s1"));
    assert_eq!((feed[0].revoked_at, feed[0].relevant_until), (NOW + 10, LATER));
    assert!(store.list_revocations(NOW + 11, 0, 10).await.unwrap().is_empty(), "since filters");
    assert!(store.list_revocations(0, feed[0].id, 10).await.unwrap().is_empty(), "cursor pages");
}

async fn a_password_change_ends_every_session_in_one_go(store: &dyn UserStore) {
    let user = store.create_user(new_user("grace")).await.unwrap();
    let other = store.create_user(new_user("heidi")).await.unwrap();
    for (session, hash) in [("g1", "gh1"), ("g2", "gh2")] {
        store.create_session(new_session(session, user.id, hash)).await.unwrap();
    }
    store.create_session(new_session("o1", other.id, "oh1")).await.unwrap();

    let ended = store.change_password(user.id, "$argon2id$new", NOW + 5, LATER).await.unwrap();

    assert_eq!(ended, 2);
    assert_eq!(store.find_user_by_public_id(&user.public_id).await.unwrap().unwrap().password_hash, "$argon2id$new");
    assert_eq!(store.find_active_session_user("g1").await.unwrap(), None);
    assert_eq!(store.find_active_session_user("g2").await.unwrap(), None);
    assert!(store.find_active_session_user("o1").await.unwrap().is_some(), "another user's session stays");
    let mut revoked: Vec<String> =
        store.list_revocations(0, 0, 10).await.unwrap().into_iter().map(|row| row.subject).collect();
    revoked.sort();
    assert_eq!(revoked, ["g1", "g2"]);
    assert_eq!(store.revoke_user_sessions(other.id, NOW + 6, LATER).await.unwrap(), 1);
}

const SECOND: i64 = 1_000_000;
/// The longest an access token lives in the sweep tests: seconds, not
/// minutes, so that a little churn covers every case.
const ACCESS: Duration = Duration::from_secs(2);
const RETENTION: Duration = Duration::from_secs(10);
/// When the sweep tests sweep.
const SWEPT_AT: i64 = NOW + 100 * SECOND;

fn session_at(id: &str, user_id: i64, token_hash: &str, expires_at: i64) -> NewSession {
    NewSession { refresh_expires_at: expires_at, ..new_session(id, user_id, token_hash) }
}

/// Attempts counted at unix second `at`.
async fn failed_logins(store: &dyn UserStore, name_key: &str, at: i64, throttle: LoginThrottle) {
    assert_eq!(store.count_login_attempt(name_key, at, throttle).await.unwrap(), LoginAttempt::Allowed);
}

async fn revocations_stay_in_the_feed_until_swept(store: &dyn UserStore) {
    let user = store.create_user(new_user("ivan")).await.unwrap();
    store.create_session(new_session("s1", user.id, "h1")).await.unwrap();
    store.create_session(new_session("s2", user.id, "h2")).await.unwrap();
    store.revoke_session("s1", NOW, NOW + 10).await.unwrap();

    // Ending another session no longer deletes anything on the way.
    store.revoke_session("s2", NOW + 20, LATER).await.unwrap();

    let feed: Vec<String> =
        store.list_revocations(0, 0, 10).await.unwrap().into_iter().map(|row| row.subject).collect();
    assert_eq!(feed, ["s1", "s2"]);
}

/// Churn with lifetimes of seconds, then a sweep: every stale row goes,
/// every live one stays; a second sweep finds nothing; a sweep long after
/// leaves nothing.
async fn a_sweep_after_churn_deletes_every_stale_row_and_nothing_live(store: &dyn UserStore) {
    // Arrange
    let user = store.create_user(new_user("mia")).await.unwrap();
    let live_until = SWEPT_AT + 60 * SECOND;
    store.create_session(session_at("open-live", user.id, "h-live", live_until)).await.unwrap();
    // Expired, but not yet for a whole access token lifetime: kept.
    store.create_session(session_at("open-just-expired", user.id, "h-just", SWEPT_AT - SECOND)).await.unwrap();
    store.create_session(session_at("open-expired", user.id, "h-expired", NOW + 10 * SECOND)).await.unwrap();
    store.create_session(session_at("rotated", user.id, "h-spent", NOW + 10 * SECOND)).await.unwrap();
    let rotated = store.rotate_refresh_token("h-spent", next_token("h-next", NOW + 5 * SECOND)).await.unwrap();
    assert!(matches!(rotated, Rotation::Rotated { .. }));
    store.create_session(session_at("ended-long-ago", user.id, "h-ended", live_until)).await.unwrap();
    let ended = NOW + 5 * SECOND;
    store.revoke_session("ended-long-ago", ended, ended + micros(ACCESS)).await.unwrap();
    store.create_session(session_at("ended-recently", user.id, "h-ended-recently", live_until)).await.unwrap();
    let ended = SWEPT_AT - SECOND;
    store.revoke_session("ended-recently", ended, ended + micros(ACCESS)).await.unwrap();
    let gone_long_ago = store.create_user(new_user("gone-long-ago")).await.unwrap();
    store.delete_user(gone_long_ago.id, NOW + SECOND, NOW + SECOND + micros(ACCESS)).await.unwrap();
    let gone_recently = store.create_user(new_user("gone-recently")).await.unwrap();
    let deleted = SWEPT_AT - 5 * SECOND;
    store.delete_user(gone_recently.id, deleted, deleted + micros(ACCESS)).await.unwrap();
    let now_secs = SWEPT_AT / SECOND;
    let forgotten = now_secs - secs(LoginThrottle::FORGET_AFTER) - 100;
    failed_logins(store, "idle-for-long", forgotten, LoginThrottle::DEFAULT).await;
    failed_logins(store, "recent", now_secs - 10, LoginThrottle::DEFAULT).await;
    // Idle for long, but locked for longer still (a longest wait of days).
    let days = LoginThrottle {
        free_attempts: 1,
        delay: Duration::from_secs(3 * 86_400),
        max_delay: Duration::from_secs(3 * 86_400),
    };
    failed_logins(store, "locked", forgotten, days).await;

    // Act
    let report = store.sweep(SweepCutoffs::at(SWEPT_AT, ACCESS, RETENTION)).await.unwrap();

    // Assert
    // h-ended goes with its session, uncounted.
    let expected =
        SweepReport { refresh_tokens: 2, sessions: 2, session_revocations: 1, deleted_users: 1, login_failures: 1 };
    assert_eq!(report, expected);
    for gone in ["h-expired", "h-spent", "h-ended"] {
        assert_eq!(store.session_of_refresh_token(gone).await.unwrap(), None, "{gone}");
    }
    for (kept, session) in [
        ("h-live", "open-live"),
        ("h-just", "open-just-expired"),
        ("h-next", "rotated"),
        ("h-ended-recently", "ended-recently"),
    ] {
        assert_eq!(store.session_of_refresh_token(kept).await.unwrap().as_deref(), Some(session), "{kept}");
    }
    for open in ["open-live", "open-just-expired", "rotated"] {
        assert!(store.find_active_session_user(open).await.unwrap().is_some(), "{open}");
    }
    let refreshed = store.rotate_refresh_token("h-live", next_token("h-live-2", SWEPT_AT)).await.unwrap();
    assert!(matches!(refreshed, Rotation::Rotated { .. }), "a live token still refreshes");
    let feed: Vec<(String, String)> = store
        .list_revocations(0, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.kind.as_str().to_owned(), row.subject))
        .collect();
    assert_eq!(
        feed,
        [("session".to_owned(), "ended-recently".to_owned()), ("user".to_owned(), gone_recently.public_id.clone())]
    );
    let still_locked = store.count_login_attempt("locked", now_secs, days).await.unwrap();
    assert!(matches!(still_locked, LoginAttempt::Wait { .. }), "{still_locked:?}");
    assert_eq!(store.sweep(SweepCutoffs::at(SWEPT_AT, ACCESS, RETENTION)).await.unwrap(), SweepReport::default());

    // Long after, every row is stale.
    let later = SWEPT_AT + 40 * 86_400 * SECOND;
    let report = store.sweep(SweepCutoffs::at(later, ACCESS, RETENTION)).await.unwrap();
    let expected =
        SweepReport { refresh_tokens: 5, sessions: 4, session_revocations: 1, deleted_users: 1, login_failures: 2 };
    assert_eq!(report, expected);
    assert!(store.list_revocations(0, 0, 10).await.unwrap().is_empty());
    assert_eq!(store.find_user_by_public_id(&user.public_id).await.unwrap(), Some(user), "users are never swept");
}

/// More stale rows than one batch, old live sessions and long-ended ones
/// among them, swept by
/// two sweeps at once (two replicas): each stale row is deleted once, live
/// rows stay.
async fn sweeps_running_at_once_delete_every_row_once(store: &dyn UserStore) {
    const STALE: i64 = 1100;
    let user = store.create_user(new_user("nina")).await.unwrap();
    let live_until = SWEPT_AT + 60 * SECOND;
    for i in 0..STALE {
        let stale = NewSession {
            created_at: NOW + i * 10,
            ..session_at(&format!("s{i}"), user.id, &format!("h{i}"), NOW + SECOND)
        };
        store.create_session(stale).await.unwrap();
        if i % 100 == 0 {
            let live = NewSession {
                created_at: NOW + i * 10 + 5,
                ..session_at(&format!("live{i}"), user.id, &format!("live-h{i}"), live_until)
            };
            store.create_session(live).await.unwrap();
            let ended = format!("ended{i}");
            store.create_session(session_at(&ended, user.id, &format!("ended-h{i}"), live_until)).await.unwrap();
            store.revoke_session(&ended, NOW + SECOND, NOW + SECOND + micros(ACCESS)).await.unwrap();
        }
    }
    let ended = (0..STALE).step_by(100).count() as u64;
    let cutoffs = SweepCutoffs::at(SWEPT_AT, ACCESS, RETENTION);

    let (first, second) = tokio::join!(store.sweep(cutoffs), store.sweep(cutoffs));

    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.refresh_tokens + second.refresh_tokens, STALE.unsigned_abs());
    assert_eq!(first.sessions + second.sessions, STALE.unsigned_abs() + ended);
    assert_eq!(first.session_revocations + second.session_revocations, ended);
    for i in (0..STALE).step_by(100) {
        assert!(store.find_active_session_user(&format!("live{i}")).await.unwrap().is_some(), "live{i}");
    }
    assert_eq!(store.sweep(cutoffs).await.unwrap(), SweepReport::default());
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap()
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap()
}

async fn deleting_a_user_removes_sessions_and_frees_the_name(store: &dyn UserStore) {
    let user = store.create_user(new_user("kate")).await.unwrap();
    store.create_session(new_session("s1", user.id, "h1")).await.unwrap();

    assert!(store.delete_user(user.id, NOW, LATER).await.unwrap());
    assert!(!store.delete_user(user.id, NOW, LATER).await.unwrap(), "already gone");

    assert_eq!(store.find_user_by_name_key("kate").await.unwrap(), None);
    assert_eq!(store.find_active_session_user("s1").await.unwrap(), None);
    assert_eq!(store.session_of_refresh_token("h1").await.unwrap(), None);
    assert_eq!(store.rotate_refresh_token("h1", next_token("h2", NOW + 1)).await.unwrap(), Rotation::Invalid);
    let feed = store.list_revocations(0, 0, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!((feed[0].kind.as_str(), feed[0].subject.as_str()), ("user", user.public_id.as_str()));
    let again = store.create_user(new_user("kate")).await.unwrap();
    assert_ne!(again.public_id, user.public_id);
}

async fn only_the_public_ids_of_existing_users_are_found(store: &dyn UserStore) {
    let kept = store.create_user(new_user("olga")).await.unwrap();
    let gone = store.create_user(new_user("pete")).await.unwrap();
    store.delete_user(gone.id, NOW, LATER).await.unwrap();
    let asked = [gone.public_id.clone(), kept.public_id.clone(), "never".to_owned(), kept.public_id.clone()];

    assert_eq!(store.find_existing_public_ids(&asked).await.unwrap(), [kept.public_id.as_str()]);
    assert!(store.find_existing_public_ids(&[]).await.unwrap().is_empty());
    let most = vec![kept.public_id.clone(); auth_service::store::MAX_PUBLIC_IDS_PER_QUERY];
    assert_eq!(store.find_existing_public_ids(&most).await.unwrap(), [kept.public_id.as_str()]);
    let too_many = vec![kept.public_id; auth_service::store::MAX_PUBLIC_IDS_PER_QUERY + 1];
    let error = store.find_existing_public_ids(&too_many).await.unwrap_err();
    assert!(matches!(error, Error::InvalidArgument { .. }), "{error:?}");
}

async fn a_rehash_replaces_only_the_hash_it_read(store: &dyn UserStore) {
    let user = store.create_user(new_user("leo")).await.unwrap();
    assert!(!store.update_password_hash(user.id, "$other", "$rehashed").await.unwrap());
    assert!(store.update_password_hash(user.id, &user.password_hash, "$rehashed").await.unwrap());
    assert_eq!(store.find_user_by_name_key("leo").await.unwrap().unwrap().password_hash, "$rehashed");
}

/// Two free attempts, then waits of 10 s, 20 s, ... up to 25 s.
const SHORT_WAITS: LoginThrottle =
    LoginThrottle { free_attempts: 2, delay: Duration::from_secs(10), max_delay: Duration::from_secs(25) };

async fn login_attempts_past_the_free_ones_wait_twice_as_long_each_time(store: &dyn UserStore) {
    let at = 1_000;
    failed_logins(store, "rita", at, SHORT_WAITS).await;
    failed_logins(store, "rita", at, SHORT_WAITS).await;

    assert_eq!(
        store.count_login_attempt("rita", at + 5, SHORT_WAITS).await.unwrap(),
        LoginAttempt::Wait { seconds: 5 }
    );
    failed_logins(store, "rita", at + 10, SHORT_WAITS).await;
    assert_eq!(
        store.count_login_attempt("rita", at + 10, SHORT_WAITS).await.unwrap(),
        LoginAttempt::Wait { seconds: 20 }
    );
    failed_logins(store, "rita", at + 30, SHORT_WAITS).await;
    let capped = store.count_login_attempt("rita", at + 31, SHORT_WAITS).await.unwrap();
    assert_eq!(capped, LoginAttempt::Wait { seconds: 24 }, "at most max_delay");
    assert_eq!(
        store.count_login_attempt("sam", at + 31, SHORT_WAITS).await.unwrap(),
        LoginAttempt::Allowed,
        "per name"
    );
}

async fn login_attempts_are_forgotten_when_cleared_or_long_idle(store: &dyn UserStore) {
    let at = 1_000;
    for name in ["tess", "uma"] {
        failed_logins(store, name, at, SHORT_WAITS).await;
        failed_logins(store, name, at, SHORT_WAITS).await;
    }

    store.clear_login_attempts("tess").await.unwrap();

    failed_logins(store, "tess", at + 1, SHORT_WAITS).await;
    failed_logins(store, "tess", at + 1, SHORT_WAITS).await;
    assert_eq!(store.count_login_attempt("uma", at + 1, SHORT_WAITS).await.unwrap(), LoginAttempt::Wait { seconds: 9 });
    let idle = at + secs(LoginThrottle::FORGET_AFTER) + 1;
    failed_logins(store, "uma", idle, SHORT_WAITS).await;
    failed_logins(store, "uma", idle, SHORT_WAITS).await;
    assert_eq!(store.count_login_attempt("uma", idle, SHORT_WAITS).await.unwrap(), LoginAttempt::Wait { seconds: 10 });
}

/// Past 64 doublings a shift would overflow: the wait stays the longest.
async fn login_waits_stay_the_longest_however_many_attempts_came_before(store: &dyn UserStore) {
    let throttle = LoginThrottle { free_attempts: 1, delay: Duration::from_secs(1), max_delay: Duration::from_secs(2) };
    let mut at = 1_000;
    for attempt in 1..=70 {
        failed_logins(store, "vic", at, throttle).await;
        let wait = store.count_login_attempt("vic", at, throttle).await.unwrap();
        let expected = if attempt == 1 { 1 } else { 2 };
        assert_eq!(wait, LoginAttempt::Wait { seconds: expected }, "after attempt {attempt}");
        at += expected;
    }
}

fn user_record(id: i64, name: &str) -> UserRecord {
    let user = new_user(name);
    UserRecord {
        id,
        public_id: user.public_id,
        name: user.name,
        name_key: user.name_key,
        password_hash: user.password_hash,
        admin: true,
        created_at: user.created_at,
    }
}

async fn imported_users_keep_their_ids_and_new_ids_come_after_them(store: &dyn UserStore) {
    // Arrange
    let existing = store.create_user(new_user("wendy")).await.unwrap();
    let imported = [user_record(existing.id + 10, "xena"), user_record(existing.id + 20, "yuri")];
    let batch = [existing.clone(), imported[0].clone(), imported[1].clone()];

    // Act
    let inserted = store.import_users(&batch).await.unwrap();

    // Assert
    assert_eq!(inserted, 2, "ids already present are skipped");
    assert_eq!(store.import_users(&batch).await.unwrap(), 0, "again: nothing new");
    for user in &imported {
        assert_eq!(store.find_user_by_name_key(&user.name_key).await.unwrap().as_ref(), Some(user));
    }
    assert_eq!(store.find_user_by_name_key("wendy").await.unwrap(), Some(existing));
    assert_eq!(store.count_users().await.unwrap(), 3);
    let next = store.create_user(new_user("zoe")).await.unwrap();
    assert!(next.id > imported[1].id, "{} after {}", next.id, imported[1].id);
}

async fn an_import_with_a_taken_name_is_already_exists_and_imports_nothing(store: &dyn UserStore) {
    let existing = store.create_user(new_user("abel")).await.unwrap();
    let batch = [user_record(existing.id + 1, "bea"), user_record(existing.id + 2, "ABEL")];

    let error = store.import_users(&batch).await.unwrap_err();

    assert!(matches!(error, Error::AlreadyExists(_)), "{error:?}");
    assert_eq!(store.find_user_by_name_key("bea").await.unwrap(), None, "one transaction");
    assert_eq!(store.count_users().await.unwrap(), 1);
}

bookstore_testing::store_contract!(
    connect: auth_service::store::connect,
    call: |store| &*store;
    created_users_are_found_by_name_key_and_public_id,
    a_taken_name_key_is_already_exists,
    users_list_in_id_order_after_a_cursor,
    set_admin_flips_the_flag_or_is_not_found,
    a_refresh_token_rotates_once_and_is_then_spent,
    a_revoked_session_refreshes_no_more_and_enters_the_feed,
    a_password_change_ends_every_session_in_one_go,
    revocations_stay_in_the_feed_until_swept,
    a_sweep_after_churn_deletes_every_stale_row_and_nothing_live,
    sweeps_running_at_once_delete_every_row_once,
    deleting_a_user_removes_sessions_and_frees_the_name,
    a_rehash_replaces_only_the_hash_it_read,
    only_the_public_ids_of_existing_users_are_found,
    login_attempts_past_the_free_ones_wait_twice_as_long_each_time,
    login_attempts_are_forgotten_when_cleared_or_long_idle,
    login_waits_stay_the_longest_however_many_attempts_came_before,
    imported_users_keep_their_ids_and_new_ids_come_after_them,
    an_import_with_a_taken_name_is_already_exists_and_imports_nothing,
);

/// On PostgreSQL the sweep takes only rows nobody has locked: a
/// transaction holding a stale row (a request in the middle of its work)
/// neither blocks the sweep nor loses the row under it; the next sweep
/// takes it.
#[tokio::test]
async fn on_postgres_a_sweep_skips_rows_another_transaction_holds() {
    // Arrange: two stale sessions; another transaction holds one's token.
    let Some(database) = TestDatabase::postgres().await else { return };
    let store = auth_service::store::connect(&database.url).await.unwrap();
    let user = store.create_user(new_user("quinn")).await.unwrap();
    for (session, hash) in [("held", "h-held"), ("free", "h-free")] {
        store.create_session(session_at(session, user.id, hash, NOW + SECOND)).await.unwrap();
    }
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("select 1 from refresh_tokens where token_hash = 'h-held' for update")
        .execute(&mut *holder)
        .await
        .unwrap();
    let cutoffs = SweepCutoffs::at(SWEPT_AT, ACCESS, RETENTION);

    // Act
    let swept = tokio::time::timeout(Duration::from_secs(5), store.sweep(cutoffs)).await;

    // Assert
    let swept = swept.expect("the sweep waited for a row another transaction holds").unwrap();
    assert_eq!((swept.refresh_tokens, swept.sessions), (1, 1), "{swept:?}");
    assert_eq!(store.session_of_refresh_token("h-held").await.unwrap().as_deref(), Some("held"));
    holder.commit().await.unwrap();
    let swept = store.sweep(cutoffs).await.unwrap();
    assert_eq!((swept.refresh_tokens, swept.sessions), (1, 1), "{swept:?}");
    store.close().await;
    pool.close().await;
    database.cleanup().await;
}
