//! A resource's identity: the uid (a random UUID, version 4) and creationTimestamp given at
//! create, kept by every later write, and the check that refuses a document naming another
//! object's uid (as the Kubernetes API server refuses an update whose uid differs). Pure
//! except for the random number generator and the clock in `stamp_new`.

use manul_store::ResourceMeta;

use crate::fields::FieldError;

/// A new resource's identity: a fresh uid and the current time, whatever the document said.
pub fn stamp_new(metadata: &mut ResourceMeta) {
    metadata.stamp_new();
}

/// An update's identity: the stored one, kept. A document that names a uid other than the
/// stored one is refused (it describes another object: the one it was read from was deleted
/// and created again); its creationTimestamp is ignored. A stored record older than uids
/// gets a fresh identity on this write.
pub fn keep_stored(metadata: &mut ResourceMeta, stored: &ResourceMeta) -> Result<(), FieldError> {
    if !stored.uid.is_empty() && !metadata.uid.is_empty() && metadata.uid != stored.uid {
        return Err(FieldError::new(
            "metadata.uid",
            format!(
                "{:?} is not the uid of the stored object ({:?}): it was deleted and created \
                 again since this document was read; get it again, or remove metadata.uid",
                metadata.uid, stored.uid
            ),
        ));
    }
    metadata.keep_identity(stored);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_keeps_the_stored_identity_and_refuses_another_uid() {
        let stored = ResourceMeta {
            uid: "u1".into(),
            creation_timestamp: "2026-12-06T17:30:05Z".into(),
            ..Default::default()
        };
        let mut given = ResourceMeta {
            creation_timestamp: "1999-01-01T00:00:00Z".into(),
            ..Default::default()
        };
        keep_stored(&mut given, &stored).unwrap();
        assert_eq!(
            (given.uid.as_str(), given.creation_timestamp.as_str()),
            ("u1", "2026-12-06T17:30:05Z")
        );
        let mut other = ResourceMeta {
            uid: "u2".into(),
            ..Default::default()
        };
        assert_eq!(
            keep_stored(&mut other, &stored).unwrap_err().field,
            "metadata.uid"
        );
        let mut old = ResourceMeta::default();
        keep_stored(&mut old, &ResourceMeta::default()).unwrap();
        assert_eq!(old.uid.len(), 36);
        assert!(old.creation_timestamp.ends_with('Z'));
    }
}
