//! Sealing one field (data or metadata) of one event under a subject's
//! key, and opening it again: the envelope's byte format
//! (`docs/FORMAT.md`, "Sealed fields"), the nonce rule, and what the
//! authentication tag binds the ciphertext to.

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};

use crate::error::Result;

/// The first byte of a sealed field: the envelope's version.
pub(crate) const SEAL_VERSION: u8 = 1;
/// Bytes of a nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Bytes of AES-GCM-SIV's authentication tag.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a sealed field adds to its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Which field of an event is sealed: bound into the authentication tag,
/// so that data and metadata cannot be swapped.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Field {
    Data,
    Metadata,
}

/// What a sealed field is bound to besides its key: the subject, the
/// event's type and id, and the field. Moving a sealed value to another
/// event (of another type, id or subject) or field makes it fail to open.
/// Not the position (unknown when sealing) nor the tags (tags may be
/// added after the fact).
pub(crate) struct Binding<'a> {
    pub(crate) subject: &'a str,
    pub(crate) event_type: &'a str,
    pub(crate) id: Option<u128>,
}

impl Binding<'_> {
    fn aad(&self, field: Field) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + self.subject.len() + self.event_type.len());
        aad.extend_from_slice(b"gesta-seal-v1");
        aad.push(match field {
            Field::Data => b'd',
            Field::Metadata => b'm',
        });
        aad.extend_from_slice(&(self.subject.len() as u32).to_le_bytes());
        aad.extend_from_slice(self.subject.as_bytes());
        aad.extend_from_slice(&(self.event_type.len() as u32).to_le_bytes());
        aad.extend_from_slice(self.event_type.as_bytes());
        match self.id {
            Some(id) => {
                aad.push(1);
                aad.extend_from_slice(&id.to_be_bytes());
            }
            None => aad.push(0),
        }
        aad
    }
}

/// The nonce of an event: derived from its id when it has one, so that an
/// idempotent retry of the batch seals to the very same bytes (the stores
/// compare a retry's content with what they hold); random otherwise.
///
/// The 128-bit id is folded into 96 bits (its last 32 bits XORed into its
/// first 32), so two ids may share a nonce. AES-GCM-SIV is built for that:
/// a repeated nonce reveals only whether two sealed values under the same
/// key, nonce and binding are the same plaintext — and the binding holds
/// the id, so for two different ids the tags differ anyway.
pub(crate) fn nonce_for(id: Option<u128>) -> Result<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    match id {
        Some(id) => {
            let b = id.to_be_bytes();
            nonce.copy_from_slice(&b[..NONCE_LEN]);
            for i in 0..4 {
                nonce[i] ^= b[NONCE_LEN + i];
            }
        }
        None => super::random(&mut nonce)?,
    }
    Ok(nonce)
}

/// Seals `plain` (not empty) under `cipher`: version, nonce, ciphertext
/// with its tag.
pub(crate) fn seal(
    cipher: &Aes256GcmSiv,
    nonce: &[u8; NONCE_LEN],
    binding: &Binding<'_>,
    field: Field,
    plain: &[u8],
) -> Vec<u8> {
    let aad = binding.aad(field);
    let sealed = cipher.encrypt(
        Nonce::from_slice(nonce),
        Payload {
            msg: plain,
            aad: &aad,
        },
    );
    // AES-GCM-SIV fails only on plaintexts over 2^36 bytes; events are at
    // most MAX_DATA_LEN (16 MiB), checked before sealing.
    let sealed = sealed.unwrap_or_default();
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(SEAL_VERSION);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens a sealed field; the reason it cannot be opened otherwise.
pub(crate) fn open(
    cipher: &Aes256GcmSiv,
    binding: &Binding<'_>,
    field: Field,
    sealed: &[u8],
) -> Result<Vec<u8>, &'static str> {
    if sealed.len() < OVERHEAD {
        return Err("the sealed value is shorter than its envelope");
    }
    if sealed[0] != SEAL_VERSION {
        return Err("unknown envelope version");
    }
    let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
    let aad = binding.aad(field);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: &aad,
            },
        )
        .map_err(|_| "authentication failed: the ciphertext or its binding was changed")
}

/// The cipher of a key.
pub(crate) fn cipher(key: &[u8; super::keys::KEY_LEN]) -> Aes256GcmSiv {
    Aes256GcmSiv::new(key.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(id: Option<u128>) -> Binding<'static> {
        Binding {
            subject: "alice",
            event_type: "Registered",
            id,
        }
    }

    #[test]
    fn same_id_seals_to_the_same_bytes_and_opens() {
        let c = cipher(&[1; 32]);
        let n = nonce_for(Some(42)).unwrap();
        let a = seal(&c, &n, &binding(Some(42)), Field::Data, b"secret");
        let b = seal(
            &c,
            &nonce_for(Some(42)).unwrap(),
            &binding(Some(42)),
            Field::Data,
            b"secret",
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 6 + OVERHEAD);
        assert_eq!(
            open(&c, &binding(Some(42)), Field::Data, &a).unwrap(),
            b"secret"
        );
    }

    #[test]
    fn a_changed_byte_binding_or_field_fails_to_open() {
        let c = cipher(&[1; 32]);
        let n = nonce_for(None).unwrap();
        let sealed = seal(&c, &n, &binding(None), Field::Data, b"secret");
        for i in 0..sealed.len() {
            let mut s = sealed.clone();
            s[i] ^= 0x20;
            assert!(
                open(&c, &binding(None), Field::Data, &s).is_err(),
                "byte {i}"
            );
        }
        assert!(open(&c, &binding(None), Field::Metadata, &sealed).is_err());
        assert!(open(&c, &binding(Some(1)), Field::Data, &sealed).is_err());
        assert!(open(&cipher(&[2; 32]), &binding(None), Field::Data, &sealed).is_err());
        assert!(open(&c, &binding(None), Field::Data, &sealed[..OVERHEAD - 1]).is_err());
    }
}
