use corral_proto::Error as ServerError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error; nothing was changed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// No node of the endpoint list could be reached.
    #[error("cannot connect to any node: {0}")]
    Connect(String),
    /// The connection broke after a write was sent: it may or may not have been applied.
    #[error("connection lost after the request was sent; its outcome is unknown: {0}")]
    Indeterminate(String),
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The server error, if that is what this is.
    pub fn server(&self) -> Option<&ServerError> {
        match self {
            ClientError::Server(e) => Some(e),
            _ => None,
        }
    }
}
