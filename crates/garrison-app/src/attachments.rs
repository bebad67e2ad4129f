//! Incident attachments: evidence files stored by their SHA-256 (`garrison-blobs`), with their
//! metadata and timeline entries in the store.
//!
//! An upload is checked first ([`App::check_upload`]: role, name, media type, the incident),
//! then streamed to disk while it is hashed, never held in memory, and refused beyond the size
//! limit; it is acknowledged only once both the file and its record are durable. A download
//! checks the file against its hash first, so altered evidence is reported rather than served.
//! Uploads, downloads and removals go to the audit log: chain of custody.

use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use garrison_api::attachments::{AttachmentList, AttachmentView};
use garrison_blobs::{BlobError, BlobStore};
use garrison_model::{Role, Timestamp};
use garrison_store::{Attachment, IncidentRepo};

use crate::{Actor, App, AppError, Result};

/// Roles that add attachments (viewers only read; only admins remove).
pub const UPLOADERS: &[Role] = &[Role::Admin, Role::Analyst, Role::Responder];

/// Attachments whose content no longer matches its hash (or is gone). Listed in the README.
pub const ATTACHMENT_INTEGRITY_ERRORS: &str = "garrison_attachment_integrity_errors_total";

/// The attachment files and the largest one accepted.
#[derive(Clone)]
pub(crate) struct Attachments {
    pub(crate) blobs: Arc<BlobStore>,
    pub(crate) max_bytes: u64,
}

impl From<BlobError> for AppError {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::TooLarge { limit } => {
                AppError::TooLarge(format!("the attachment exceeds the limit of {limit} bytes"))
            }
            BlobError::InvalidHash(_) => AppError::Invalid(error.to_string()),
            BlobError::Corrupt { .. } => {
                tracing::error!(error = %error, "attachment failed its integrity check");
                metrics::counter!(ATTACHMENT_INTEGRITY_ERRORS).increment(1);
                AppError::Damaged(error.to_string())
            }
            BlobError::NotFound(sha) => AppError::Damaged(format!(
                "the content of attachment {sha} is missing from disk"
            )),
            BlobError::Io { .. } => AppError::internal(error),
        }
    }
}

/// The `name` parameter, checked: a plain file name, never a path.
pub fn attachment_name(name: String) -> Result<String> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > 255 {
        return Err(AppError::invalid(
            "parameter name: must have 1 to 255 characters",
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || *c == '/' || *c == '\\')
    {
        return Err(AppError::invalid(format!(
            "parameter name: {c:?} is not allowed in a file name"
        )));
    }
    Ok(name)
}

/// The declared media type, if it is a plausible one.
fn declared_type(content_type: Option<&str>) -> Result<Option<String>> {
    let Some(text) = content_type else {
        return Ok(None);
    };
    if text.len() <= 255 && text.contains('/') && !text.trim().is_empty() {
        Ok(Some(text.trim().to_string()))
    } else {
        Err(AppError::invalid("header Content-Type: not a media type"))
    }
}

/// An upload that passed its checks; only [`App::check_upload`] makes one.
#[derive(Debug)]
pub struct UploadTicket {
    incident_id: String,
    name: String,
    content_type: Option<String>,
}

/// A stored upload: the attachment, and whether it is new (the same content on the same
/// incident is one attachment).
#[derive(Debug)]
pub struct Uploaded {
    pub attachment: AttachmentView,
    pub created: bool,
}

/// An attachment ready to send: its content checked against its hash.
#[derive(Debug)]
pub struct Download {
    pub file: tokio::fs::File,
    pub size: u64,
    pub name: String,
    /// The normalised hash (lowercase hex).
    pub sha256: String,
}

impl App {
    fn attachments(&self) -> Result<&Attachments> {
        self.attachments
            .as_ref()
            .ok_or_else(|| AppError::Internal("the attachment store is not open".into()))
    }

    /// Everything an upload needs before its first byte is read: the role, the name, the
    /// declared media type (`Some("")` when it is not readable text), and an incident here
    /// that still takes changes.
    pub async fn check_upload(
        &self,
        actor: &Actor,
        incident_id: &str,
        name: String,
        content_type: Option<&str>,
    ) -> Result<UploadTicket> {
        actor.require_any(UPLOADERS)?;
        let name = attachment_name(name)?;
        let content_type = declared_type(content_type)?;
        let incident = self
            .store()
            .incident(actor.tenant, incident_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("incident {incident_id:?}")))?;
        if let Some(into) = &incident.merged_into {
            return Err(AppError::invalid(format!(
                "incident {incident_id:?} was merged into {into:?}; attach to that one"
            )));
        }
        Ok(UploadTicket {
            incident_id: incident_id.to_string(),
            name,
            content_type,
        })
    }

    /// Streams the file to disk chunk by chunk, then records it on the incident.
    pub async fn upload_attachment<S, B, E>(
        &self,
        actor: &Actor,
        ticket: UploadTicket,
        mut body: S,
    ) -> Result<Uploaded>
    where
        S: Stream<Item = std::result::Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let attachments = self.attachments()?;
        let blobs = &attachments.blobs;
        let mut writer = blobs.writer(actor.tenant, attachments.max_bytes).await?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                AppError::invalid(format!(
                    "the upload broke off after {} bytes: {e}",
                    writer.size()
                ))
            })?;
            writer.write(chunk.as_ref()).await?;
        }
        if writer.size() == 0 {
            return Err(AppError::Empty("the file is empty".into()));
        }
        // Storing the file and recording it are one step for removers (see remove).
        let guard = blobs.lock().await;
        let size = writer.size();
        let blob = writer.finish().await?;
        let id = ticket.incident_id;
        let attachment = Attachment {
            incident_id: id.clone(),
            sha256: blob.sha256.clone(),
            name: ticket.name,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            content_type: ticket.content_type,
            uploaded_by: actor.case_actor().user,
            created: Timestamp::now(),
        };
        let (stored, created) = match self.store().add_attachment(actor.tenant, &attachment).await {
            Ok(result) => result,
            Err(e) => {
                // Not recorded: the file goes unless a record holds the same content.
                let held = self
                    .store()
                    .attachment_holders(actor.tenant, &blob.sha256)
                    .await
                    .unwrap_or(1);
                if held == 0 {
                    let _ = blobs.remove(actor.tenant, &blob.sha256).await;
                }
                return Err(e.into());
            }
        };
        drop(guard);
        self.record(
            actor,
            "incident.attachment.add",
            &id,
            serde_json::json!({"sha256": stored.sha256, "name": stored.name, "size": stored.size, "new": created}),
        )
        .await;
        Ok(Uploaded {
            attachment: AttachmentView::of(&stored),
            created,
        })
    }

    /// The incident's attachments, oldest first.
    pub async fn list_attachments(
        &self,
        actor: &Actor,
        incident_id: &str,
    ) -> Result<AttachmentList> {
        if self
            .store()
            .incident(actor.tenant, incident_id)
            .await?
            .is_none()
        {
            return Err(AppError::NotFound(format!("incident {incident_id:?}")));
        }
        let attachments = self.store().attachments(actor.tenant, incident_id).await?;
        Ok(AttachmentList {
            attachments: attachments.iter().map(AttachmentView::of).collect(),
        })
    }

    /// Opens an attachment for sending, once its content matches its hash; audited.
    pub async fn open_attachment(
        &self,
        actor: &Actor,
        incident_id: &str,
        sha256: &str,
    ) -> Result<Download> {
        let sha = garrison_blobs::normalize_hash(sha256)?;
        let attachment = self
            .store()
            .attachment(actor.tenant, incident_id, &sha)
            .await?
            .ok_or_else(|| {
                AppError::Absent(format!("incident {incident_id:?} has no attachment {sha}"))
            })?;
        let (file, size) = self
            .attachments()?
            .blobs
            .open_verified(actor.tenant, &sha)
            .await?;
        self.record(
            actor,
            "incident.attachment.download",
            incident_id,
            serde_json::json!({"sha256": sha, "name": attachment.name}),
        )
        .await;
        Ok(Download {
            file,
            size,
            name: attachment.name,
            sha256: sha,
        })
    }

    /// Removes an attachment (admins). The file itself goes once no other incident of the
    /// tenant holds the same content.
    pub async fn remove_attachment(
        &self,
        actor: &Actor,
        incident_id: &str,
        sha256: &str,
    ) -> Result<()> {
        actor.require_admin()?;
        let sha = garrison_blobs::normalize_hash(sha256)?;
        let blobs = &self.attachments()?.blobs;
        let guard = blobs.lock().await;
        let still_held = self
            .store()
            .remove_attachment(
                actor.tenant,
                incident_id,
                &sha,
                &actor.case_actor().user,
                Timestamp::now(),
            )
            .await?;
        if !still_held {
            blobs.remove(actor.tenant, &sha).await?;
        }
        drop(guard);
        self.record(
            actor,
            "incident.attachment.remove",
            incident_id,
            serde_json::json!({"sha256": sha, "file_removed": !still_held}),
        )
        .await;
        Ok(())
    }
}
