//! Brainpool P-256 and P-384 for the virtual card, in software.
//!
//! opcard speaks brainpool (import, key generation, ECDH) through trussed's mechanisms, but
//! trussed's virtual platform implements none, so our brainpool support never ran. This
//! backend does the few requests opcard makes for those curves with RustCrypto's `bp256` and
//! `bp384`: keys in, public keys out (raw X || Y, as trussed's NIST curves), and ECDH. The
//! card's signing with brainpool is not needed by cardecrypt and is left out. P-512 has no
//! maintained RustCrypto crate with arithmetic, so it stays unsupported.
//!
//! Everything else is passed on (`RequestNotAvailable`) to the next backend.

use trussed::{
    backend::Backend, key, platform::Platform, service::ServiceResources, store::Keystore,
    types::CoreContext,
};
use trussed_core::{
    api::{reply, Reply, Request},
    types::{KeyId, KeySerialization, Mechanism, SerializedKey},
    Error,
};

use elliptic_curve::{PublicKey, SecretKey};

/// The brainpool curves this backend handles.
#[derive(Clone, Copy)]
enum Curve {
    P256,
    P384,
}

impl Curve {
    fn of(mechanism: Mechanism) -> Result<Curve, Error> {
        match mechanism {
            Mechanism::BrainpoolP256R1 => Ok(Curve::P256),
            Mechanism::BrainpoolP384R1 => Ok(Curve::P384),
            _ => Err(Error::RequestNotAvailable),
        }
    }

    fn kind(self) -> key::Kind {
        match self {
            Curve::P256 => key::Kind::BrainpoolP256R1,
            Curve::P384 => key::Kind::BrainpoolP384R1,
        }
    }

    fn scalar_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

/// The curve arithmetic, once per curve.
macro_rules! arithmetic {
    ($curve:ty) => {
        /// Whether `secret` is a valid secret scalar (1 <= d < n).
        pub(super) fn valid_secret(secret: &[u8]) -> bool {
            SecretKey::<$curve>::from_slice(secret).is_ok()
        }

        /// X || Y of the public key of `secret`.
        pub(super) fn public_of(secret: &[u8]) -> Result<Vec<u8>, Error> {
            let secret =
                SecretKey::<$curve>::from_slice(secret).map_err(|_| Error::InvalidSerializedKey)?;
            Ok(secret.public_key().to_sec1_bytes()[1..].to_vec())
        }

        /// X || Y if it is a point of the curve.
        pub(super) fn checked_public(xy: &[u8]) -> Result<PublicKey<$curve>, Error> {
            let mut sec1 = Vec::with_capacity(1 + xy.len());
            sec1.push(0x04);
            sec1.extend_from_slice(xy);
            PublicKey::<$curve>::from_sec1_bytes(&sec1).map_err(|_| Error::InvalidSerializedKey)
        }

        /// The X coordinate of `secret` times the point `xy`.
        pub(super) fn agree(secret: &[u8], xy: &[u8]) -> Result<Vec<u8>, Error> {
            let secret =
                SecretKey::<$curve>::from_slice(secret).map_err(|_| Error::InvalidSerializedKey)?;
            let shared = secret.diffie_hellman(&checked_public(xy)?);
            Ok(shared.raw_secret_bytes().to_vec())
        }
    };
}

mod p256 {
    use super::*;
    arithmetic!(bp256::BrainpoolP256r1);
}

mod p384 {
    use super::*;
    arithmetic!(bp384::BrainpoolP384r1);
}

impl Curve {
    fn valid(self, secret: &[u8]) -> bool {
        secret.len() == self.scalar_len()
            && match self {
                Curve::P256 => p256::valid_secret(secret),
                Curve::P384 => p384::valid_secret(secret),
            }
    }

    fn public(self, secret: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            Curve::P256 => p256::public_of(secret),
            Curve::P384 => p384::public_of(secret),
        }
    }

    fn check(self, xy: &[u8]) -> Result<(), Error> {
        if xy.len() != 2 * self.scalar_len() {
            return Err(Error::InvalidSerializedKey);
        }
        match self {
            Curve::P256 => p256::checked_public(xy).map(drop),
            Curve::P384 => p384::checked_public(xy).map(drop),
        }
    }

    fn agree(self, secret: &[u8], xy: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            Curve::P256 => p256::agree(secret, xy),
            Curve::P384 => p384::agree(secret, xy),
        }
    }
}

/// The trussed backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct SoftwareBrainpool;

fn load(
    keystore: &mut impl Keystore,
    secrecy: key::Secrecy,
    curve: Curve,
    id: &KeyId,
) -> Result<Vec<u8>, Error> {
    Ok(keystore
        .load_key(secrecy, Some(curve.kind()), id)?
        .material
        .to_vec())
}

fn generate(keystore: &mut impl Keystore, curve: Curve) -> Result<Vec<u8>, Error> {
    use rand_core::RngCore;
    let mut secret = vec![0u8; curve.scalar_len()];
    loop {
        keystore.rng().fill_bytes(&mut secret);
        if curve.valid(&secret) {
            return Ok(secret);
        }
    }
}

fn handle(keystore: &mut impl Keystore, request: &Request) -> Result<Reply, Error> {
    use key::Secrecy::{Public, Secret};
    match request {
        Request::GenerateKey(req) => {
            let curve = Curve::of(req.mechanism)?;
            let mut secret = generate(keystore, curve)?;
            let info = key::Info::from(curve.kind()).with_local_flag();
            let key = keystore.store_key(req.attributes.persistence, Secret, info, &secret);
            zeroize::Zeroize::zeroize(&mut secret);
            Ok(Reply::GenerateKey(reply::GenerateKey { key: key? }))
        }
        Request::UnsafeInjectKey(req) => {
            let curve = Curve::of(req.mechanism)?;
            if req.format != KeySerialization::Raw || !curve.valid(&req.raw_key) {
                return Err(Error::InvalidSerializedKey);
            }
            let key = keystore.store_key(
                req.attributes.persistence,
                Secret,
                curve.kind(),
                &req.raw_key,
            )?;
            Ok(Reply::UnsafeInjectKey(reply::UnsafeInjectKey { key }))
        }
        Request::DeriveKey(req) => {
            let curve = Curve::of(req.mechanism)?;
            let mut secret = load(keystore, Secret, curve, &req.base_key)?;
            let public = curve.public(&secret);
            zeroize::Zeroize::zeroize(&mut secret);
            let key =
                keystore.store_key(req.attributes.persistence, Public, curve.kind(), &public?)?;
            Ok(Reply::DeriveKey(reply::DeriveKey { key }))
        }
        Request::DeserializeKey(req) => {
            let curve = Curve::of(req.mechanism)?;
            if req.format != KeySerialization::Raw {
                return Err(Error::InvalidSerializationFormat);
            }
            curve.check(&req.serialized_key)?;
            let key = keystore.store_key(
                req.attributes.persistence,
                Public,
                curve.kind(),
                &req.serialized_key,
            )?;
            Ok(Reply::DeserializeKey(reply::DeserializeKey { key }))
        }
        Request::SerializeKey(req) => {
            let curve = Curve::of(req.mechanism)?;
            if req.format != KeySerialization::Raw {
                return Err(Error::InvalidSerializationFormat);
            }
            let public = load(keystore, Public, curve, &req.key)?;
            let serialized_key =
                SerializedKey::try_from(&public[..]).map_err(|_| Error::InternalError)?;
            Ok(Reply::SerializeKey(reply::SerializeKey { serialized_key }))
        }
        Request::Agree(req) => {
            let curve = Curve::of(req.mechanism)?;
            let mut secret = load(keystore, Secret, curve, &req.private_key)?;
            let public = load(keystore, Public, curve, &req.public_key)?;
            let shared = curve.agree(&secret, &public);
            zeroize::Zeroize::zeroize(&mut secret);
            let mut shared = shared?;
            let flags = if req.attributes.serializable {
                key::Flags::SERIALIZABLE
            } else {
                key::Flags::empty()
            };
            let info = key::Info {
                kind: key::Kind::Shared(shared.len()),
                flags,
            };
            let stored = keystore.store_key(req.attributes.persistence, Secret, info, &shared);
            zeroize::Zeroize::zeroize(&mut shared);
            Ok(Reply::Agree(reply::Agree {
                shared_secret: stored?,
            }))
        }
        Request::Exists(req) => {
            let curve = Curve::of(req.mechanism)?;
            let exists = keystore.exists_key(Secret, Some(curve.kind()), &req.key);
            Ok(Reply::Exists(reply::Exists { exists }))
        }
        _ => Err(Error::RequestNotAvailable),
    }
}

impl Backend for SoftwareBrainpool {
    type Context = ();

    fn request<P: Platform>(
        &mut self,
        core_ctx: &mut CoreContext,
        _backend_ctx: &mut (),
        request: &Request,
        resources: &mut ServiceResources<P>,
    ) -> Result<Reply, Error> {
        let mut keystore = resources.keystore(core_ctx.path.clone())?;
        handle(&mut keystore, request)
    }
}
