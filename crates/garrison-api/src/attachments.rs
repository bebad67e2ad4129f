//! Wire types of the `attachments` routes: shared by the server and the client.

use serde::{Deserialize, Serialize};

use garrison_store::Attachment;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttachmentView {
    pub incident_id: String,
    /// Lowercase hex SHA-256 of the content: its name on disk and in the download URL.
    pub sha256: String,
    pub name: String,
    pub size: i64,
    /// As the uploader declared it; downloads are always sent as `application/octet-stream`.
    pub content_type: Option<String>,
    pub uploaded_by: String,
    pub created: String,
}

impl AttachmentView {
    pub fn of(attachment: &Attachment) -> AttachmentView {
        AttachmentView {
            incident_id: attachment.incident_id.clone(),
            sha256: attachment.sha256.clone(),
            name: attachment.name.clone(),
            size: attachment.size,
            content_type: attachment.content_type.clone(),
            uploaded_by: attachment.uploaded_by.clone(),
            created: attachment.created.to_string(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttachmentList {
    pub attachments: Vec<AttachmentView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// The file's name (1 to 255 characters; no path separators or control characters).
    pub name: String,
}
