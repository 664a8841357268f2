//! The trussed backends opcard needs, wired into one `ExtensionDispatch`.
//!
//! opcard talks to trussed through the core API plus three extensions: trussed-auth (PINs),
//! wrap-key-to-file and chunked (from trussed-staging). RSA comes from trussed-rsa-alloc,
//! brainpool from our own `brainpool` backend.

use trussed::{
    backend::{Backend as _, BackendId},
    platform::Platform,
    serde_extensions::{ExtensionDispatch, ExtensionId, ExtensionImpl},
    service::ServiceResources,
    types::Context,
};
use trussed_auth::AuthExtension;
use trussed_auth_backend::{AuthBackend, AuthContext, FilesystemLayout};
use trussed_chunked::ChunkedExtension;
use trussed_core::{
    api::{reply, request, Reply, Request},
    types::{Bytes, Location},
    Error,
};
use trussed_rsa_alloc::SoftwareRsa;

use crate::brainpool::SoftwareBrainpool;
use trussed_staging::{StagingBackend, StagingContext};
use trussed_wrap_key_to_file::WrapKeyToFileExtension;

/// Order matters: trussed asks each backend in turn, core last.
pub const BACKENDS: &[BackendId<BackendKind>] = &[
    BackendId::Custom(BackendKind::Staging),
    BackendId::Custom(BackendKind::Auth),
    BackendId::Custom(BackendKind::Rsa),
    BackendId::Custom(BackendKind::Brainpool),
    BackendId::Core,
];

#[derive(Debug, Clone, Copy)]
pub enum BackendKind {
    Auth,
    Staging,
    Rsa,
    Brainpool,
}

#[derive(Debug, Clone, Copy)]
pub enum ExtensionKind {
    Auth,
    WrapKeyToFile,
    Chunked,
}

impl From<ExtensionKind> for u8 {
    fn from(kind: ExtensionKind) -> u8 {
        kind as u8
    }
}

impl TryFrom<u8> for ExtensionKind {
    type Error = Error;
    fn try_from(id: u8) -> Result<Self, Error> {
        [Self::Auth, Self::WrapKeyToFile, Self::Chunked]
            .into_iter()
            .find(|kind| *kind as u8 == id)
            .ok_or(Error::InternalError)
    }
}

pub struct CardDispatch {
    auth: AuthBackend,
    staging: StagingBackend,
}

#[derive(Default)]
pub struct CardDispatchContext {
    auth: AuthContext,
    staging: StagingContext,
}

impl CardDispatch {
    pub fn new() -> Self {
        // A fixed "hardware key": the virtual card is for tests, and its state files must stay
        // readable across restarts.
        let hw_key = Bytes::from(b"cardecrypt virtual card");
        CardDispatch {
            auth: AuthBackend::with_hw_key(Location::Internal, hw_key, FilesystemLayout::V0),
            staging: StagingBackend::new(),
        }
    }
}

impl ExtensionDispatch for CardDispatch {
    type BackendId = BackendKind;
    type Context = CardDispatchContext;
    type ExtensionId = ExtensionKind;

    fn core_request<P: Platform>(
        &mut self,
        backend: &BackendKind,
        ctx: &mut Context<CardDispatchContext>,
        request: &Request,
        resources: &mut ServiceResources<P>,
    ) -> Result<Reply, Error> {
        let core = &mut ctx.core;
        match backend {
            BackendKind::Auth => {
                self.auth
                    .request(core, &mut ctx.backends.auth, request, resources)
            }
            BackendKind::Staging => {
                self.staging
                    .request(core, &mut ctx.backends.staging, request, resources)
            }
            BackendKind::Rsa => SoftwareRsa.request(core, &mut (), request, resources),
            BackendKind::Brainpool => SoftwareBrainpool.request(core, &mut (), request, resources),
        }
    }

    fn extension_request<P: Platform>(
        &mut self,
        backend: &BackendKind,
        extension: &ExtensionKind,
        ctx: &mut Context<CardDispatchContext>,
        request: &request::SerdeExtension,
        resources: &mut ServiceResources<P>,
    ) -> Result<reply::SerdeExtension, Error> {
        let core = &mut ctx.core;
        match (backend, extension) {
            (BackendKind::Auth, ExtensionKind::Auth) => self.auth.extension_request_serialized(
                core,
                &mut ctx.backends.auth,
                request,
                resources,
            ),
            (BackendKind::Staging, ExtensionKind::WrapKeyToFile) => {
                ExtensionImpl::<WrapKeyToFileExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                )
            }
            (BackendKind::Staging, ExtensionKind::Chunked) => {
                ExtensionImpl::<ChunkedExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                )
            }
            _ => Err(Error::RequestNotAvailable),
        }
    }
}

impl ExtensionId<AuthExtension> for CardDispatch {
    type Id = ExtensionKind;
    const ID: ExtensionKind = ExtensionKind::Auth;
}

impl ExtensionId<WrapKeyToFileExtension> for CardDispatch {
    type Id = ExtensionKind;
    const ID: ExtensionKind = ExtensionKind::WrapKeyToFile;
}

impl ExtensionId<ChunkedExtension> for CardDispatch {
    type Id = ExtensionKind;
    const ID: ExtensionKind = ExtensionKind::Chunked;
}
