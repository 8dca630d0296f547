//! The example's state, kept in memory (a `Mutex<HashMap>`): sessions
//! (cookie value -> user name) and profiles. A restart forgets both; the
//! files stay in Chute's store.

use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// One user's profile.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Profile {
    /// The name shown on the page.
    pub display_name: String,
    /// The promoted avatar.
    pub avatar: Option<Avatar>,
    /// The promoted documents, oldest first.
    pub documents: Vec<StoredFile>,
}

/// The avatar and its thumbnail.
#[derive(Debug, Clone, Serialize)]
pub struct Avatar {
    /// The promoted original.
    pub file: StoredFile,
    /// The thumbnail's key, when Chute made one.
    pub thumb: Option<String>,
}

/// A promoted object.
#[derive(Debug, Clone, Serialize)]
pub struct StoredFile {
    /// Its key in the store (`avatars/<user>/...`, `docs/<user>/...`).
    pub key: String,
    /// The file name the user chose.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// The verified media type.
    pub content_type: String,
}

/// Sessions and profiles.
#[derive(Debug, Default)]
pub struct Memory {
    sessions: Mutex<HashMap<String, String>>,
    profiles: Mutex<HashMap<String, Profile>>,
}

/// A poisoned lock still holds consistent data here: every update is
/// one assignment.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Memory {
    /// Starts a session for `user`; answers its id.
    pub fn sign_in(&self, user: &str) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        lock(&self.sessions).insert(id.clone(), user.to_owned());
        id
    }

    /// The user of session `id`.
    pub fn user(&self, id: &str) -> Option<String> {
        lock(&self.sessions).get(id).cloned()
    }

    /// A copy of `user`'s profile.
    pub fn profile(&self, user: &str) -> Profile {
        lock(&self.profiles).get(user).cloned().unwrap_or_default()
    }

    /// Changes `user`'s profile with `f`.
    pub fn update(&self, user: &str, f: impl FnOnce(&mut Profile)) {
        f(lock(&self.profiles).entry(user.to_owned()).or_default());
    }
}
